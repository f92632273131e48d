"""The plan of a study: streaming grid expansion, validation, identity, dedupe, resume and packing.

One module, used by the launcher's fast path (``hydra_plugins/inal_ray_launcher``) and by
``inal-submit``; it imports no Ray. Driver memory grows with the packs in flight, not with the
cells: the grid is a lazy Cartesian product, cells are validated and hashed one at a time, and
what is kept per cell is its 16-byte ``run_id`` (the dedupe set, about 100 bytes a cell with
Python's set overhead) and, for the launcher's ``JobReturn`` list, 33 bytes in flat arrays.

Grid grammar: Hydra's (``a,b``, ``range()``, ``choice()``, ``glob()``, ``hydra.sweeper.params``);
the overrides are parsed by Hydra's ``OverridesParser`` and split into axes exactly as
``BasicSweeper.split_arguments`` does (:func:`grid_axes`; a later override of a key replaces
the earlier one in its place), but the product is iterated lazily (``itertools.product``, same
order as Hydra's list of jobs) instead of materialized.

Validation is exact (``sweeps.validation.validate_job`` on Hydra's composition of the cell, through
``sweeps.compose.GroupwiseComposer``) for every distinct combination of the *structural* axes.
Axes over the per-run scalars of a training stack (``gamma``, ``sigma``, ``train.seed``:
``sweeps.jobs.VECTORIZED_KEYS``) are factored out when they are separable: each of their values
is validated once, in the context of the grid's first cell, and must change exactly one such
value of the job; a cell's job is then its structural cell's validated values with those
scalars replaced in its typed config, hashed by ``sweeps.jobs.with_run_values`` (the INAL id
and pack key are the structural job's; a run id is one short hash). The assumption (validation of these three
scalars does not depend on other keys) is checked by tests/test_plan.py against full Hydra
composition; an axis that does not pass the check is treated as structural (exact per cell).
This makes a 10^6-cell grid over seeds cost about as many full validations as it has distinct
non-seed settings.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from inal_core.specs import ESTIMATORS, NetworkSpec, ngd_batch, ngd_flops_per_step  # plain Python: no torch import

from .jobs import VECTORIZED_KEYS, JobSpec, run_id_with, with_run_values
from .settings import VECTORIZED_ATTRS as _TRAINING_FIELD  # flat name -> sweeps.spec.Training attribute

__all__ = [
    "Axis", "grid_axes", "CellSource", "GridSource", "ListSource", "CellFactory", "PlanCounts",
    "count_plan", "iter_pending", "iter_packs", "pack_cost", "check_max_cells",
    "id_bytes", "size_packs", "lpt_makespan", "CellLimits",
]

#: Throughput assumed by the ETA of a plan (FLOP/s of one task slot) and the fixed cost of a task.
CPU_FLOPS_PER_S = 2.0e9
TASK_OVERHEAD_S = 0.05
RUN_OVERHEAD_S = 0.002
#: End-of-study compaction and summary (``ResultsStore.compact``): its index of the study's files,
#: 0.01 s for the small studies of ``inal-bench plan`` measured on the 2-core development machine under
#: load (0.05 s allowed), and ~20 ms per file merged, which it does only in a partition holding at
#: least ``sweeps.store.COMPACT_MIN_FILES`` (64) small files (one per pack or INAL task).
COMPACT_S = 0.05
COMPACT_S_PER_FILE = 0.02
COMPACT_MIN_FILES = 64


def id_bytes(hex_id: str) -> bytes:
    """The 16 bytes of a 32-hex-digit identity hash (what the plan keeps per cell)."""
    return bytes.fromhex(hex_id)


# ------------------------------------------------------------------------------ grid axes


@dataclass(frozen=True)
class Axis:
    """One key of a grid and its override lines (``key=value``), in Hydra's order."""

    key: str
    lines: Tuple[str, ...]
    is_value: bool = True  # a value override (not a config group / hydra / package override)


def grid_axes(overrides: Sequence[Any], is_group: Optional[Callable[[Any], bool]] = None) -> List[Axis]:
    """The axes of a parsed sweep (Hydra ``Override`` objects), as ``BasicSweeper.split_arguments``
    builds its lists before taking their product. Raises Hydra's own ``HydraException`` for a
    sweep type the basic sweeper does not support (intervals)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.errors import HydraException

    final: "OrderedDict[str, Tuple[Tuple[str, ...], Any]]" = OrderedDict()
    for override in overrides:
        key = override.get_key_element()
        if override.is_sweep_override():
            if not override.is_discrete_sweep():
                raise HydraException(f"{BasicSweeper.__name__} does not support sweep type : "
                                     f"{override.value_type.name}")
            final[key] = (tuple(f"{key}={val}" for val in override.sweep_string_iterator()), override)
        else:
            final[key] = ((f"{key}={override.get_value_element_as_str()}",), override)
    axes = []
    for key, (lines, override) in final.items():
        group = bool(is_group(override)) if is_group is not None else False
        axes.append(Axis(key, lines, is_value=not group))
    return axes


def check_max_cells(n_cells: int, max_cells: int) -> None:
    """Refuse a grid over ``max_cells`` before any work (``ConfigError`` naming both and the fix)."""
    from .validation import ConfigError

    if n_cells > max_cells:
        raise ConfigError("hydra.launcher.max_cells", max_cells,
                          f"at least the grid's {n_cells:,} cells",
                          f"the grid has {n_cells:,} cells; raise the limit with "
                          f"hydra.launcher.max_cells={n_cells} (the driver keeps ~150 bytes a cell) "
                          "or split the study")


# ------------------------------------------------------------------------------ cell sources


class CellSource:
    """The cells of one multirun, each a tuple of override lines; indexable and iterable lazily."""

    axes: Optional[List[Axis]] = None

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        raise NotImplementedError

    def __getitem__(self, i: int) -> Tuple[str, ...]:
        raise NotImplementedError


class GridSource(CellSource):
    """The Cartesian product of axes, in Hydra's order (last axis fastest), never materialized."""

    def __init__(self, axes: Sequence[Axis]) -> None:
        self.axes = list(axes)
        self._n = math.prod(len(a.lines) for a in self.axes) if self.axes else 1

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        return itertools.product(*(a.lines for a in self.axes))

    def __getitem__(self, i: int) -> Tuple[str, ...]:
        if not 0 <= i < self._n:
            raise IndexError(i)
        out = []
        for axis in reversed(self.axes):
            i, r = divmod(i, len(axis.lines))
            out.append(axis.lines[r])
        return tuple(reversed(out))


class ListSource(CellSource):
    """Explicit override lists (Hydra's ``Launcher.launch(job_overrides, ...)``)."""

    def __init__(self, job_overrides: Sequence[Sequence[str]]) -> None:
        self._jobs = job_overrides

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[Tuple[str, ...]]:
        return (tuple(j) for j in self._jobs)

    def __getitem__(self, i: int) -> Tuple[str, ...]:
        return tuple(self._jobs[i])


# ------------------------------------------------------------------------------ cells -> jobs


class CellFactory:
    """Validated jobs of a cell source: exact per structural cell, factored over separable scalars.

    Parameters
    ----------
    compose
        ``overrides -> task DictConfig`` (``GroupwiseComposer.compose_task``).
    validate
        ``DictConfig -> JobSpec`` (``sweeps.validation.validate_job``); raises ``ConfigError``.
    localize
        ``JobSpec -> JobSpec`` applied to every validated job (e.g. an absolute results_dir).
    cache_size
        Structural jobs kept (LRU); beyond it they are recomputed when met again.
    """

    def __init__(self, source: CellSource, compose: Callable[[Sequence[str]], Any],
                 validate: Callable[[Any], JobSpec], localize: Callable[[JobSpec], JobSpec] = lambda j: j,
                 cache_size: int = 4096) -> None:
        self.source = source
        self._compose, self._validate, self._localize = compose, validate, localize
        self._cache: "OrderedDict[Tuple[str, ...], JobSpec]" = OrderedDict()
        self.cache_size = cache_size
        self.full_validations = 0
        # axis position -> (values key, {line: validated value})
        self.vectorized: Dict[int, Tuple[str, Dict[str, Any]]] = {}
        self._first: Optional[Tuple[str, ...]] = None
        if source.axes and len(source) > 1:
            self._factor(source.axes)
        self._struct_pos = [i for i in range(len(source.axes or ())) if i not in self.vectorized]
        # per vectorized axis: line -> (Training attribute, value), or None where the value is the
        # first line's (a structural job is validated with the first line of every such axis)
        self._vec_changes: List[Tuple[int, Dict[str, Optional[Tuple[str, Any]]]]] = []
        for pos, (key, mapping) in self.vectorized.items():
            first_value = mapping[self._first[pos]]  # type: ignore[index]
            attr = _TRAINING_FIELD[key]
            self._vec_changes.append((pos, {
                line: None if value == first_value and type(value) is type(first_value) else (attr, value)
                for line, value in mapping.items()}))

    def exact(self, overrides: Sequence[str]) -> JobSpec:
        """``validate(compose(overrides))``, localized; ``ConfigError`` carries the cell's overrides."""
        from .validation import ConfigError

        self.full_validations += 1
        try:
            job = self._validate(self._compose(tuple(overrides)))
        except ConfigError as err:
            if "[job overrides:" not in err.args[0]:
                err.args = (f"{err.args[0]} [job overrides: {' '.join(overrides) or '(none)'}]",)
            raise
        return self._localize(job)

    def _factor(self, axes: List[Axis]) -> None:
        first = tuple(a.lines[0] for a in axes)
        self._first = first
        ref = self.exact(first).values
        for pos, axis in enumerate(axes):
            if not axis.is_value or len(axis.lines) < 2:
                continue
            key: Optional[str] = None
            mapping: Dict[str, Any] = {}
            ok = True
            for line in axis.lines:
                cell = first[:pos] + (line,) + first[pos + 1:]
                values = ref if line == first[pos] else self.exact(cell).values
                diff = [k for k in set(values) | set(ref) if values.get(k, ...) != ref.get(k, ...)
                        or type(values.get(k)) is not type(ref.get(k))]
                if len(diff) > 1 or (diff and diff[0] not in VECTORIZED_KEYS) or (diff and key and diff[0] != key):
                    ok = False
                    break
                if diff:
                    key = diff[0]
                mapping[line] = values
            if ok and key is not None:
                self.vectorized[pos] = (key, {line: v[key] for line, v in mapping.items()})

    def _structural(self, cell: Tuple[str, ...]) -> JobSpec:
        key = tuple([cell[i] for i in self._struct_pos])
        job = self._cache.get(key)
        if job is None:
            ref = tuple(self._first[i] if i in self.vectorized else line  # type: ignore[index]
                        for i, line in enumerate(cell))
            job = self._cache[key] = self.exact(ref)
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return job

    def ids(self, cell: Tuple[str, ...]) -> Tuple[str, JobSpec, Dict[str, Any]]:
        """``(run_id, base, changes)`` of one cell: its run id, the validated job it derives from
        (same INAL id, pack key and location) and the per-run values that differ from ``base``
        (``sweeps.jobs.with_run_values(base, changes)`` is the cell's job). Cheaper than
        :meth:`job`: a cell already complete in the store needs no job of its own."""
        if not self.vectorized:
            job = self.exact(cell)
            return job.run_id, job, {}
        base = self._structural(cell)
        changes = {}
        for pos, table in self._vec_changes:
            change = table[cell[pos]]
            if change is not None:
                changes[change[0]] = change[1]
        return run_id_with(base, changes), base, changes

    def job(self, cell: Tuple[str, ...]) -> JobSpec:
        """The validated job of one cell: the structural cell's validated config with the per-run
        scalars replaced, hashed as ``validate_job`` hashes it (``sweeps.jobs.with_run_values``)."""
        run_id, base, changes = self.ids(cell)
        return with_run_values(base, changes, run_id)

    def __iter__(self) -> Iterator[Tuple[int, Tuple[str, ...], JobSpec]]:
        """``(index, overrides, job)`` for every cell, in order."""
        for i, cell in enumerate(self.source):
            yield i, cell, self.job(cell)


# ------------------------------------------------------------------------------ counting


def pack_cost(job: JobSpec) -> float:
    """FLOPs of training one run of ``job``: ``T * ngd_flops_per_step`` at the batch the engine
    uses (the exact population of ``2^N`` inputs when small enough, else ``batch`` or its default),
    plus the checkpoints' evaluations on ``n_eval`` inputs; 0 when T = 0."""
    v = job.values
    if not job.train:
        return 0.0
    spec = NetworkSpec(v["N"], v["width"], v["depth"], bias=v["bias"], init=v["init"], activation=v["activation"])
    batch, _ = ngd_batch(v["N"], v["batch"])
    checkpoints = v["checkpoints"]
    n_ckpt = len(checkpoints) if isinstance(checkpoints, (list, tuple)) else int(checkpoints)
    evals = n_ckpt * spec.flops_forward(min(v["n_eval"], 2 ** v["N"]))
    return float(v["T"]) * ngd_flops_per_step(spec, batch) + evals


def inal_cost(job: JobSpec) -> float:
    """FLOPs of the INAL estimate of ``job``: ``n_inits`` forward passes over the network inputs per
    init that its estimator declares (``inal_core.specs.ESTIMATORS``)."""
    v = job.values
    spec = NetworkSpec(v["n"], v["width"], v["depth"], bias=v["bias"], init=v["init"], activation=v["activation"])
    inputs = ESTIMATORS[v["inal_method"]].network_inputs(v["n"], v["n_inputs"] or None)
    return float(v["n_inits"]) * spec.flops_forward(inputs)


def inal_table_n(job: JobSpec) -> Optional[int]:
    """``n`` where the cost model's per-``n`` INAL rate applies (the exact engine on a depth-1
    network, as calibrated), else None (its single rate)."""
    v = job.values
    return int(v["n"]) if v["inal_method"] == "exact" and v["depth"] == 1 else None


@dataclass
class PlanCounts:
    """What a plan amounts to (the dry run prints it, the launcher's summary reuses it)."""

    configs: int = 0
    cells: int = 0
    complete: int = 0
    runs_to_train: int = 0
    inal_to_compute: int = 0
    packs: int = 0
    train_flops: float = 0.0
    inal_flops: float = 0.0
    study_roots: List[str] = field(default_factory=list)
    full_validations: int = 0
    #: estimated seconds of every task (INAL tasks and training packs) from the measured cost model
    task_s: List[float] = field(default_factory=list)
    #: runs per pack of each (results_dir, study, pack_key): ``max_pack`` or smaller (cost-sized)
    pack_sizes: Dict[Tuple[str, str, str], int] = field(default_factory=dict)
    slots: float = 1.0
    throughput: Any = None
    split_shapes: int = 0  # pack shapes whose runs were split into more packs than max_pack needs

    @property
    def duplicates(self) -> int:
        return self.configs - self.cells

    @property
    def to_run(self) -> int:
        return self.cells - self.complete

    def eta_s(self, slots: float = 1.0, flops_per_s: float = CPU_FLOPS_PER_S) -> float:
        """Rough wall time on ``slots`` parallel task slots at ``flops_per_s`` each, with per-task overheads."""
        work = (self.train_flops + self.inal_flops) / flops_per_s
        overhead = (self.packs + self.inal_to_compute) * TASK_OVERHEAD_S + self.runs_to_train * RUN_OVERHEAD_S
        return (work + overhead) / max(slots, 1e-9)

    def set_throughput(self, throughput: Any) -> None:
        """Take ``throughput``'s CPU share (``sweeps.throughput.slot_share``) instead of the one the
        tasks were estimated with: every task's seconds scale by the ratio of the shares (pack
        sizes do not change: every term of a task's cost scales alike)."""
        if self.throughput is not None and throughput is not None:
            scale = self.throughput.share / throughput.share
            self.task_s = [t * scale for t in self.task_s]
        self.throughput = throughput

    @property
    def task_seconds(self) -> float:
        return float(sum(self.task_s))

    def makespan_bound(self, slots: Optional[float] = None) -> float:
        """``max(task-seconds / slots, longest task)``: no schedule on ``slots`` slots is shorter."""
        k = max(self.slots if slots is None else slots, 1e-9)
        return max(self.task_seconds / k, max(self.task_s, default=0.0))

    def makespan(self, slots: Optional[float] = None) -> float:
        """The makespan of the tasks on ``slots`` slots, longest first, each to the slot free first
        (what the launcher does: Ray starts a queued task as soon as a slot is free)."""
        return lpt_makespan(self.task_s, self.slots if slots is None else slots)

    def wall_s(self, plan_s: float = 0.0) -> float:
        """Estimated wall time of the study: planning (``plan_s``, as measured by the dry run), the
        makespan, and the end-of-study compaction (a fixed part, and a part per file written when
        there are enough small files for it to merge them)."""
        if not self.task_s:
            return plan_s
        files = len(self.task_s)
        return plan_s + self.makespan() + COMPACT_S + (COMPACT_S_PER_FILE * files if files >= COMPACT_MIN_FILES else 0.0)

    def text(self, max_pack: int, slots: float = 1.0, prefix: str = "[inal-sweep]", plan_s: float = 0.0) -> str:
        if self.task_s or self.throughput is not None:
            return self._measured_text(max_pack, prefix, plan_s)
        eta = self.eta_s(slots)
        return "\n".join([
            f"{prefix} plan: {self.configs:,} configs -> {self.cells:,} distinct cells"
            + (f" ({self.duplicates:,} duplicates)" if self.duplicates else "")
            + f"; {self.complete:,} already complete, {self.to_run:,} to run",
            f"{prefix} plan: {self.inal_to_compute:,} INAL settings to compute, {self.runs_to_train:,} training runs "
            f"in {self.packs:,} packs (at most {max_pack} a pack)",
            f"{prefix} plan: cost {self.train_flops + self.inal_flops:.3g} FLOP; estimated {_fmt_s(eta)} on "
            f"{slots:g} task slot(s) at {CPU_FLOPS_PER_S:.0e} FLOP/s each (a rough cost model: "
            "ngd_flops_per_step x T, INAL forward passes, per-task overheads)",
            *(f"{prefix} plan: results {root}/{{runs,curves,inal}}" if "://" not in root
              else f"{prefix} plan: results {root} (runs/, curves/, inal/)" for root in self.study_roots),
        ])


    def _measured_text(self, max_pack: int, prefix: str, plan_s: float) -> str:
        tp = self.throughput
        sized = self.split_shapes
        k = self.slots
        return "\n".join([
            f"{prefix} plan: {self.configs:,} configs -> {self.cells:,} distinct cells"
            + (f" ({self.duplicates:,} duplicates)" if self.duplicates else "")
            + f"; {self.complete:,} already complete, {self.to_run:,} to run",
            f"{prefix} plan: {self.inal_to_compute:,} INAL settings to compute, {self.runs_to_train:,} training runs "
            f"in {self.packs:,} packs (at most {max_pack} a pack"
            + (f"; {sized} pack shape(s) split to stay under the fair share" if sized else "") + ")",
            f"{prefix} plan: cost {self.train_flops + self.inal_flops:.3g} FLOP, {_fmt_s(self.task_seconds)} of tasks; "
            f"longest task {_fmt_s(max(self.task_s, default=0.0))}",
            f"{prefix} plan: on {k:g} slot(s) (hydra.launcher.slots): estimated wall {_fmt_s(self.wall_s(plan_s))} "
            f"({self.wall_s(plan_s):.1f} s: makespan {self.makespan():.1f} s + planning and compaction "
            f"{self.wall_s(plan_s) - self.makespan():.1f} s), lower bound {_fmt_s(self.makespan_bound())} "
            f"({self.makespan_bound():.1f} s) = max(task-seconds / slots, longest task)",
            f"{prefix} plan: cost model {tp.describe() if tp is not None else 'unavailable'}",
            *(f"{prefix} plan: results {root}/{{runs,curves,inal}}" for root in self.study_roots),
        ])


def lpt_makespan(task_s: Sequence[float], slots: float) -> float:
    """Makespan of list scheduling, longest task first, on ``floor(slots)`` identical slots (at least 1)."""
    import heapq

    k = max(1, int(slots))
    if not task_s:
        return 0.0
    loads = [0.0] * min(k, len(task_s))
    for t in sorted(task_s, reverse=True):
        heapq.heapreplace(loads, loads[0] + t)
    return max(loads)


def _fmt_s(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class StoreView:
    """Per ``(results_dir, study)``: the completed ids of the store, read once (footers only)."""

    def __init__(self, open_store: Callable[[str, str], Any]) -> None:
        self._open = open_store
        self._done: Dict[Tuple[str, str], Tuple[set, set, Any]] = {}

    def get(self, job: JobSpec) -> Tuple[set, set, Any]:
        key = (job.results_dir, job.study)
        entry = self._done.get(key)
        if entry is None:
            from .validation import check_results_tree

            check_results_tree(*key)  # before the store makes or reads anything there
            store = self._open(*key)
            runs = {id_bytes(r) for r in store.completed_run_ids()}
            inal = {id_bytes(i) for i in store.completed_inal_ids()}
            entry = self._done[key] = (runs, inal, store)
        return entry

    @property
    def stores(self) -> List[Any]:
        return [entry[2] for entry in self._done.values()]

    def roots(self) -> Dict[Tuple[str, str], str]:
        """``{(results_dir, study): the study's location}`` (a path, or its URI with the query) for
        every study the plan met."""
        return {key: str(entry[2].location) for key, entry in self._done.items()}


def iter_pending(factory: CellFactory, view: StoreView,
                 on_cell: Optional[Callable[[int, str, JobSpec, bool, bool], None]] = None,
                 ) -> Iterator[Tuple[JobSpec, bool, bool]]:
    """Distinct cells not complete in the store: ``(job, needs_inal, needs_run)``.

    ``on_cell(index, run_id, base, duplicate, complete)`` is called for every cell (the plan
    counts there); ``base`` is the validated job the cell derives from (its INAL id,
    study and results dir are the cell's; its run id is ``run_id``). A complete cell costs its
    run hash and two set lookups: no job of its own is built. ``needs_inal`` is True for the
    first pending cell of each missing INAL setting.
    """
    seen: set = set()
    inal_scheduled: set = set()
    last_base, entry = None, None
    for index, cell in enumerate(factory.source):
        run_id, base, changes = factory.ids(cell)
        rid = id_bytes(run_id)
        duplicate = rid in seen
        complete = False
        if not duplicate:
            seen.add(rid)
            if base is not last_base:  # consecutive cells mostly share their structural job
                last_base, entry = base, view.get(base)
            runs_done, inal_done, _ = entry
            iid = id_bytes(base.inal_id)
            need_inal = iid not in inal_done and iid not in inal_scheduled
            missing_inal = iid not in inal_done
            need_run = base.train and rid not in runs_done
            complete = not (missing_inal or need_run)
            if need_inal:
                inal_scheduled.add(iid)
            if not complete:
                yield with_run_values(base, changes, run_id), need_inal, need_run
        if on_cell is not None:
            on_cell(index, run_id, base, duplicate, complete)


def count_plan(factory: CellFactory, view: StoreView, max_pack: "int | Callable[[JobSpec], int]",
               throughput: Any = None, slots: float = 1.0,
               check_cell: Optional[Callable[[JobSpec, float, float], None]] = None) -> PlanCounts:
    """One streaming pass: validate every cell (``ConfigError`` on the first bad one), dedupe,
    consult the store and count INAL tasks, training runs, packs and their cost.

    With ``throughput`` (``sweeps.throughput.Throughput``), every task's seconds are estimated and
    packs are sized by cost (:func:`size_packs`, for ``slots`` slots); ``check_cell(job, inal_s,
    run_s)`` is called once per INAL setting and pack shape with the estimated seconds of its INAL
    task and of one run trained alone (it raises ``ConfigError`` to refuse the cell)."""
    counts = PlanCounts(slots=slots, throughput=throughput)
    per_pack_key: Dict[Tuple[str, str, str], int] = {}
    shapes: Dict[Tuple[str, str, str], JobSpec] = {}
    roots: Dict[str, None] = {}

    def count_cell(index: int, run_id: str, base: JobSpec, duplicate: bool, complete: bool) -> None:
        counts.configs += 1
        if not duplicate:
            counts.cells += 1
            counts.complete += int(complete)

    from . import throughput as tp_model

    pack_flops: Dict[Tuple[str, str, str], float] = {}
    pack_sizes: Dict[Tuple[str, str, str], int] = {}
    for job, need_inal, need_run in iter_pending(factory, view, count_cell):
        key = (job.results_dir, job.study, job.pack_key)
        if need_inal:
            counts.inal_to_compute += 1
            flops = inal_cost(job)
            counts.inal_flops += flops
            if throughput is not None:
                inal_s = tp_model.inal_seconds(flops, throughput, inal_table_n(job))
                counts.task_s.append(inal_s)
                if check_cell is not None:
                    check_cell(job, inal_s, tp_model.pack_seconds(job, 1, throughput) if job.train else 0.0)
        if need_run:
            counts.runs_to_train += 1
            per_pack_key[key] = per_pack_key.get(key, 0) + 1
            if key not in pack_flops:
                pack_flops[key] = pack_cost(job)
                pack_sizes[key] = max(1, int(max_pack(job) if callable(max_pack) else max_pack))
                shapes[key] = job
                if throughput is not None and check_cell is not None and not need_inal:
                    check_cell(job, 0.0, tp_model.pack_seconds(job, 1, throughput))
            counts.train_flops += pack_flops[key]
    for store in view.stores:
        roots[str(store.location)] = None
    limits = dict(pack_sizes)
    if throughput is not None:
        pack_sizes = size_packs({k: (shapes[k], n) for k, n in per_pack_key.items()}, pack_sizes,
                                throughput, slots, other_s=counts.task_s)
        for key, n in per_pack_key.items():
            r = pack_sizes[key]
            full, rest = divmod(n, r)
            t_full = tp_model.pack_seconds(shapes[key], r, throughput)
            counts.task_s.extend([t_full] * full)
            if rest:
                counts.task_s.append(tp_model.pack_seconds(shapes[key], rest, throughput))
        counts.split_shapes = sum(1 for key, n in per_pack_key.items()
                                  if math.ceil(n / pack_sizes[key]) > math.ceil(n / limits[key]))
    counts.pack_sizes = pack_sizes
    counts.packs = sum(math.ceil(n / pack_sizes[k]) for k, n in per_pack_key.items())
    counts.study_roots = list(roots)
    counts.full_validations = factory.full_validations
    return counts


@dataclass(frozen=True)
class CellLimits:
    """What one cell may need (``hydra.launcher.max_cell_hours``, the worker's memory and GPU)."""

    max_cell_hours: float
    memory_bytes: float
    memory_what: str  # where the memory figure comes from (named in the refusal)
    gpu_memory_bytes: Optional[float] = None

    def check(self, job: JobSpec, inal_s: float, run_s: float) -> None:
        """Refuse a cell (``ConfigError``) whose INAL or training needs more memory than the worker
        has, or whose INAL task or single run is estimated above ``max_cell_hours``."""
        from .validation import ConfigError

        v = job.values
        what = f"n={v['n']} width={v['width']} depth={v['depth']}" + (f" T={v['T']}" if job.train else "")
        inal_b, train_b, smallest = cell_memory_bytes(job)
        memory = self.gpu_memory_bytes if self.gpu_memory_bytes is not None else self.memory_bytes
        where = "the worker's GPU (hydra.launcher.gpu_memory_gb x num_gpus)" if self.gpu_memory_bytes is not None \
            else self.memory_what
        if inal_b > memory:
            fix = (f"even its smallest chunk (one init) needs {smallest / _GIB:.4g} GiB: use a smaller network"
                   if smallest > memory else
                   f"lower inal.memory_budget_gb to at most {memory / _GIB:.3g} (the engine then works in smaller chunks)")
            raise ConfigError("inal.memory_budget_gb", v["memory_budget_gb"], f"at most {memory / _GIB:.3g} GiB here",
                              f"the INAL of {what} (method {v['inal_method']}) would hold about {inal_b / _GIB:.4g} "
                              f"GiB at once but {where} has {memory / _GIB:.3g} GiB; {fix}")
        if train_b > memory:
            raise ConfigError("width", v["width"], f"a network whose training fits {memory / _GIB:.3g} GiB",
                              f"training {what} needs about {train_b / _GIB:.3g} GiB but {where} has "
                              f"{memory / _GIB:.3g} GiB")
        worst = max(inal_s, run_s)
        if worst > self.max_cell_hours * 3600:
            part = "its INAL" if inal_s >= run_s else "training one run"
            raise ConfigError("hydra.launcher.max_cell_hours", self.max_cell_hours,
                              f"at least the estimate {worst / 3600:.3g} h",
                              f"{part} of {what} is estimated at {_fmt_s(worst)} on one slot (cost model: "
                              "sweeps.throughput); shrink the cell or raise "
                              f"hydra.launcher.max_cell_hours={math.ceil(worst / 3600)}")


_GIB = float(1 << 30)


def physical_memory_bytes() -> float:
    """This machine's physical memory (inf where it cannot be read)."""
    import os

    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def check_single_cell(job: JobSpec, launcher: Any, throughput: Any = None) -> Tuple[float, float]:
    """Refuse a single run (``inal-sweep`` without ``-m``: Hydra's run mode, in this process)
    as a multirun refuses its cells (:class:`CellLimits`): memory against ``worker_memory_gb`` or
    this machine's, the GPU's share when ``num_gpus > 0`` and ``gpu_memory_gb`` are set, time
    against ``max_cell_hours``; ``launcher`` is the composed ``hydra.launcher`` node (or any object
    with those attributes). Raises ``ConfigError`` with the estimate; otherwise returns it, ``(INAL
    CPU seconds, training CPU seconds)``."""
    from . import throughput as tp_model

    worker = getattr(launcher, "worker_memory_gb", None)
    if worker is not None:
        memory, what = float(worker) * _GIB, "a worker (hydra.launcher.worker_memory_gb)"
    else:
        memory, what = physical_memory_bytes(), "this machine"
    gpu = None
    num_gpus, gpu_gb = float(getattr(launcher, "num_gpus", 0) or 0), getattr(launcher, "gpu_memory_gb", None)
    if num_gpus > 0 and gpu_gb is not None:
        gpu = float(gpu_gb) * _GIB * min(1.0, num_gpus)
    limits = CellLimits(float(getattr(launcher, "max_cell_hours", 24.0)), memory, what, gpu)
    tp = throughput if throughput is not None else tp_model.load()
    inal_s = tp_model.inal_seconds(inal_cost(job), tp, inal_table_n(job))
    run_s = tp_model.pack_seconds(job, 1, tp) if job.train else 0.0
    limits.check(job, inal_s, run_s)
    return inal_s, run_s


def cell_memory_bytes(job: JobSpec) -> Tuple[float, float, float]:
    """``(INAL bytes, training bytes, INAL's smallest chunk)`` a cell holds at once, from the
    engines' memory models:

    - INAL: its chunk, ``min(memory budget, all inits x min(inputs, 8192 rows))`` with the plain
      engine's model (``inal_core.specs.plain_chunk_model``), never below the smallest chunk (the
      engine fills the budget it is given when the work is that large);
    - training one run: parameters, gradient, noise and update (``16 E`` bytes in float32) plus the
      batch's activations, at most ``inal_core.specs.CHUNK_BYTES`` (the engine's row chunking).
    """
    from inal_core.specs import CHUNK_BYTES, exact_memory_bytes, plain_chunk_model

    v = job.values
    spec = NetworkSpec(v["n"], v["width"], v["depth"], bias=v["bias"], init=v["init"])
    method = v.get("inal_method", "exact")
    shared = method == "exact"
    rows = 2 ** min(v["n"], 62) if shared else (v["n_inputs"] or 1 << 16) if method == "mc" else 1
    fixed, per_init, per_row_shared, per_row = plain_chunk_model(v["n"], spec, "torch.float32", 1, shared)
    rows = min(rows, 1 << 13)  # inal_core.inal's largest chunk of rows
    full = fixed + v["n_inits"] * per_init + rows * per_row_shared + v["n_inits"] * rows * per_row
    smallest = exact_memory_bytes(v["n"], spec) if shared else fixed + per_init + per_row_shared + per_row
    inal_b = max(float(smallest), min(float(v["memory_budget_gb"]) * _GIB, float(full)))
    train_b = 0.0
    if job.train:
        tspec = NetworkSpec(v["N"], v["width"], v["depth"], bias=v["bias"], init=v["init"])
        batch, _ = ngd_batch(v["N"], v["batch"])
        act = batch * 4.0 * (v["N"] + 2 * v["depth"] * v["width"] + 4)
        train_b = 16.0 * tspec.num_parameters + min(act, float(CHUNK_BYTES["cpu"]))
    return inal_b, train_b, float(smallest)


def size_packs(shapes: Dict[Any, Tuple[JobSpec, int]], limits: Dict[Any, int], throughput: Any, slots: float,
               other_s: Sequence[float] = ()) -> Dict[Any, int]:
    """Runs per pack of each pack shape: at most its limit (``max_pack``), and no pack above half the
    fair share ``task-seconds / slots`` (the whole share on one slot) when the shape's runs can be
    split (a pack of one run cannot):
    the smallest number of packs whose longest fits the share, with the runs spread evenly over
    them (so that one shape does not set the study's makespan). Splitting adds each pack's fixed
    cost, so the share is computed again once with the split sizes."""
    from .throughput import pack_seconds

    sizes = dict(limits)
    k = max(1, int(slots))
    for _ in range(2):
        total = float(sum(other_s))
        for key, (job, n) in shapes.items():
            r = min(sizes[key], n)
            full, rest = divmod(n, r)
            total += full * pack_seconds(job, r, throughput) + (pack_seconds(job, rest, throughput) if rest else 0.0)
        # half the fair share: a shape misestimated by up to 2x (a loaded machine, memory traffic the
        # model does not see) still cannot set the makespan, and a split pack costs only its fixed part
        share = total / k / (2.0 if k > 1 else 1.0)
        for key, (job, n) in shapes.items():
            r = min(limits[key], n)
            if r <= 1 or pack_seconds(job, r, throughput) <= share:
                sizes[key] = r
                continue
            packs = math.ceil(n / r)
            while r > 1 and pack_seconds(job, r, throughput) > share:
                packs += 1
                r = math.ceil(n / packs)
            sizes[key] = max(1, r)
    return sizes


def iter_packs(pending: Iterable[JobSpec], max_pack: Callable[[JobSpec], int] | int,
               max_buffered: int = 1 << 16) -> Iterator[List[JobSpec]]:
    """Group a stream of jobs by ``pack_key`` into packs of at most ``max_pack`` jobs.

    A pack is yielded when full; at the end the partial ones follow (first-seen order). When
    more than ``max_buffered`` jobs wait in partial packs, the largest partial pack is yielded
    early, so memory stays bounded whatever the order of the cells. ``max_pack`` may be a
    function of the job (GPU pack sizes from the cost model).
    """
    size_of = max_pack if callable(max_pack) else (lambda _job, k=int(max_pack): k)
    open_packs: "OrderedDict[Tuple[str, str, str], List[JobSpec]]" = OrderedDict()
    limits: Dict[Tuple[str, str, str], int] = {}
    buffered = 0
    for job in pending:
        key = (job.results_dir, job.study, job.pack_key)
        pack = open_packs.get(key)
        if pack is None:
            pack = open_packs[key] = []
            limits[key] = max(1, int(size_of(job)))
        pack.append(job)
        buffered += 1
        if len(pack) >= limits[key]:
            del open_packs[key]
            buffered -= len(pack)
            yield pack
        elif buffered > max_buffered:
            big = max(open_packs, key=lambda k: len(open_packs[k]))
            pack = open_packs.pop(big)
            buffered -= len(pack)
            yield pack
    yield from open_packs.values()


# ------------------------------------------------------------------------------ GPU packs


def gpu_pack_size(*, device_memory_bytes: float, flops_per_s: float, num_parameters: int, layer_sizes: Sequence[int],
                  batch: int, T: int, n_eval: int, elem_bytes: int = 4, gpu_fraction: float = 1.0,
                  memory_fraction: float = 0.8, chunk_bytes: float = float(1 << 30), target_task_s: float = 60.0,
                  min_fill_flops: float = 5e10, cap: int = 4096) -> int:
    """How many runs of one shape to train as one stack on a GPU (pure function; CPU-testable).

    Memory: per run the stack holds its parameters, gradient, noise and update (``4 E`` elements);
    the engine's batch and evaluation chunks take at most ``chunk_bytes`` whatever the stack
    (``inal_core.specs.CHUNK_BYTES``). So ``R_mem = (memory_fraction *
    device_memory * gpu_fraction - chunk_bytes) / per_run_bytes``.
    Time: a task should last about ``target_task_s`` (resume and retries lose at most that), so
    ``R_time = target_task_s * flops_per_s * gpu_fraction / (T * ngd_flops_per_step)``; but a stack
    smaller than what fills the device (``min_fill_flops`` per step) wastes it, so the time bound is
    raised to that fill. The pack is ``min(R_mem, max(R_time, R_fill), cap)``, at least 1.
    """
    sizes = list(layer_sizes)
    spec = NetworkSpec(sizes[0], sizes[1], len(sizes) - 2)
    per_step = float(ngd_flops_per_step(spec, batch))
    per_run_bytes = elem_bytes * 4.0 * num_parameters
    budget = memory_fraction * device_memory_bytes * gpu_fraction - min(chunk_bytes, 0.5 * device_memory_bytes * gpu_fraction)
    r_mem = int(budget // max(per_run_bytes, 1.0))
    r_time = int(target_task_s * flops_per_s * gpu_fraction // max(T * per_step, 1.0))
    r_fill = int(math.ceil(min_fill_flops / max(per_step, 1.0)))
    return max(1, min(r_mem, max(r_time, r_fill), int(cap)))


def gpu_pack_size_of(job: JobSpec, *, device_memory_bytes: float, flops_per_s: float, gpu_fraction: float,
                     cap: int) -> int:
    """:func:`gpu_pack_size` for a job's shape (the engine's batch, ``N``-bit inputs)."""
    v = job.values
    spec = NetworkSpec(v["N"], v["width"], v["depth"], bias=v["bias"], init=v["init"], activation=v["activation"])
    batch, _ = ngd_batch(v["N"], v["batch"])
    return gpu_pack_size(device_memory_bytes=device_memory_bytes, flops_per_s=flops_per_s,
                         num_parameters=spec.num_parameters, layer_sizes=spec.layer_sizes, batch=batch,
                         T=max(1, v["T"]), n_eval=v["n_eval"], gpu_fraction=gpu_fraction, cap=cap)
