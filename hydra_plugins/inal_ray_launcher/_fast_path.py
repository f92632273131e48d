"""The launcher's fast path for the project's task function (``sweeps.run.task``).

Steps, for one batch of Hydra jobs (a whole grid with the ``inal`` sweeper):

1. compose every job, paying Hydra's full composition once per distinct set of group choices
   (:class:`sweeps.compose.GroupwiseComposer`), and validate it with ``sweeps.schema.validate_job``
   — all of them before Ray is even started, so bad input stops the program with a
   ``ConfigError`` naming the key, the value and what is allowed, with nothing scheduled;
2. dedupe identical identities (``run_id``): e.g. majority asked for c=1,2,3 is one cell;
3. skip cells already complete in the store (one scan per study: ``completed_run_ids``,
   ``completed_inal_ids``; corrupt files are quarantined by the scan and so recomputed);
4. schedule one Ray task per missing INAL setting (``run_inal_job``) and one per training pack
   (``plan_packs``: jobs differing only in seed, gamma, sigma, at most ``max_pack`` a pack;
   ``run_training_pack`` trains a pack as one stack) — INAL and training are independent;
5. stream results back (progress in cells), record a pack whose task Ray gave up on as
   ``failed`` rows (``write_failed``), print the summary and optionally run the report.

A cell is done when its INAL setting and (if ``T > 0``) its training run are; its status is
the worst of ``ok`` < ``diverged`` < ``failed`` among them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, Hashable, List, Optional, Sequence, Set, Tuple

import ray
from hydra.core.utils import JobReturn, JobRuntime, JobStatus
from omegaconf import DictConfig

from sweeps import outcome
from sweeps.execute import JobOutcome, plan_packs, run_inal_job, run_training_pack, write_failed
from sweeps.jobs import JobSpec
from sweeps.schema import ConfigError, validate_job
from sweeps.store import ResultsStore

from sweeps.compose import GroupwiseComposer
from hydra_plugins.inal_ray_launcher._core import KILL_WORKER_ONCE_ENV, ensure_ray, maybe_kill_worker_once, stream, task_options
from hydra_plugins.inal_ray_launcher._summary import StudySummary, run_report, show_summary
from hydra_plugins.inal_ray_launcher.progress import ProgressBar

log = logging.getLogger(__name__)

_SEVERITY = {"ok": 0, "skipped": 0, "diverged": 1, "failed": 2}


@dataclass
class PreparedJob:
    """One composed, validated job: its overrides, task config and identity."""

    overrides: Tuple[str, ...]
    cfg: DictConfig
    spec: JobSpec


@dataclass
class FastPathState:
    """What the launcher keeps between ``prepare`` and ``launch``."""

    composer: GroupwiseComposer
    prepared: Dict[Tuple[str, ...], PreparedJob] = field(default_factory=dict)
    compose_s: float = 0.0


def _state(launcher: Any) -> FastPathState:
    if launcher._fast_state is None:
        launcher._fast_state = FastPathState(GroupwiseComposer(launcher.hydra_context.config_loader, launcher.config))
    return launcher._fast_state


def localize(spec: JobSpec) -> JobSpec:
    """The job with a local ``results_dir`` made absolute (workers may run elsewhere)."""
    if "://" in spec.results_dir:
        return spec
    absolute = os.path.abspath(os.path.expanduser(spec.results_dir))
    return spec if absolute == spec.results_dir else spec.with_location(results_dir=absolute)


def prepare_jobs(launcher: Any, job_overrides: Sequence[Sequence[str]]) -> List[PreparedJob]:
    """Compose and validate every job (cached); raise ``ConfigError`` on the first bad one."""
    state = _state(launcher)
    t0 = time.perf_counter()
    state.composer.set_batch(job_overrides)
    jobs = []
    for overrides in job_overrides:
        key = tuple(overrides)
        job = state.prepared.get(key)
        if job is None:
            cfg = state.composer.compose_task(key)
            try:
                spec = validate_job(cfg)
            except ConfigError as err:  # same type, the job's overrides appended to the message
                err.args = (f"{err.args[0]} [job overrides: {' '.join(key) or '(none)'}]",)
                raise
            job = state.prepared[key] = PreparedJob(key, cfg, localize(spec))
        jobs.append(job)
    state.compose_s += time.perf_counter() - t0
    return jobs


# ---------------------------------------------------------------------------------- planning


@dataclass
class StudyPlan:
    """What a batch of jobs needs: distinct cells, what is already stored, the tasks to run."""

    cells: List[JobSpec]
    complete: Set[str]
    inal_tasks: List[JobSpec]
    packs: List[List[JobSpec]]

    @property
    def pending(self) -> List[JobSpec]:
        return [c for c in self.cells if c.run_id not in self.complete]


def store_key(spec: JobSpec) -> Tuple[str, str]:
    return spec.results_dir, spec.study


def plan_study(specs: Sequence[JobSpec], max_pack: int) -> StudyPlan:
    """Dedupe, consult the store (one scan per study) and list the INAL tasks and training packs."""
    cells: List[JobSpec] = []
    seen: Set[str] = set()
    for spec in specs:
        if spec.run_id not in seen:
            seen.add(spec.run_id)
            cells.append(spec)
    by_store: Dict[Tuple[str, str], List[JobSpec]] = defaultdict(list)
    for cell in cells:
        by_store[store_key(cell)].append(cell)
    complete: Set[str] = set()
    inal_tasks: List[JobSpec] = []
    to_train: List[JobSpec] = []
    for (results_dir, study), group in by_store.items():
        store = ResultsStore(results_dir, study)
        runs_done = store.completed_run_ids() if any(c.train for c in group) else set()
        inal_done = store.completed_inal_ids()
        inal_scheduled: Set[str] = set()
        for cell in group:
            need_inal = cell.inal_id not in inal_done
            need_run = cell.train and cell.run_id not in runs_done
            if not (need_inal or need_run):
                complete.add(cell.run_id)
                continue
            if need_inal and cell.inal_id not in inal_scheduled:
                inal_scheduled.add(cell.inal_id)
                inal_tasks.append(cell)
            if need_run:
                to_train.append(cell)
    return StudyPlan(cells, complete, inal_tasks, plan_packs(to_train, max_pack) if to_train else [])


# --------------------------------------------------------------------------------- Ray tasks


def inal_task(job: JobSpec, kill_marker_dir: Optional[str]) -> Dict[str, Any]:
    """Ray task: the INAL of ``job.inal_id`` (``sweeps.execute.run_inal_job``)."""
    maybe_kill_worker_once(kill_marker_dir, f"inal-{job.inal_id}")
    return run_inal_job(job)


def pack_task(jobs: List[JobSpec], kill_marker_dir: Optional[str]) -> List[JobOutcome]:
    """Ray task: train one pack as one stack (``sweeps.execute.run_training_pack``)."""
    maybe_kill_worker_once(kill_marker_dir, f"pack-{jobs[0].run_id}")
    return run_training_pack(jobs, with_inal=False)


_inal_remote = ray.remote(inal_task)
_pack_remote = ray.remote(pack_task)


class CellTracker:
    """Counts, per pending cell, the tasks it still waits for, and its worst status so far."""

    def __init__(self, plan: StudyPlan) -> None:
        self.waiting: Dict[str, int] = {}
        self.status: Dict[str, str] = {}
        self.error: Dict[str, str] = {}
        self.inal_waiters: Dict[Tuple[str, str, str], List[str]] = defaultdict(list)
        inal_keys = {(*store_key(j), j.inal_id) for j in plan.inal_tasks}
        trained = {j.run_id for pack in plan.packs for j in pack}
        for cell in plan.pending:
            key = (*store_key(cell), cell.inal_id)
            n = int(key in inal_keys) + int(cell.run_id in trained)
            if key in inal_keys:
                self.inal_waiters[key].append(cell.run_id)
            self.waiting[cell.run_id] = n
            self.status[cell.run_id] = "ok"

    def record(self, run_id: str, status: str, error: str = "") -> Tuple[int, int]:
        """One task finished for ``run_id``; return ``(cells completed, of which failed)``."""
        if _SEVERITY.get(status, 2) > _SEVERITY[self.status[run_id]]:
            self.status[run_id] = status if status in _SEVERITY else "failed"
            if error:
                self.error[run_id] = error
        self.waiting[run_id] -= 1
        if self.waiting[run_id] > 0:
            return 0, 0
        return 1, int(self.status[run_id] == "failed")


def execute_plan(launcher: Any, plan: StudyPlan) -> Tuple[CellTracker, Dict[str, int]]:
    """Submit the plan's INAL tasks and packs, stream them back, record what Ray gave up on."""
    tracker = CellTracker(plan)
    counts = {"inal_ok": 0, "inal_failed": 0, "packs": len(plan.packs), "pack_tasks_lost": 0}
    kill_marker_dir = os.environ.get(KILL_WORKER_ONCE_ENV)
    refs: Dict[Any, Hashable] = {}
    for i, job in enumerate(plan.inal_tasks):
        opts = task_options(launcher, f"INAL {job.target} n={job.values['n']} w={job.values['width']}")
        refs[_inal_remote.options(**opts).remote(job, kill_marker_dir)] = ("inal", i)
    for i, pack in enumerate(plan.packs):
        opts = task_options(launcher, f"train {pack[0].target} n={pack[0].values['n']} x{len(pack)}")
        refs[_pack_remote.options(**opts).remote(pack, kill_marker_dir)] = ("pack", i)

    def on_result(key: Hashable, value: Any, error: Optional[BaseException]) -> Tuple[int, int]:
        kind, i = key  # type: ignore[misc]
        done = failed = 0
        if kind == "inal":
            job = plan.inal_tasks[i]
            status = "failed" if error is not None else ("failed" if value["status"] == "failed" else "ok")
            text = str(error) if error is not None else value.get("error", "")
            counts["inal_ok" if status == "ok" else "inal_failed"] += 1
            if status == "failed":
                log.error("INAL %s (%s n=%s) failed: %s", job.inal_id[:12], job.target, job.values["n"], text.strip()[-500:])
            for run_id in tracker.inal_waiters[(*store_key(job), job.inal_id)]:
                d, f = tracker.record(run_id, status, text)
                done, failed = done + d, failed + f
            return done, failed
        pack = plan.packs[i]
        if error is not None:  # the task itself failed past its retries: failed rows, the study goes on
            counts["pack_tasks_lost"] += 1
            log.error("training task of %d runs failed: %s", len(pack), str(error).strip()[-500:])
            outcomes = write_failed(pack, error)
        else:
            outcomes = value
        for outcome in outcomes:
            d, f = tracker.record(outcome.run_id, outcome.status, outcome.error)
            done, failed = done + d, failed + f
        return done, failed

    progress = ProgressBar(len(plan.pending), label="inal-sweep", unit="cells", enabled=launcher.progress)
    with progress:
        stream(refs, outcome.counting(on_result), progress)  # counts for inal-sweep's exit status
    return tracker, counts


# ------------------------------------------------------------------------------------ launch


def launch_fast(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    """Run a batch of the project's jobs; one ``JobReturn`` per job, in order."""
    t0 = time.perf_counter()
    jobs = prepare_jobs(launcher, job_overrides)  # every job validated before anything runs
    plan = plan_study([j.spec for j in jobs], launcher.max_pack)
    outcome.TALLY.add_plan(len(plan.cells), len(plan.complete))  # for inal-sweep's exit status
    tracker: Optional[CellTracker] = None
    counts: Dict[str, int] = {}
    if plan.inal_tasks or plan.packs:
        ensure_ray(launcher)
        tracker, counts = execute_plan(launcher, plan)
    summary = StudySummary.build(
        n_configs=len(jobs), plan=plan, tracker=tracker, counts=counts,
        compositions=_state(launcher).composer.full_compositions, wall_s=time.perf_counter() - t0,
    )
    show_summary(summary.text(report_follows=launcher.report))  # through logging: terminal and run.log
    if launcher.report:
        for root in summary.study_roots:
            run_report(root)

    task_name = JobRuntime.instance().get("name")
    roots = {key: ResultsStore(*key).root for key in {store_key(j.spec) for j in jobs}}
    returns = []
    for job in jobs:
        run_id = job.spec.run_id
        status = "skipped" if run_id in plan.complete else (tracker.status.get(run_id, "failed") if tracker else "failed")
        ret = JobReturn(overrides=list(job.overrides), cfg=job.cfg, hydra_cfg=None, working_dir=os.getcwd(),
                        task_name=task_name, status=JobStatus.COMPLETED)
        ret.return_value = {
            "run_id": run_id, "inal_id": job.spec.inal_id, "status": status,
            "error": tracker.error.get(run_id, "") if tracker else "",
            "results": roots[store_key(job.spec)],
        }
        returns.append(ret)
    return returns
