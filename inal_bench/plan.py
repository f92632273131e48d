"""How far a plan can be trusted for sizing (``inal-bench plan``).

Every study below is planned by the dry run (``hydra.launcher.dry_run=true``: the measured cost
model of ``sweeps.throughput``, cached per host) and then run for real on a local Ray of 2 CPUs
started once beforehand and warmed up (so start-up is excluded from both), in this process, into
a fresh results directory. Lines:

- ``plan_eta_ratio_<preset>`` for every preset of ``sweeps/conf/experiment`` at a reduced size
  (its settings, a sub-grid: the first two ``n`` values and their first ``c``, two seeds; see
  ``PRESET_GRIDS``), and ``plan_eta_ratio_heterogeneous`` for ``n=4,8,12,16,20 width=32 T=300``
  with 4 seeds: value = the dry run's estimated wall time, baseline = the measured wall time of
  the run (``Hydra.multirun`` call to its return), ratio = estimated / measured (``eta_ratio``;
  the aim is 1/1.5 <= ratio <= 1.5).
- ``plan_makespan_ratio_heterogeneous``: value = the measured wall time of the heterogeneous
  study, baseline = the lower bound ``max(task-seconds / slots, longest task)`` computed from the
  *measured* durations of its tasks (the runs' and INAL rows' ``wall_s``; a pack's duration is the
  sum of its runs', with the plan's pack sizes), ratio = measured / bound (``makespan_ratio``; the
  aim is <= 1.15). ``extra`` has the plan's own bound from its estimates.

``--smoke`` (CI): every line, at sizes of a few seconds each (``T`` and seeds cut down); the ratios
then mostly measure fixed costs. On a machine shared with other work the measured times are
noisy: the dry run divides the tasks' CPU seconds by the share of a CPU a slot gets at that moment
(``sweeps.throughput.slot_share``, a 2 s probe), and the load can change before and during the run;
the 1-minute load average before and after each run is in ``extra``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from .common import Measurement

#: The sub-grid each preset is run at (its own settings otherwise); ``--smoke`` cuts T and seeds further.
PRESET_GRIDS: Dict[str, List[str]] = {
    "default": ["target=parity,majority", "c=1", "n=6,8", "train.seed=0,1"],
    "bound_check": ["c=1,2", "n=4,6", "train.seed=0,1"],
    "bound_check_power": ["target=planted,majority", "c=2", "n=8,10", "train.seed=0,1"],
    "inal_scaling": ["target=parity,majority", "c=1", "n=6,8,10"],
    "learnability": ["target=parity,majority", "c=1", "n=6,8", "train.seed=0,1"],
    "time_to_learn": ["c=1", "n=4,6", "train.seed=0,1"],
}
HETEROGENEOUS = ["n=4,8,12,16,20", "width=32", "T=300", "train.seed=range(0,4)"]
SMOKE_CUT = ["T=20", "train.seed=0", "inal.n_inits=16"]
HETEROGENEOUS_SMOKE = ["n=4,8,12", "width=32", "T=30", "train.seed=range(0,2)", "inal.n_inits=16"]
SLOTS = 2


def _multirun(overrides: List[str], results: Path) -> Tuple[float, str]:
    """``(wall s, stdout)`` of one ``inal-sweep -m`` in this process."""
    import sweeps.run
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    hydra_ = Hydra.create_main_hydra_file_or_module(calling_file=None, calling_module="sweeps.run",
                                                    config_path="conf", job_name="bench")
    out = io.StringIO()
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out):
            hydra_.multirun(config_name="config", task_function=sweeps.run.task,
                            overrides=overrides + [f"results_dir={results}", f"hydra.sweep.dir={results}/_sweep",
                                                   "hydra.launcher.progress=false", "hydra.launcher.report=false",
                                                   f"hydra.launcher.slots={SLOTS}"],
                            with_log_configuration=False)
    finally:
        GlobalHydra.instance().clear()
    return time.perf_counter() - t0, out.getvalue()


def _estimate(text: str) -> Tuple[float, float]:
    """``(estimated makespan s, lower bound s)`` from the dry run's lines."""
    m = re.search(r"estimated wall [^(]*\(([0-9.]+) s:.*lower bound [^(]*\(([0-9.]+) s\)", text)
    if not m:
        raise RuntimeError(f"no estimate in the dry run's output:\n{text[-2000:]}")
    return float(m.group(1)), float(m.group(2))


def _measured_bound(results: Path, study: str) -> Tuple[float, float, float]:
    """``(task-seconds, longest task, bound)`` from the rows' measured ``wall_s`` (a pack's duration:
    the sum of its runs' ``wall_s``, i.e. its training time; Ray's dispatch and the file write are
    not in it, so the bound is a little low and the ratio a little pessimistic)."""
    import pandas as pd
    import pyarrow.dataset as ds

    root = results / study
    tasks: List[float] = []
    if (root / "inal").exists():
        inal = ds.dataset(str(root / "inal"), format="parquet", partitioning="hive").to_table(
            columns=["inal_id", "wall_s"]).to_pandas()
        tasks += inal.groupby("inal_id")["wall_s"].first().tolist()
    if (root / "runs").exists():
        runs = ds.dataset(str(root / "runs"), format="parquet", partitioning="hive").to_table().to_pandas()
        runs = runs.drop_duplicates("run_id")
        # a pack's runs carry the same wall_s (the pack's training time / its runs): one group a pack
        for _, group in runs.groupby("wall_s"):
            tasks.append(float(pd.to_numeric(group["wall_s"]).sum()))
    total = float(sum(tasks))
    longest = max(tasks, default=0.0)
    return total, longest, max(total / SLOTS, longest)


def _one(name: str, overrides: List[str], work: Path) -> Dict[str, float]:
    dry_dir = work / f"{name}-dry"
    _, text = _multirun(overrides + ["hydra.launcher.dry_run=true"], dry_dir)
    estimated, plan_bound = _estimate(text)
    share = re.search(r"; ([0-9.e+-]+) of a CPU per slot", text)
    load0 = os.getloadavg()[0]
    results = work / name
    measured, _ = _multirun(overrides, results)
    load1 = os.getloadavg()[0]
    return {"estimated_s": estimated, "measured_s": measured, "plan_bound_s": plan_bound,
            "slot_share": float(share.group(1)) if share else None,
            "load_before": load0, "load_after": load1, "results": str(results)}


def run(args) -> Iterator[Measurement]:
    import ray

    smoke = bool(getattr(args, "smoke", False))
    only = getattr(args, "only", None) or ""
    work = Path(tempfile.mkdtemp(prefix="inal_bench_plan_"))
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=SLOTS, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        _multirun(["n=4", "T=2", "inal.n_inits=2", "width=4"], work / "warm-up")  # workers import torch once
        for preset, grid in PRESET_GRIDS.items():
            name = f"plan_eta_ratio_{preset}"
            if only and only not in name:
                continue
            overrides = [f"+experiment={preset}", *grid] + (SMOKE_CUT if smoke else [])
            if preset == "inal_scaling" and smoke:
                overrides = [o for o in overrides if not o.startswith(("T=", "train.seed"))]
            r = _one(preset, overrides, work)
            ratio = r["estimated_s"] / max(r["measured_s"], 1e-9)
            yield Measurement(name, r["estimated_s"], "s", r["measured_s"], ratio,
                              note=f"eta_ratio = dry-run estimate / measured wall ({SLOTS} slots, local Ray started "
                                   "beforehand); aim 1/1.5 <= ratio <= 1.5",
                              extra={"overrides": " ".join(overrides), "meets_target": 1 / 1.5 <= ratio <= 1.5,
                                     "smoke": smoke, **{k: v for k, v in r.items() if k != "results"}})
        if not only or "heterogeneous" in only:
            grid = HETEROGENEOUS_SMOKE if smoke else HETEROGENEOUS
            r = _one("heterogeneous", list(grid), work)
            ratio = r["estimated_s"] / max(r["measured_s"], 1e-9)
            yield Measurement("plan_eta_ratio_heterogeneous", r["estimated_s"], "s", r["measured_s"], ratio,
                              note="eta_ratio = dry-run estimate / measured wall; aim 1/1.5 <= ratio <= 1.5",
                              extra={"overrides": " ".join(grid), "meets_target": 1 / 1.5 <= ratio <= 1.5,
                                     "smoke": smoke, **{k: v for k, v in r.items() if k != "results"}})
            total, longest, bound = _measured_bound(Path(r["results"]), "default")
            mratio = r["measured_s"] / max(bound, 1e-9)
            yield Measurement("plan_makespan_ratio_heterogeneous", r["measured_s"], "s", bound, mratio,
                              note="makespan_ratio = measured wall / max(task-seconds / slots, longest task) from the "
                                   "tasks' measured durations (rows' wall_s); aim <= 1.15; smaller is better",
                              extra={"task_seconds": total, "longest_task_s": longest, "slots": SLOTS,
                                     "plan_bound_s": r["plan_bound_s"], "meets_target": mratio <= 1.15,
                                     "smoke": smoke, "load_before": r["load_before"], "load_after": r["load_after"]})
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started:
            ray.shutdown()
    print(f"[inal-bench plan] cost model: {_describe()}", file=sys.stderr)


def _describe() -> str:
    from sweeps import throughput

    return throughput.load(calibrate=False).describe()
