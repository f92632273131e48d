"""Job identity: what a job computes, its hashes, and its seeds.

A job is one composed config (one cell of a Hydra grid), validated into a typed
:class:`sweeps.spec.JobConfig` by ``sweeps.schema.validate_job``. Its **identity** (DESIGN.md) is
the BLAKE2b hash of the canonical JSON of its validated values (so ``target.subset_seed=0`` and
``=0.0`` are one cell) together with ``inal_core.ENGINE_VERSION``. Where results go (``study``,
``results_dir``) and where they are computed (``device``) are not part of it, and neither is
anything under ``hydra.*``. The git commit is provenance, recorded but not hashed. Which value
enters which hash is stated once, in ``sweeps.spec.FIELDS``.

Four hashes per job:

- ``run_id``  = H(every value but the location, the memory budget and the requested estimator
  name (its resolved method is hashed), engine version): one training run (one row of ``runs``);
- ``inal_id`` = H(the INAL-determining subset: target and its parameters, c, n, width, depth,
  bias, init, the estimator method actually used, n_inits, n_inputs, engine version):
  INAL is computed once per ``inal_id`` and shared by every run that has it;
- ``pack_key`` = H(the run values but ``train_seed``, ``gamma``, ``sigma``): jobs with one pack key
  train as one stacked tensor (``sweeps.execute.run_training_pack``);
- ``config_id`` = H(every config value but ``n``, ``train.seed`` and the location, as requested:
  ``train.N`` as written, the estimator's name): rows with one config_id differ only in n and
  seed, so analysis fits across n by it (``inal_config_id``: the same for the INAL values).
  ``sweeps.spec.config_id_keys`` lists what it covers.

A ``T = 0`` job (INAL only) is identified by its INAL values alone: grids over gamma, sigma or
``train.*`` with ``T = 0`` collapse to one job per INAL setting.

Every random stream derives from the identity: ``seed`` = the first 63 bits of ``run_id``,
``inal_seed`` = the first 63 bits of ``inal_id``. So a job gives the same numbers alone or
packed, here or on any worker, and families with a fixed nominal ``c`` (majority ...) asked for
several ``c`` collapse to one identity (``dedupe_jobs``).

The hashes of this typed spec differ from those of the flat spec before it (run ids of studies
written before it are not found again: their cells are recomputed once).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Iterable, Mapping

import inal_core

from .spec import (CONFIG_ID_KEYS, INAL_CONFIG_ID_KEYS, INAL_KEYS, RUN_KEYS, VECTORIZED_KEYS, JobConfig,
                   Location, flat_values)

__all__ = [
    "JobSpec",
    "make_job",
    "identity_hash",
    "seed_from_hash",
    "dedupe_jobs",
    "git_commit",
    "INAL_KEYS",
    "VECTORIZED_KEYS",
]

_SEED_MASK = (1 << 63) - 1
_PACK_KEYS = tuple(k for k in RUN_KEYS if k not in VECTORIZED_KEYS)


def _canonical(value: Any) -> Any:
    """JSON-stable form: floats that are integral stay floats (1.0 != 1 is deliberate: types are fixed
    by validation), non-finite floats become strings, tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def identity_hash(kind: str, values: Mapping[str, Any]) -> str:
    """Hex BLAKE2b-128 of ``kind``, ``ENGINE_VERSION`` and the sorted ``values``.

    >>> identity_hash("run", {"n": 8}) == identity_hash("run", {"n": 8})
    True
    >>> identity_hash("run", {"n": 8}) != identity_hash("run", {"n": 9})
    True
    """
    payload = [kind, int(inal_core.ENGINE_VERSION), [[k, _canonical(values[k])] for k in sorted(values)]]
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


_memo: dict[tuple, str] = {}


def _memo_hash(kind: str, memo_key: tuple, keys: tuple[str, ...], config: JobConfig,
               flat: list) -> str:
    """``identity_hash(kind, the flat values at keys)``, memoized on ``memo_key``, a tuple of typed
    parts holding at least those values (many cells share an INAL setting, a pack or a config)."""
    key = (kind, int(inal_core.ENGINE_VERSION), memo_key)
    hit = _memo.get(key)
    if hit is None:
        if not flat:
            flat.append(flat_values(config))
        if len(_memo) > 500_000:
            _memo.clear()
        hit = _memo[key] = identity_hash(kind, {k: flat[0][k] for k in keys})
    return hit


def seed_from_hash(hex_id: str) -> int:
    """A non-negative 63-bit integer seed taken from the first 16 hex digits of an identity hash."""
    return int(hex_id[:16], 16) & _SEED_MASK


@dataclass(frozen=True)
class JobSpec:
    """One validated job (one cell of a grid). Build it with ``sweeps.schema.validate_job``.

    ``config`` is the typed, nested description (:class:`sweeps.spec.JobConfig`). ``values`` is
    a read-only flat view of it with the names of ``sweeps.spec.FIELDS`` (``n, c, N, N_spec,
    width, depth, bias, init, T, gamma, sigma, A, precision, loss, batch, gamma_schedule,
    checkpoints, n_eval, train_seed, estimator, inal_method, n_inits, n_inputs, memory_budget_gb,
    target``, ``target_params`` (the family's resolved parameters as text,
    ``k=2,subset=first,subset_seed=0``), ``study, results_dir, device`` and ``target.<param>``
    for every parameter of the family).
    """

    run_id: str
    inal_id: str
    pack_key: str
    seed: int
    inal_seed: int
    config: JobConfig = field(hash=False, compare=False, repr=False)

    @functools.cached_property
    def _config_ids(self) -> tuple[str, str]:
        return config_ids(self.config)

    @property
    def config_id(self) -> str:
        """Hash of every config value but n, train.seed and the location (the ``runs`` column)."""
        return self._config_ids[0]

    @property
    def inal_config_id(self) -> str:
        """Hash of the INAL config values but n (the ``inal`` column)."""
        return self._config_ids[1]

    @property
    def study(self) -> str:
        return self.config.location.study

    @property
    def results_dir(self) -> str:
        return self.config.location.results_dir

    @property
    def device(self) -> str:
        return self.config.location.device

    @property
    def train(self) -> bool:
        return self.config.training.T > 0

    @property
    def target(self) -> str:
        return self.config.target.name

    @functools.cached_property
    def _flat(self) -> dict[str, Any]:
        return flat_values(self.config)

    @property
    def values(self) -> Mapping[str, Any]:
        """Every value of the job, flat and read-only (derived from ``config``)."""
        return MappingProxyType(self._flat)

    def __getstate__(self) -> dict[str, Any]:  # the flat view is rebuilt where it is needed
        state = dict(self.__dict__)
        state.pop("_flat", None)
        return state

    @property
    def target_inputs(self) -> dict[str, Any]:
        """The family's validated parameters (``make_target`` keyword arguments; None: derived from n)."""
        return self.config.target.kwargs

    def make_target(self):
        """The ``inal_core`` target on ``n`` bits (parity: ``k = c``)."""
        return self.config.target.make(self.config.n)

    def with_location(self, *, results_dir: str | None = None, study: str | None = None,
                      device: str | None = None) -> "JobSpec":
        """The same job (same identity) written elsewhere or computed on another device."""
        loc = self.config.location
        location = Location(study or loc.study, results_dir or loc.results_dir, device or loc.device)
        return replace(self, config=replace(self.config, location=location))


def _run_hash(pack_key: str, gamma: float, sigma: float, seed: int) -> str:
    """``run_id``: BLAKE2b-128 of the pack key and the vectorized values (``VECTORIZED_KEYS``) as
    fixed-format text (``repr`` of a float is its shortest round-trip form, the same everywhere)."""
    text = f"run|{int(inal_core.ENGINE_VERSION)}|{pack_key}|{gamma!r}|{sigma!r}|{int(seed)}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def make_job(config: JobConfig) -> JobSpec:
    """Hash a validated :class:`JobConfig` into a :class:`JobSpec` (``sweeps.schema.validate_job`` calls this).

    The hashed value sets are those of ``sweeps.spec.FIELDS``; ``run_id`` hashes ``pack_key`` (every
    run value but the vectorized ones) with the vectorized values (gamma, sigma, train.seed).
    """
    flat: list = []  # the flat values, built only when a hash is not memoized yet
    t, tr, inal, net = config.target, config.training, config.inal, config.network
    params = tuple(f"target.{name}" for name, _ in t.params)
    inal_part = (config.n, t.name, t.c, t.params, net.width, net.depth, net.bias, config.init.name, inal.method,
                 inal.n_inits, inal.n_inputs)
    inal_id = _memo_hash("inal", inal_part, INAL_KEYS + params, config, flat)
    if tr.T == 0:  # INAL only: training settings decide nothing, so they do not split cells
        pack_key = _memo_hash("pack", (inal_part, 0), INAL_KEYS + params + ("T",), config, flat)
        run_id = _run_hash(pack_key, 0.0, 0.0, 0)
    else:
        train_part = (tr.T, tr.A, tr.precision, tr.loss, tr.batch, tr.N_spec, tr.N, tr.gamma_schedule,
                      tr.checkpoints, tr.n_eval)
        pack_key = _memo_hash("pack", (inal_part, train_part), _PACK_KEYS + params, config, flat)
        run_id = _run_hash(pack_key, tr.gamma, tr.sigma, tr.seed)
    return JobSpec(run_id, inal_id, pack_key, seed_from_hash(run_id), seed_from_hash(inal_id), config)


def run_id_with(base: JobSpec, changes: Mapping[str, Any]) -> str:
    """The ``run_id`` of :func:`with_run_values` ``(base, changes)`` without building the job."""
    if not changes:
        return base.run_id
    tr = base.config.training
    if tr.T == 0:  # INAL only: the per-run values decide nothing (make_job)
        return base.run_id
    return _run_hash(base.pack_key, changes.get("gamma", tr.gamma), changes.get("sigma", tr.sigma),
                     changes.get("seed", tr.seed))


def with_run_values(base: JobSpec, changes: Mapping[str, Any], run_id: str | None = None) -> JobSpec:
    """``make_job`` of ``base.config`` with some vectorized training values replaced, from ``base``'s hashes.

    ``changes`` maps :class:`sweeps.spec.Training` attribute names of the vectorized keys
    (``gamma``, ``sigma``, ``seed``) to validated values. Those values enter only ``run_id`` (and
    the run's seed): the INAL id and the pack key are ``base``'s, so only the run hash is computed
    (``run_id``, when given, is :func:`run_id_with` of the same arguments) and the frozen configs
    are copied without re-running their constructors. This is the planner's per-cell path;
    ``tests/test_plan.py`` checks it against full composition and validation of every cell.
    """
    if not _VECTORIZED_ATTRS.issuperset(changes):
        raise ValueError(f"with_run_values changes only {sorted(_VECTORIZED_ATTRS)}, got {sorted(changes)}")
    if not changes:
        return base
    training = _shallow_copy(base.config.training, changes)
    config = _shallow_copy(base.config, {"training": training})
    if run_id is None:
        run_id = run_id_with(base, changes)
    return JobSpec(run_id, base.inal_id, base.pack_key, seed_from_hash(run_id), base.inal_seed, config)


_VECTORIZED_ATTRS = frozenset({"gamma", "sigma", "seed"})  # Training's names of VECTORIZED_KEYS


def _shallow_copy(obj: Any, changes: Mapping[str, Any]) -> Any:
    """A frozen dataclass instance's copy with some attributes replaced (no constructor call)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def config_ids(config: JobConfig) -> tuple[str, str]:
    """``(config_id, inal_config_id)`` of a validated config (``sweeps.spec.config_id_keys``)."""
    flat: list = []
    t, tr, inal, net = config.target, config.training, config.inal, config.network
    params = tuple(f"target.{name}" for name, _ in t.params)
    config_part = (t.name, t.c, t.params, net.width, net.depth, net.bias, config.init.name, inal.estimator,
                   inal.n_inits, inal.n_inputs)
    config_id = _memo_hash("config", (config_part, tr.T, tr.gamma, tr.sigma, tr.A, tr.precision, tr.loss, tr.batch,
                                      tr.N_spec, tr.gamma_schedule, tr.checkpoints, tr.n_eval),
                           CONFIG_ID_KEYS + params, config, flat)
    inal_config_id = _memo_hash("inal_config", config_part, INAL_CONFIG_ID_KEYS + params, config, flat)
    return config_id, inal_config_id


def _check_memo_keys() -> None:
    """The memo keys above hold every value of their hashed sets (FIELDS may not grow unseen)."""
    covered = {"n", "c", "target", "target_params", "width", "depth", "bias", "init", "inal_method", "n_inits",
               "n_inputs", "T", "A", "precision", "loss", "batch", "N_spec", "N", "gamma_schedule", "checkpoints",
               "n_eval", "estimator", "gamma", "sigma", "train_seed"}
    for keys in (INAL_KEYS, _PACK_KEYS, CONFIG_ID_KEYS, INAL_CONFIG_ID_KEYS, VECTORIZED_KEYS):
        assert set(keys) <= covered, sorted(set(keys) - covered)


_check_memo_keys()
assert VECTORIZED_KEYS == ("gamma", "sigma", "train_seed"), "update _run_hash and make_job"


def dedupe_jobs(jobs: Iterable[JobSpec]) -> list[JobSpec]:
    """Keep the first job of each ``run_id`` (e.g. majority asked for c=1,2,3 is one job)."""
    seen: set[str] = set()
    unique = []
    for job in jobs:
        if job.run_id not in seen:
            seen.add(job.run_id)
            unique.append(job)
    return unique


from .provenance import git_commit  # noqa: E402,F401  (moved to sweeps/provenance.py; re-exported)
