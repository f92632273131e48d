"""End-to-end cost per cell of a Hydra multirun on Ray (``inal-bench sweep``).

``sweep_pack_128``: a grid of 128 tiny cells (parity n=4, c=1, width 8, depth 1, T=10 on N=2n
bits, 16 INAL inits; gamma x sigma x train.seed = 4 x 4 x 8) is run end to end — Hydra's
sweeper, composition, validation, the store check, Ray tasks, Parquet files written — from one
``Hydra.multirun`` call to its return, into a fresh results directory each time. The cost per
cell is

    (t(128 cells) - t(1 cell)) / 127        (so start-up and fixed costs are not counted)

with the best of ``repeats`` timings for each. Compared, in the same process on the same Ray
(started once, its workers warmed up first):

- ``inal_ray`` with packing (``max_pack=64``: the 128 cells train as 2 stacked tasks) and the
  ``inal`` sweeper: the measured value;
- ``inal_ray`` with packing off (``max_pack=1``: one task per cell);
- ``hydra-ray-launcher`` (``hydra/launcher=ray``, Hydra's basic sweeper, one Ray task per job
  running ``sweeps.run.task``) when importable (``pip install inal-sweeps[bench]``, or a
  ``--target`` install on ``PYTHONPATH``). When it is not, its cost is the issue's reference
  figure (about 0.19 s/cell on this machine), labelled ``reference`` in the note, not measured.

``--smoke`` (CI): 8 cells instead of 128, one timing each; the same lines.

Ratios are baseline / value (larger is better): the target is 5 against hydra-ray-launcher and
1 (i.e. faster) against packing off.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from .common import Measurement

REFERENCE_HYDRA_RAY_S_PER_CELL = 0.19  # the figure for hydra-ray-launcher on this machine
CELL = ["n=4", "c=1", "width=8", "depth=1", "T=10", "train.N=2n", "train.n_eval=256", "train.checkpoints=2",
        "inal.n_inits=16"]
GRID_128 = ["gamma=0.01,0.02,0.05,0.1", "sigma=0,0.001,0.01,0.1", "train.seed=range(0,8)"]
GRID_1 = ["gamma=0.05", "sigma=0", "train.seed=0"]
#: ``--smoke``: 8 cells (2 x 2 x 2), one timing each: the same code paths at CI size
GRID_SMOKE = ["gamma=0.01,0.1", "sigma=0,0.01", "train.seed=range(0,2)"]
VARIANTS: Dict[str, List[str]] = {
    "packing": ["hydra/sweeper=inal", "hydra/launcher=inal_ray", "hydra.launcher.max_pack=64",
                "hydra.launcher.progress=false", "hydra.launcher.report=false"],
    "packing_off": ["hydra/sweeper=inal", "hydra/launcher=inal_ray", "hydra.launcher.max_pack=1",
                    "hydra.launcher.progress=false", "hydra.launcher.report=false"],
    "hydra_ray_launcher": ["hydra/sweeper=basic", "hydra/launcher=ray"],
}


def hydra_ray_launcher_location() -> Optional[str]:
    """The directory holding ``hydra_plugins/hydra_ray_launcher`` if it is importable, else None."""
    try:
        spec = importlib.util.find_spec("hydra_plugins.hydra_ray_launcher")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(list(spec.submodule_search_locations)[0]).parent.parent)


def run_multirun(overrides: List[str], results_dir: Path) -> int:
    """One ``inal-sweep -m`` in this process (stdout swallowed); returns the number of jobs."""
    import sweeps.run
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    hydra_ = Hydra.create_main_hydra_file_or_module(calling_file=None, calling_module="sweeps.run",
                                                    config_path="conf", job_name="bench")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            returns = hydra_.multirun(
                config_name="config", task_function=sweeps.run.task,
                overrides=overrides + [f"results_dir={results_dir}", f"hydra.sweep.dir={results_dir}/_sweep"],
                with_log_configuration=False,
            )
    finally:
        GlobalHydra.instance().clear()
    return sum(len(batch) for batch in returns)


def count_runs(results_dir: Path) -> int:
    """Distinct run ids in the study's runs files, read by pyarrow (not the store's own reader): the
    store writes one file per pack, so files are not runs."""
    import pyarrow.dataset as ds

    runs = results_dir / "default" / "runs"
    if not runs.exists():
        return 0
    table = ds.dataset(str(runs), format="parquet", partitioning="hive").to_table(columns=["run_id"])
    return len(set(table.column("run_id").to_pylist()))


def time_grid(variant: List[str], grid: List[str], scratch: Path, repeats: int, expect: int) -> float:
    """Best wall time of the grid over ``repeats`` runs, each into a fresh results directory."""
    best = float("inf")
    for i in range(repeats):
        results = scratch / f"r{time.perf_counter_ns()}"
        t0 = time.perf_counter()
        run_multirun(variant + CELL + grid, results)
        best = min(best, time.perf_counter() - t0)
        found = count_runs(results)
        if found != expect:
            raise RuntimeError(f"{variant}: expected {expect} runs in the runs files, found {found}")
        shutil.rmtree(results, ignore_errors=True)
    return best


def per_cell_cost(variant: List[str], scratch: Path, repeats: int, log: Callable[[str], None],
                  grid: List[str] = GRID_128, cells: int = 128) -> Dict[str, float]:
    """``{"t1", "t128", "per_cell"}`` for one launcher variant (after a warm-up run): ``t128`` is the
    time of ``grid`` (``cells`` cells; 128 unless ``--smoke``)."""
    time_grid(variant, GRID_1, scratch, 1, 1)  # warm-up: workers, imports, plugin discovery
    t1 = time_grid(variant, GRID_1, scratch, repeats, 1)
    t128 = time_grid(variant, grid, scratch, repeats, cells)
    out = {"t1": t1, "t128": t128, "per_cell": max(t128 - t1, 1e-9) / (cells - 1)}
    log(f"{' '.join(variant)}: t(1) = {t1:.2f} s, t({cells}) = {t128:.2f} s, {out['per_cell'] * 1e3:.1f} ms/cell")
    return out


def run(args) -> Iterator[Measurement]:
    import ray

    def log(text: str) -> None:
        print(f"[inal-bench sweep] {text}", file=sys.stderr, flush=True)

    smoke = bool(getattr(args, "smoke", False))
    repeats = 1 if smoke or getattr(args, "quick", False) else 2
    grid, cells = (GRID_SMOKE, 8) if smoke else (GRID_128, 128)
    cost = functools.partial(per_cell_cost, scratch=None, repeats=repeats, log=None, grid=grid, cells=cells)
    hrl_path = hydra_ray_launcher_location()
    if hrl_path is not None:  # Ray workers must import it too (its remote function lives there)
        parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        if hrl_path not in parts:
            os.environ["PYTHONPATH"] = os.pathsep.join([hrl_path] + parts)
    num_cpus = min(2, os.cpu_count() or 1)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    scratch = Path(tempfile.mkdtemp(prefix="inal_bench_sweep_"))
    try:
        cost = functools.partial(cost, scratch=scratch, log=log)
        costs = {"packing": cost(VARIANTS["packing"]), "packing_off": cost(VARIANTS["packing_off"])}
        if hrl_path is not None:
            try:
                costs["hydra_ray_launcher"] = cost(VARIANTS["hydra_ray_launcher"])
            except Exception as err:  # reported, then the reference figure stands in
                log(f"hydra-ray-launcher found at {hrl_path} but failed: {type(err).__name__}: {err}")
        else:
            log("hydra-ray-launcher is not importable (pip install 'inal-sweeps[bench]'): using the reference figure")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if started:
            ray.shutdown()

    value = costs["packing"]["per_cell"]
    extra = {k: {kk: round(vv, 5) for kk, vv in v.items()} for k, v in costs.items()}
    extra.update(num_cpus=num_cpus, repeats=repeats, cell=" ".join(CELL), grid=" ".join(grid), cells=cells,
                 smoke=smoke)
    measured = "hydra_ray_launcher" in costs
    extra["baseline_measured"] = measured
    if measured:
        baseline, how = costs["hydra_ray_launcher"]["per_cell"], "hydra-ray-launcher measured in this process"
    else:
        baseline, how = REFERENCE_HYDRA_RAY_S_PER_CELL, ("hydra-ray-launcher NOT measured (not importable: pip install "
                                                         "'inal-sweeps[bench]'): reference figure 0.19 s/cell")
    yield Measurement(
        name="sweep_pack_128", value=value, unit="s/cell", baseline=baseline, ratio=baseline / value, target=5.0,
        note=f"(t{cells} - t1)/{cells - 1}, inal_ray packing (max_pack=64) vs {how}; ratio = baseline / value", extra=extra,
    )
    off = costs["packing_off"]["per_cell"]
    yield Measurement(
        name="sweep_pack_128_vs_unpacked", value=value, unit="s/cell", baseline=off, ratio=off / value, target=1.0,
        note=f"(t{cells} - t1)/{cells - 1}, inal_ray packing (max_pack=64) vs packing off (max_pack=1), same process; ratio = baseline / value",
        extra=extra,
    )
