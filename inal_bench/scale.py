"""Scale of the sweep layer (``inal-bench scale``): planning, running, resuming, loading, reporting.

Every command runs in a subprocess whose wall time, CPU time and peak RSS are read from
``os.wait4`` (the process and the children it waited for; Ray's workers are not its children,
so the RSS is the driver's). Every baseline is measured in the same run:

- ``scale_plan_1e6``: ``inal-sweep -m n=6 c=1 'width=range(1,W+1)' 'train.seed=range(0,S)' T=50
  hydra.launcher.dry_run=true`` (W x S = ``--plan-cells``, 10^6 by default). Baseline: the
  per-cell cost of composing and validating every cell (what the launcher did before
  ``sweeps.plan``), timed on 1,000 cells of the same grid and multiplied by the grid's size.
  Targets: at most 60 s and 1.5 GB peak RSS.
- ``scale_run_1e5``: a study of ``--cells`` tiny cells (``n=4 c=1 width=2 depth=1 T=1 train.N=2n
  train.n_eval=256 train.checkpoints=1 inal.n_inits=4`` over gamma (20) x sigma (10) x
  train.seed) on a Ray started once beforehand (start-up excluded). Value: the driver's CPU
  seconds per cell above those of a 1-cell study; baseline: the same for the code of commit
  02909a3 (one file per run) on min(cells, ``--baseline-cells``) cells. Targets: 0.3 ms a cell,
  1.5 GB peak RSS.
- ``scale_resume_1e5``: the same command again on the complete study (wall). Baseline: 02909a3's
  rerun, per cell, times the number of cells. Target: 5 s. The extra fields split it into the
  fixed start-up of any ``inal-sweep`` command (the rerun of a complete 1-cell study: interpreter
  and Hydra imports, one composition; planning imports no torch) and the rest.
- ``scale_load_1e5``: ``analysis.load.load_study`` with its curves (wall, peak RSS). Baseline:
  ``pyarrow.dataset(...).to_table()`` of runs and curves written one file per run, on the first
  ``--load-baseline-runs`` runs (10^4) and scaled linearly to the study (its cost is per file;
  writing 2 x 10^5 files for it would take longer than the rest of the suite). Targets: 3 s,
  1 GB, 20x faster than the baseline.
- ``scale_report_1e5``: ``inal-report`` of the study (wall). Baseline: 02909a3's report on a
  one-file-per-run copy of ``--baseline-cells`` runs, scaled linearly to the study (its cost is
  a Python loop over runs; at 10^5 runs it would take hours). Target: 60 s.

``--smoke`` (CI): 200 cells, a 2,000-cell dry run, baselines on 200 cells (the old report's on
50, scaled); the same lines.

Ratios are baseline / value (larger is better). Benchmarks, not tests: nothing here passes or fails.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .common import Measurement

REPO = Path(__file__).resolve().parent.parent
BASELINE_COMMIT = "02909a3"
TINY = ["n=4", "c=1", "width=2", "depth=1", "T=1", "train.N=2n", "train.n_eval=256", "train.checkpoints=1",
        "inal.n_inits=4"]
GAMMAS = ",".join(f"{0.01 * (i + 1):g}" for i in range(20))
SIGMAS = ",".join(f"{1e-4 * i:g}" for i in range(10))
GB = 1 << 30


def add_arguments(parser) -> None:  # called by inal_bench.cli
    parser.add_argument("--cells", type=int, default=100_000, help="cells of the scale_run study (multiple of 200)")
    parser.add_argument("--plan-cells", type=int, default=1_000_000, help="cells of the scale_plan dry run")
    parser.add_argument("--baseline-cells", type=int, default=2_000,
                        help="cells the 02909a3 baseline runs and reports on (its cost is per cell)")
    parser.add_argument("--load-baseline-runs", type=int, default=10_000,
                        help="runs of the one-file-per-run copy the load baseline reads (scaled to the study)")


def run_measured(cmd: List[str], cwd: Path, env: Optional[Dict[str, str]] = None,
                 timeout: float = 3600) -> Tuple[float, float, int, str]:
    """``(wall s, CPU s, peak RSS bytes, output)`` of a subprocess (``os.wait4``)."""
    t0 = time.perf_counter()
    out_path = Path(tempfile.mkstemp(prefix="inal-bench-", suffix=".log")[1])
    with open(out_path, "w") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
            time.sleep(0.05)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = out_path.read_text(errors="replace")
    out_path.unlink()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:6])} ... exited {proc.returncode}:\n{text[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, text


def _env(pythonpath: Optional[Path] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(pythonpath or REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _sweep(python: str, args: List[str], cwd: Path, pythonpath: Optional[Path] = None):
    return run_measured([python, "-m", "sweeps.run", "-m", *args], cwd, _env(pythonpath))


def _baseline_tree(root: Path) -> Optional[Path]:
    """The project's code at ``BASELINE_COMMIT``, extracted (``git archive``), or None without git."""
    dest = root / "baseline_code"
    try:
        data = subprocess.run(["git", "archive", BASELINE_COMMIT], cwd=REPO, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=data, check=True)
    return dest


def _study_args(cells: int, results: Path, address: str) -> List[str]:
    seeds = max(1, cells // 200)
    return [*TINY, f"gamma={GAMMAS}", f"sigma={SIGMAS}", f"train.seed=range(0,{seeds})", f"results_dir={results}",
            "study=scale", "hydra.launcher.report=false", "hydra.launcher.progress=false",
            f"hydra.launcher.address={address}", f"hydra.sweep.dir={results}/_sweep"]


def _one_cell_args(results: Path, address: str) -> List[str]:
    return [*TINY, "gamma=0.01", "sigma=0", "train.seed=0", f"results_dir={results}", "study=scale",
            "hydra.launcher.report=false", "hydra.launcher.progress=false", f"hydra.launcher.address={address}",
            f"hydra.sweep.dir={results}/_sweep"]


# ----------------------------------------------------------------------------------- plan


def _exact_per_cell_s(n_sample: int = 1000) -> Tuple[float, float]:
    """Seconds and bytes per cell of composing and validating every cell and keeping them (the old plan)."""
    code = f"""
import resource, time
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from sweeps.submit import _sweep_cells
from sweeps.compose import GroupwiseComposer
from sweeps.validation import validate_job
ov = ["n=6", "c=1", "width=range(1,11)", "train.seed=range(0,{n_sample // 10})", "T=50"]
with initialize_config_module(config_module="sweeps.conf", version_base="1.3"):
    loader, master, cells = _sweep_cells(ov)
    comp = GroupwiseComposer(loader, master); comp.set_batch(cells)
    comp.compose_task(cells[0])
    def rss():  # resident bytes now (the peak, ru_maxrss, may already be above what the cells add)
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * resource.getpagesize() // 1024
        except OSError:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    r0 = rss()
    t = time.perf_counter()
    kept = [(c, comp.compose_task(c)) for c in cells]
    kept = [(c, cfg, validate_job(cfg)) for c, cfg in kept]
    dt = time.perf_counter() - t
    r1 = rss()
print(dt / len(cells), (r1 - r0) * 1024 / len(cells))
"""
    _, _, _, out = run_measured([sys.executable, "-c", code], REPO, _env())
    s, b = out.strip().splitlines()[-1].split()
    return float(s), float(b)


def bench_plan(args, work: Path) -> Iterator[Measurement]:
    cells = args.plan_cells
    width = max(1, int(round(math.sqrt(cells))))
    seeds = max(1, cells // width)
    grid = ["n=6", "c=1", f"width=range(1,{width + 1})", f"train.seed=range(0,{seeds})", "T=50",
            f"results_dir={work}/plan", "hydra.launcher.dry_run=true", f"hydra.sweep.dir={work}/plan_sweep"]
    wall, cpu, rss, out = _sweep(sys.executable, grid, work)
    n = width * seeds
    per_cell_s, per_cell_b = _exact_per_cell_s()
    line = [x for x in out.splitlines() if "dry run (" in x]
    yield Measurement("scale_plan_1e6", wall, "s", per_cell_s * n, per_cell_s * n / wall, target=None,
                      note=f"dry run of {n:,} cells, wall incl. start-up; target <= 60 s; baseline: per-cell "
                           f"composition + validation ({per_cell_s * 1e3:.2f} ms/cell, measured on 1,000 cells) x cells",
                      extra={"cells": n, "target_s": 60, "meets_target": wall <= 60, "plan_line": line[-1] if line else ""})
    yield Measurement("scale_plan_1e6_rss", rss / GB, "GB", per_cell_b * n / GB, per_cell_b * n / max(rss, 1),
                      note="peak RSS of the dry run; target <= 1.5 GB; baseline: bytes per kept composed cell "
                           f"({per_cell_b:.0f} B, measured on 1,000 cells) x cells",
                      extra={"cells": n, "target_gb": 1.5, "meets_target": rss / GB <= 1.5})


# ------------------------------------------------------------------------------- run/resume


def bench_run(args, work: Path, address: str) -> Iterator[Measurement]:
    cells = max(200, args.cells // 200 * 200)
    results = work / "new"
    one = work / "new_one"
    w1, c1, _, _ = _sweep(sys.executable, _one_cell_args(one, address), work)
    w1_rerun = _sweep(sys.executable, _one_cell_args(one, address), work)[0]  # complete: no Ray, no work
    wall, cpu, rss, out = _sweep(sys.executable, _study_args(cells, results, address), work)
    per_cell = (cpu - c1) / (cells - 1)
    rwall, rcpu, rrss, _ = _sweep(sys.executable, _study_args(cells, results, address), work)

    base = {"per_cell": float("nan"), "resume_per_cell": float("nan"), "cells": 0}
    code = _baseline_tree(work)
    if code is not None:
        bcells = max(200, min(cells, args.baseline_cells) // 200 * 200)
        _, bc1, _, _ = _sweep(sys.executable, _one_cell_args(work / "old_one", address), work, code)
        bwall, bcpu, brss, _ = _sweep(sys.executable, _study_args(bcells, work / "old", address), work, code)
        brwall, _, _, _ = _sweep(sys.executable, _study_args(bcells, work / "old", address), work, code)
        base = {"per_cell": (bcpu - bc1) / (bcells - 1), "resume_per_cell": brwall / bcells, "cells": bcells,
                "wall": bwall, "rss_gb": brss / GB}
    yield Measurement("scale_run_1e5", per_cell * 1e3, "ms/cell", base["per_cell"] * 1e3,
                      base["per_cell"] / per_cell if per_cell > 0 else float("nan"),
                      note=f"driver CPU per cell above a 1-cell study, {cells:,} tiny cells, Ray started beforehand; "
                           f"target <= 0.3 ms; baseline: {BASELINE_COMMIT} on {base['cells']:,} cells",
                      extra={"cells": cells, "wall_s": wall, "driver_cpu_s": cpu, "one_cell_cpu_s": c1,
                             "target_ms": 0.3, "meets_target": per_cell * 1e3 <= 0.3, "baseline": base})
    yield Measurement("scale_run_1e5_rss", rss / GB, "GB", base.get("rss_gb", float("nan")),
                      base.get("rss_gb", float("nan")) / (rss / GB),
                      note=f"driver peak RSS; target <= 1.5 GB; baseline: {BASELINE_COMMIT} at {base['cells']:,} cells "
                           "(grows with cells)", extra={"cells": cells, "meets_target": rss / GB <= 1.5})
    bres = base["resume_per_cell"] * cells
    yield Measurement("scale_resume_1e5", rwall, "s", bres, bres / rwall,
                      note=f"rerun of the complete study (wall, incl. start-up); target <= 5 s; baseline: "
                           f"{BASELINE_COMMIT}'s rerun per cell x {cells:,}",
                      extra={"cells": cells, "rss_gb": rrss / GB, "meets_target": rwall <= 5,
                             "fixed_startup_s": w1_rerun, "above_startup_s": rwall - w1_rerun,
                             "note": "fixed_startup_s: the rerun of a complete 1-cell study (interpreter and "
                                     "Hydra imports, one composition), paid by any inal-sweep command"})


# ------------------------------------------------------------------------------- load/report


def _per_run_copy(study: Path, dest: Path, max_runs: Optional[int] = None) -> None:
    """The study's rows written one file per run (the previous layout: ``<kind>/target=<t>/<id>.parquet``),
    without the store's footers (which list every id a file holds); with ``max_runs``, only the
    runs (and their curves) of the first ``max_runs`` run ids."""
    code = f"""
import os, pyarrow as pa, pyarrow.dataset as ds, pyarrow.parquet as pq, pyarrow.compute as pc
src, dst, max_runs = {str(study)!r}, {str(dest)!r}, {max_runs!r}
keep = None
for kind, key in (("runs", "run_id"), ("curves", "run_id"), ("inal", "inal_id")):
    t = ds.dataset(os.path.join(src, kind), format="parquet", partitioning="hive").to_table()
    t = t.replace_schema_metadata(None)
    if max_runs is not None and key == "run_id":
        if keep is None:
            keep = pa.array(sorted(set(t.column(key).to_pylist()))[:max_runs])
        t = t.filter(pc.is_in(t.column(key), value_set=keep))
    t = t.sort_by(key).combine_chunks()
    ids = t.column(key).to_numpy(zero_copy_only=False)
    tgt = t.column("target").to_pylist()
    t = t.drop_columns(["target"])
    start, made = 0, set()
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            d = os.path.join(dst, kind, "target=" + tgt[start])
            if d not in made:
                os.makedirs(d, exist_ok=True)
                made.add(d)
            pq.write_table(t.slice(start, i - start), os.path.join(d, ids[start] + ".parquet"))
            start = i
"""
    run_measured([sys.executable, "-c", code], REPO, _env())


def bench_load(args, work: Path) -> Iterator[Measurement]:
    study = work / "new" / "scale"
    copy = work / "per_run" / "scale"
    cells = max(200, args.cells // 200 * 200)
    lcells = min(cells, args.load_baseline_runs)
    _per_run_copy(study, copy, max_runs=None if lcells == cells else lcells)
    load = ("from analysis.load import load_study\n"
            f"s = load_study({str(study)!r}); print(len(s.runs), len(s.curves), len(s.inal))")
    wall, _, rss, out = run_measured([sys.executable, "-c", load], REPO, _env())
    imports = run_measured([sys.executable, "-c", "import analysis.load"], REPO, _env())[0]
    base_code = ("import pyarrow.dataset as ds\n"
                 f"r = ds.dataset({str(copy / 'runs')!r}, format='parquet', partitioning='hive').to_table()\n"
                 f"c = ds.dataset({str(copy / 'curves')!r}, format='parquet', partitioning='hive').to_table()\n"
                 "print(r.num_rows, c.num_rows)")
    try:
        bwall, _, brss, bout = run_measured([sys.executable, "-c", base_code], REPO, _env())
    except RuntimeError as err:  # e.g. killed for memory on a shared machine: reported, not raised
        print(f"scale_load baseline failed: {str(err)[:300]}", file=sys.stderr)
        bwall, brss = float("nan"), float("nan")
    bimports = run_measured([sys.executable, "-c", "import pyarrow.dataset"], REPO, _env())[0]
    value, base = wall - imports, (bwall - bimports) * cells / lcells
    rows = out.strip().splitlines()[-1]
    yield Measurement("scale_load_1e5", value, "s", base, base / value,
                      note="load_study with curves (wall minus the import of analysis.load); target <= 3 s and "
                           ">= 20x; baseline: pyarrow.dataset to_table of runs and curves, one file per run, on "
                           f"{lcells:,} runs, times {cells:,}/{lcells:,}",
                      extra={"rows_runs_curves_inal": rows, "peak_rss_gb": rss / GB, "baseline_rss_gb": brss / GB,
                             "baseline_runs": lcells, "baseline_measured_s": bwall - bimports,
                             "meets_target": value <= 3 and base / value >= 20 and rss / GB <= 1})
    rwall, _, rrss, _ = run_measured([sys.executable, "-m", "analysis.report", str(study)], work, _env())
    code = work / "baseline_code"
    bcells = min(cells, getattr(args, "report_baseline_runs", None) or args.baseline_cells)
    if code.exists():
        # the old report's cost is per run (a Python loop over runs): timed on bcells runs, scaled to the study
        subset = copy if bcells == lcells else work / "per_run_subset" / "scale"
        if bcells != lcells:
            _per_run_copy(study, subset, max_runs=bcells)
        bwall, _, _, _ = run_measured([sys.executable, "-m", "analysis.report", str(subset)], work, _env(code))
        bwall *= cells / bcells
    else:
        bwall = float("nan")
    yield Measurement("scale_report_1e5", rwall, "s", bwall, bwall / rwall,
                      note=f"inal-report of the study (wall); target <= 60 s; baseline: {BASELINE_COMMIT}'s report "
                           f"on a one-file-per-run copy of {bcells:,} runs, times {cells:,}/{bcells:,}",
                      extra={"peak_rss_gb": rrss / GB, "meets_target": rwall <= 60, "baseline_runs": bcells})


def run(args) -> Iterator[Measurement]:
    """The ``scale`` suite (sizes from ``--cells``, ``--plan-cells``; ``--only`` selects by name)."""
    only = getattr(args, "only", None) or ""
    if getattr(args, "smoke", False):
        args.cells, args.plan_cells, args.baseline_cells, args.load_baseline_runs = 200, 2_000, 200, 200
        args.report_baseline_runs = 50  # the old report's cost is per run: timed on 50, scaled to 200
    elif getattr(args, "quick", False):
        args.cells, args.plan_cells, args.baseline_cells = 2_000, 20_000, 400
    work = Path(tempfile.mkdtemp(prefix="inal-bench-scale-"))
    try:
        if "plan" in only or not only:
            yield from bench_plan(args, work)
        if not only or any(k in only for k in ("run", "resume", "load", "report")):
            import ray

            ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
            try:
                address = ray.get_runtime_context().gcs_address
                yield from bench_run(args, work, address)
            finally:
                ray.shutdown()
            yield from bench_load(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
