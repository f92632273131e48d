"""The launcher's fast path for the project's task function (``sweeps.run.task``).

Planning is ``sweeps.plan`` (shared with ``inal-submit``); this module submits and streams:

1. :func:`prepare_grid` — one streaming pass over the grid: every cell composed (Hydra's full
   composition once per distinct set of group choices, ``sweeps.compose.GroupwiseComposer``)
   and validated (``sweeps.validation.validate_job``; per-run scalars factored, see ``sweeps.plan``),
   deduplicated by ``run_id`` and checked against the store (footers only). A bad value stops
   the program with a ``ConfigError`` before Ray starts and before anything is written; a grid
   over ``hydra.launcher.max_cells`` is refused before the pass.
2. :func:`launch_grid` — with ``hydra.launcher.dry_run=true`` prints the plan (cells, already
   done, to run, packs, ETA) and returns; otherwise a second streaming pass submits one Ray task
   per missing INAL setting and one per training pack as the packs fill, keeping at most
   ``max_in_flight`` tasks in flight, records a pack whose task Ray gave up on as ``failed``
   rows, compacts the study's files, prints the summary and optionally runs the report. Results
   are collected by ``._ray.drain`` (the launcher's one ``ray.wait`` loop), this driver's claims
   renewed while it waits.
3. :func:`launch_grid_with_callbacks` — :func:`launch_grid` with what Hydra gives each job around
   it (``hydra.callbacks``, the sweep directory's ``.hydra/``, ``results.yaml`` and log); used by
   ``hydra/sweeper=inal`` (``sweeper.py``) and, for explicit lists of overrides, by :func:`launch`
   (what ``InalRayLauncher.launch`` calls for the project's task function).

Driver memory grows with the packs in flight, not with the composed cells: a pass keeps the
16-byte run ids it has seen (to deduplicate) and the ids of the cells that run; the ``JobReturn``
list is a lazy sequence (each ``JobReturn`` is built when read, its ids computed again from the
grid, with ``cfg=None`` since the composed configs are not kept).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Sequence as SequenceABC
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from hydra.core.utils import JobReturn, JobRuntime, JobStatus
from omegaconf import DictConfig, OmegaConf

from sweeps import outcome
from sweeps.compose import GroupwiseComposer
from sweeps.jobs import JobSpec
from sweeps import throughput as cost_model
from sweeps.plan import (CellFactory, CellLimits, CellSource, ListSource, PlanCounts, StoreView, check_max_cells,
                         count_plan, gpu_pack_size_of, id_bytes, inal_cost, inal_table_n, iter_packs, iter_pending)
from sweeps.validation import validate_job
from sweeps.store import ResultsStore

from hydra_plugins.inal_ray_launcher._ray import drain, ensure_ray, resolve_address, task_options
from hydra_plugins.inal_ray_launcher._summary import StudySummary, run_report, show_summary
from hydra_plugins.inal_ray_launcher.progress import ProgressBar

if TYPE_CHECKING:
    from sweeps.outcome import JobOutcome

log = logging.getLogger(__name__)

_STATUS = ("ok", "diverged", "failed")
_CODE = {"ok": 0, "skipped": 0, "diverged": 1, "failed": 2}


def localize(spec: JobSpec) -> JobSpec:
    """The job with a local ``results_dir`` made absolute (workers may run elsewhere)."""
    if "://" in spec.results_dir:
        return spec
    absolute = os.path.abspath(os.path.expanduser(spec.results_dir))
    return spec if absolute == spec.results_dir else spec.with_location(results_dir=absolute)


def _composer(launcher: Any) -> GroupwiseComposer:
    if launcher._fast_state is None:
        launcher._fast_state = GroupwiseComposer(launcher.hydra_context.config_loader, launcher.config)
    return launcher._fast_state


@dataclass
class PreparedGrid:
    """A validated, counted grid: what :func:`launch_grid` runs."""

    source: CellSource
    factory: CellFactory
    view: StoreView
    counts: PlanCounts
    plan_s: float


def prepare_grid(launcher: Any, source: CellSource) -> PreparedGrid:
    """Refuse a grid over ``max_cells``, then validate, dedupe and count it (no Ray, nothing written)."""
    check_max_cells(len(source), launcher.max_cells)
    throughput = cost_model.load()  # measured once per host (a subprocess), then read from its cache
    t0 = time.perf_counter()
    composer = _composer(launcher)
    if source.axes is not None:
        composer.set_shared([a.lines[0] for a in source.axes if len(a.lines) == 1])
    else:
        composer.set_batch(list(source))
    factory = CellFactory(source, composer.compose_task, validate_job, localize)
    view = StoreView(ResultsStore)
    counts = count_plan(factory, view, pack_size_rule(launcher), throughput=throughput, slots=plan_slots(launcher),
                        check_cell=cell_limits(launcher).check)
    if counts.to_run:  # a local Ray's slots get the CPU share this machine gives them now
        counts.set_throughput(cost_model.for_slots(throughput, counts.slots, local=resolve_address(launcher.address) is None))
    return PreparedGrid(source, factory, view, counts, time.perf_counter() - t0)


def plan_slots(launcher: Any) -> float:
    """Task slots the plan is made for: ``hydra.launcher.slots``, else this machine's CPUs (or
    ``local_cpus``) / ``num_cpus`` (a cluster's size is not known before joining it: set ``slots``)."""
    if launcher.slots is not None:
        return launcher.slots
    if launcher.num_gpus > 0:
        gpus = launcher.local_gpus if launcher.local_gpus is not None else 1
        return max(1.0, gpus / launcher.num_gpus)
    return max(1.0, (launcher.local_cpus or os.cpu_count() or 1) / max(launcher.num_cpus, 1e-9))


def _physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def cell_limits(launcher: Any) -> CellLimits:
    """The per-cell limits of ``max_cell_hours``, ``worker_memory_gb`` (or this machine's memory) and
    the worker's GPU share."""
    if launcher.worker_memory_gb is not None:
        memory, what = launcher.worker_memory_gb * (1 << 30), "a worker (hydra.launcher.worker_memory_gb)"
    else:
        memory, what = _physical_memory(), "this machine (set hydra.launcher.worker_memory_gb for a cluster's workers)"
    gpu = None
    if launcher.num_gpus > 0 and launcher.gpu_memory_gb is not None:
        gpu = launcher.gpu_memory_gb * (1 << 30) * min(1.0, launcher.num_gpus)
    return CellLimits(launcher.max_cell_hours, memory, what, gpu)


# --------------------------------------------------------------------------------- Ray tasks


def inal_task(job: JobSpec) -> Dict[str, Any]:
    """Ray task: the INAL of ``job.inal_id`` (``sweeps.execute.run_inal_job``)."""
    from sweeps.execute import run_inal_job

    return run_inal_job(job)


def pack_task(jobs: List[JobSpec]) -> List["JobOutcome"]:
    """Ray task: train one pack as one stack (``sweeps.execute.run_training_pack``)."""
    from sweeps.execute import run_training_pack

    return run_training_pack(jobs, with_inal=False)


@functools.lru_cache(maxsize=None)
def _remotes() -> Tuple[Any, Any]:
    """The Ray remote functions of :func:`inal_task` and :func:`pack_task` (Ray is imported only
    when a grid has work: a rerun of a complete study never imports it)."""
    import ray

    return ray.remote(inal_task), ray.remote(pack_task)


class Outcomes:
    """Per pending cell: its ids, and the statuses of its INAL task and training run."""

    def __init__(self) -> None:
        self.pending: Dict[bytes, Tuple[bytes, bool]] = {}  # run id -> (inal id, trains)
        self.run_status: Dict[bytes, int] = {}
        self.inal_status: Dict[bytes, int] = {}
        self.error: Dict[bytes, str] = {}

    def cell_status(self, rid: bytes) -> Tuple[str, str]:
        entry = self.pending.get(rid)
        if entry is None:
            return "skipped", ""
        iid, trains = entry
        code = self.inal_status.get(iid, 0)
        if trains:
            code = max(code, self.run_status.get(rid, 2))
        error = self.error.get(rid) or self.error.get(iid, "") if code == 2 else ""
        if code == 2 and not error:
            error = "not computed (the study was interrupted)"
        return _STATUS[code], error


def execute(launcher: Any, grid: PreparedGrid) -> Tuple[Outcomes, Dict[str, int]]:
    """The second streaming pass: submit INAL tasks and packs as they fill, collect results."""
    from sweeps.claims import CLAIM_S, StudyClaims

    inal_remote, pack_remote = _remotes()
    out = Outcomes()
    counts = {"inal_ok": 0, "inal_failed": 0, "packs": 0, "pack_tasks_lost": 0, "runs": 0, "runs_by_others": 0,
              "inal_by_others": 0}
    in_flight: Dict[Any, Tuple[str, Any]] = {}
    inal_only_waiters: Dict[bytes, int] = {}
    plan = grid.counts
    estimated: Dict[int, float] = {}
    est = {"done": 0.0, "total": max(plan.task_seconds, 1e-9)}
    t_start = time.perf_counter()

    def eta() -> float:
        """Seconds left: the plan's estimated task-seconds still to run, at the rate this study has
        finished estimated task-seconds so far (before the first task: the plan's makespan)."""
        if est["done"] <= 0:
            return plan.wall_s() - (time.perf_counter() - t_start) if plan.task_s else float("nan")
        rate = est["done"] / max(time.perf_counter() - t_start, 1e-9)
        return max(est["total"] - est["done"], 0.0) / rate

    progress = ProgressBar(grid.counts.to_run, label="inal-sweep", unit="cells", enabled=launcher.progress,
                           eta_fn=eta if plan.task_s else None)

    def submit_inal(job: JobSpec, check_claims: bool = True) -> None:
        """Submit the INAL task of ``job`` under a claim, unless another driver claimed or stored
        that setting (first writer wins: looked at again at the end, like a training cell)."""
        c = claims_of(job)
        if check_claims:
            busy, done = c.others()
            if job.inal_id in busy or job.inal_id in done:
                inal_elsewhere.append(job)
                return
        claim = c.claim([job.inal_id])
        opts = task_options(launcher, f"INAL {job.target} n={job.values['n']} w={job.values['width']}")
        in_flight[inal_remote.options(**opts).remote(job)] = ("inal", (job, claim))

    def training_jobs() -> Iterator[JobSpec]:
        for job, need_inal, need_run in iter_pending(grid.factory, grid.view):
            rid, iid = id_bytes(job.run_id), id_bytes(job.inal_id)
            out.pending[rid] = (iid, need_run)
            if need_inal:
                submit_inal(job)
                make_room()
            if not job.train:
                inal_only_waiters[iid] = inal_only_waiters.get(iid, 0) + 1
            if need_run:
                yield job

    claims: Dict[Tuple[str, str], StudyClaims] = {}  # per study: the cells other drivers compute
    deferred: List[JobSpec] = []  # cells another driver claimed: looked at again at the end
    inal_elsewhere: List[JobSpec] = []  # INAL settings another driver claimed or stored: the same
    credited: List[JobSpec] = []  # cells another driver stored: checked in the store at the end

    def claims_of(job: JobSpec) -> StudyClaims:
        key = (job.results_dir, job.study)
        if key not in claims:
            claims[key] = StudyClaims(grid.view.get(job)[2])
        return claims[key]

    def stored_by_others(jobs: List[JobSpec]) -> None:
        for job in jobs:
            out.run_status[id_bytes(job.run_id)] = 0
        credited.extend(jobs)
        counts["runs_by_others"] += len(jobs)
        outcome.TALLY.add_finished(len(jobs), 0)
        progress.update(len(jobs), failed=0)

    def inal_stored_by_others(job: JobSpec) -> None:
        iid = id_bytes(job.inal_id)
        out.inal_status[iid] = 0
        counts["inal_by_others"] += 1
        waiting = inal_only_waiters.pop(iid, 0)  # cells of no training: complete now
        if waiting:
            outcome.TALLY.add_finished(waiting, 0)
            progress.update(waiting, failed=0)

    def submit_pack(pack: List[JobSpec], check_claims: bool = True) -> None:
        """Submit ``pack`` less the cells other drivers claimed or stored (first writer wins), under a claim."""
        c = claims_of(pack[0])
        if check_claims:
            busy, done = c.others()
            stored_by_others([j for j in pack if j.run_id in done])
            deferred.extend(j for j in pack if j.run_id in busy and j.run_id not in done)
            pack = [j for j in pack if j.run_id not in busy and j.run_id not in done]
            if not pack:
                return
        claim = c.claim([j.run_id for j in pack])
        opts = task_options(launcher, f"train {pack[0].target} n={pack[0].values['n']} x{len(pack)}")
        in_flight[pack_remote.options(**opts).remote(pack)] = ("pack", (pack, claim))
        estimated[id(pack)] = _pack_s(pack, grid.counts)
        counts["packs"] += 1
        counts["runs"] += len(pack)
        make_room()

    def renew_claims() -> None:  # a long pack: keep this driver's claims live for the others
        for c in claims.values():
            c.renew()

    def collect(until: Optional[Callable[[], bool]] = None, rounds: Optional[int] = None) -> None:
        drain(in_flight, on_result, until=until, timeout=CLAIM_S / 3, on_idle=renew_claims, rounds=rounds)

    def make_room() -> None:
        collect(until=lambda: len(in_flight) < max_in_flight)

    def on_result(key: Tuple[str, Any], value: Any, error: Optional[BaseException]) -> None:
        done, failed = count_result(*key, value, error)
        outcome.TALLY.add_finished(done, failed)  # for inal-sweep's exit status (sweeps.outcome)
        if done or failed:
            progress.update(done, failed=failed)

    def count_result(kind: str, what: Any, value: Any, error: Optional[BaseException]) -> Tuple[int, int]:
        """Record one task's result; return (cells completed, of which failed)."""
        if kind == "inal":
            job, claim = what
            if plan.throughput is not None:
                est["done"] += cost_model.inal_seconds(inal_cost(job), plan.throughput, inal_table_n(job))
            iid = id_bytes(job.inal_id)
            failed = error is not None or value["status"] == "failed"
            text = str(error) if error is not None else value.get("error", "")
            counts["inal_failed" if failed else "inal_ok"] += 1
            out.inal_status[iid] = 2 if failed else 0
            if failed:
                out.error[iid] = text
                log.error("INAL %s (%s n=%s) failed: %s", job.inal_id[:12], job.target, job.values["n"], text.strip()[-500:])
            claims_of(job).finish(claim, ok=not failed)
            waiting = inal_only_waiters.pop(iid, 0)
            return waiting, waiting if failed else 0
        pack, claim = what
        est["done"] += estimated.pop(id(pack), 0.0)
        if error is not None:  # the task itself failed past its retries: failed rows, the study goes on
            counts["pack_tasks_lost"] += 1
            log.error("training task of %d runs failed: %s", len(pack), str(error).strip()[-500:])
            from sweeps.execute import write_failed  # the engines' module: imported only when needed

            outcomes = write_failed(pack, error)
        else:
            outcomes = value
        nfailed = 0
        for result in outcomes:
            rid = id_bytes(result.run_id)
            code = _CODE.get(result.status, 2)
            out.run_status[rid] = code
            if code == 2:
                nfailed += 1
                out.error[rid] = result.error
        claims_of(pack[0]).finish(claim, ok=nfailed == 0)
        return len(outcomes), nfailed

    max_in_flight = max(1, int(launcher.max_in_flight))
    try:
        with progress:
            for pack in ordered_packs(training_jobs(), grid.counts, pack_size_rule(launcher)):
                submit_pack(pack)
            while deferred:  # cells other drivers claimed: stored by them meanwhile, or free again
                waiting = deferred[:]
                deferred.clear()
                for pack in iter_packs(waiting, pack_size_rule(launcher)):
                    submit_pack(pack)
                if deferred:  # still claimed by a live driver: wait for ours, or for theirs
                    if in_flight:
                        collect(rounds=1)
                    else:
                        time.sleep(0.5)
            while inal_elsewhere:  # INAL settings of other drivers: stored by them, or free again
                waiting = inal_elsewhere[:]
                inal_elsewhere.clear()
                for job in waiting:
                    busy, _ = claims_of(job).others()
                    if job.inal_id in busy:
                        inal_elsewhere.append(job)
                    elif grid.view.get(job)[2].has_inal(job.inal_id, job.target):
                        inal_stored_by_others(job)
                    else:
                        submit_inal(job, check_claims=False)
                if inal_elsewhere:
                    if in_flight:
                        collect(rounds=1)
                    else:
                        time.sleep(0.5)
            collect()
            if credited:  # trust, then verify: each cell credited to another driver is in the store
                complete = {key: c_store.completed_run_ids() for key, c_store in
                            {(j.results_dir, j.study): grid.view.get(j)[2] for j in credited}.items()}
                missing = [j for j in credited if j.run_id not in complete[(j.results_dir, j.study)]]
                counts["runs_by_others"] -= len(missing)
                outcome.TALLY.add_finished(-len(missing), 0)  # counted again when computed here
                for pack in iter_packs(missing, pack_size_rule(launcher)):
                    submit_pack(pack, check_claims=False)
                collect()
    finally:
        for c in claims.values():
            c.release()
    return out, counts


#: Largest number of pending runs whose packs are formed before any is submitted, so that they go
#: longest first; beyond it packs stream in grid order (the driver's memory follows the packs in flight).
ORDER_MAX_RUNS = 1 << 16


def _pack_s(pack: List[JobSpec], counts: PlanCounts) -> float:
    return cost_model.pack_seconds(pack[0], len(pack), counts.throughput) if counts.throughput is not None else 0.0


def ordered_packs(jobs: Iterator[JobSpec], counts: PlanCounts, rule: Any) -> Iterator[List[JobSpec]]:
    """Packs of the plan's sizes (``PlanCounts.pack_sizes``, cost-sized), longest estimated first
    when the study has at most ``ORDER_MAX_RUNS`` runs to train (Ray starts queued tasks in
    submission order, so this is longest-processing-time-first scheduling), else as they fill."""
    sizes = counts.pack_sizes
    base = rule if callable(rule) else (lambda _job, k=int(rule): k)

    def size_of(job: JobSpec) -> int:
        return sizes.get((job.results_dir, job.study, job.pack_key)) or base(job)

    packs = iter_packs(jobs, size_of)
    if counts.throughput is None or counts.runs_to_train > ORDER_MAX_RUNS:
        yield from packs
        return
    yield from sorted(packs, key=lambda pack: -_pack_s(pack, counts))


def pack_size_rule(launcher: Any) -> Any:
    """``max_pack`` on CPUs; on GPUs (``num_gpus > 0``) the cost model's pack per job shape
    (``sweeps.plan.gpu_pack_size_of``), capped by ``max_pack_gpu``, for the task's share of a GPU."""
    if launcher.num_gpus <= 0:
        return launcher.max_pack
    memory = launcher.gpu_memory_gb * (1 << 30) if launcher.gpu_memory_gb else None
    if memory is None:
        try:
            import torch

            memory = torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 16 * (1 << 30)
        except Exception:  # noqa: BLE001 - no CUDA on the driver: a conservative 16 GiB
            memory = 16 * (1 << 30)
    fraction = min(1.0, launcher.num_gpus)
    return lambda job: gpu_pack_size_of(job, device_memory_bytes=memory, flops_per_s=launcher.gpu_tflops * 1e12,
                                        gpu_fraction=fraction, cap=launcher.max_pack_gpu)


class GridReturns(SequenceABC):
    """Hydra's ``JobReturn`` per cell, built when read (``cfg`` is None: composed configs are not kept).

    Nothing is kept per cell: a cell's run and INAL ids are computed again from the grid's factory
    when its return is read (``CellFactory.ids``: a run hash for a per-run scalar cell, a cached
    structural validation otherwise), and its status looked up among the outcomes of the cells
    that ran. A rerun of a complete study therefore costs one pass over the grid, and Hydra's list
    of returns is read only by what asks for it (``on_job_end`` callbacks, tests).
    """

    def __init__(self, grid: PreparedGrid, outcomes: Outcomes) -> None:
        self.source, self.factory, self.outcomes = grid.source, grid.factory, outcomes
        self.task_name = JobRuntime.instance().get("name")
        self.cwd = os.getcwd()
        self._root_of = grid.view.roots()
        self.roots = list(self._root_of.values())

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        cell = self.source[i]
        run_id, base, _ = self.factory.ids(cell)
        status, error = self.outcomes.cell_status(id_bytes(run_id))
        ret = JobReturn(overrides=list(cell), cfg=None, hydra_cfg=None, working_dir=self.cwd,
                        task_name=self.task_name, status=JobStatus.COMPLETED)
        ret.return_value = {"run_id": run_id, "inal_id": base.inal_id, "status": status, "error": error,
                            "results": self._root_of.get((base.results_dir, base.study), "")}
        return ret


# ------------------------------------------------------------------------------------ launch


def launch_grid(launcher: Any, grid: PreparedGrid) -> Sequence[JobReturn]:
    """Run a prepared grid (or print its plan with ``dry_run``); one ``JobReturn`` per cell, lazily."""
    t0 = time.perf_counter()
    counts = grid.counts
    if launcher.dry_run:
        print(counts.text(launcher.max_pack, slots=counts.slots, plan_s=grid.plan_s), flush=True)
        print(f"[inal-sweep] plan: dry run ({grid.plan_s:.1f} s planning, {counts.full_validations} full "
              "validations): nothing was started or written", flush=True)
        return []
    outcome.TALLY.add_plan(counts.cells, counts.complete)  # for inal-sweep's exit status
    outcomes = Outcomes()
    exec_counts: Dict[str, int] = {}
    if counts.to_run:
        ensure_ray(launcher)
        outcomes, exec_counts = execute(launcher, grid)
    for store in grid.view.stores:  # the study ends: small files into large ones, each cell once
        if counts.to_run or store.maintenance_due:  # ... or what a killed compaction left
            try:
                store.compact()
            except OSError as err:
                log.warning("compaction of %s skipped: %s", store.location, err)
    status = {k: 0 for k in _STATUS}
    failures = []
    for rid in outcomes.pending:
        s, err = outcomes.cell_status(rid)
        status[s if s in status else "ok"] += 1
        if s == "failed" and len(failures) < 20:
            last = err.strip().splitlines()[-1] if err.strip() else "unknown error"
            failures.append(f"{rid.hex()[:12]}: {last[:200]}")
    summary = StudySummary(
        n_configs=counts.configs, n_cells=counts.cells, n_complete=counts.complete, cell_status=status,
        inal_computed=exec_counts.get("inal_ok", 0), inal_failed=exec_counts.get("inal_failed", 0),
        n_train_runs=exec_counts.get("runs", 0), n_packs=exec_counts.get("packs", 0),
        runs_by_others=exec_counts.get("runs_by_others", 0),
        inal_by_others=exec_counts.get("inal_by_others", 0),
        packs_lost=exec_counts.get("pack_tasks_lost", 0), compositions=_composer(launcher).full_compositions,
        wall_s=time.perf_counter() - t0 + grid.plan_s, study_roots=[str(s.location) for s in grid.view.stores],
        failures=failures,
    )
    show_summary(summary.text(report_follows=launcher.report))  # through logging: terminal and run.log
    if launcher.report:
        for root in summary.study_roots:
            run_report(root)
    return GridReturns(grid, outcomes)


def write_sweep_dir(config: DictConfig) -> Path:
    """The multirun's ``.hydra/`` in the sweep directory, as Hydra writes it for a job:
    ``config.yaml`` (the study's composed config, without ``hydra``), ``hydra.yaml`` and
    ``overrides.yaml`` (the command line's overrides)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    hydra_dir = sweep_dir / str(config.hydra.output_subdir or ".hydra")
    hydra_dir.mkdir(parents=True, exist_ok=True)
    task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    OmegaConf.save(task_cfg, hydra_dir / "config.yaml", resolve=False)
    OmegaConf.save(OmegaConf.create({"hydra": config.hydra}), hydra_dir / "hydra.yaml", resolve=False)
    OmegaConf.save(OmegaConf.create(list(config.hydra.overrides.task)), hydra_dir / "overrides.yaml")
    return sweep_dir


def attach_log_file(config: DictConfig, sweep_dir: Path) -> logging.Handler:
    """Log to ``<sweep dir>/<job name>.log`` (``run.log`` for ``inal-sweep``), as Hydra's job
    logging does for a job; what reaches the terminal is unchanged."""
    handler = logging.FileHandler(sweep_dir / f"{config.hydra.job.name}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def launch_grid_with_callbacks(launcher: Any, grid: Any) -> Sequence[JobReturn]:
    """Run a prepared grid (:func:`prepare_grid`) with what Hydra gives each job around it.

    Hydra's ``run_job`` calls ``on_job_start``/``on_job_end`` of the ``hydra.callbacks`` around
    each job; the fast path runs a grid as packs, not job by job, so every job's
    ``on_job_start`` comes before any task starts and its ``on_job_end`` after the grid, with the
    job's composed task config (no ``hydra`` node: ``HydraConfig.get()`` is the multirun's;
    composed again here, one at a time, and only when callbacks are configured) and a
    ``JobReturn`` whose ``return_value`` is ``{"run_id", "inal_id", "status", "error", "results"}``
    (``status``: ``ok``/``diverged``/``failed``/``skipped``). The sweep directory gets the
    multirun's ``.hydra/``, a ``results.yaml`` naming where the results are, and the log.
    """
    config = launcher.config
    sweep_dir = write_sweep_dir(config)
    handler = attach_log_file(config, sweep_dir)
    try:
        callbacks = launcher.hydra_context.callbacks
        per_job = bool(getattr(callbacks, "callbacks", None))
        composer = _composer(launcher)
        if per_job:
            for overrides in grid.source:
                callbacks.on_job_start(config=composer.compose_task(tuple(overrides)),
                                       task_function=launcher.task_function)
        returns = launch_grid(launcher, grid)
        roots = [str(r) for r in getattr(returns, "roots", [])]
        OmegaConf.save(OmegaConf.create({"results": roots, "analyse": [f"inal-report {r}" for r in roots]}),
                       sweep_dir / "results.yaml")
        if per_job:
            for overrides, ret in zip(grid.source, returns):
                callbacks.on_job_end(config=composer.compose_task(tuple(overrides)), job_return=ret)
        return returns
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Hydra's ``Launcher.launch`` for the project's jobs (explicit override lists, e.g. Hydra's
    basic sweeper or its launcher test suites): plan them, then :func:`launch_grid_with_callbacks`."""
    grid = prepare_grid(launcher, ListSource(job_overrides))
    return launch_grid_with_callbacks(launcher, grid)
