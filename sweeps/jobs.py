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
import subprocess
from dataclasses import dataclass, field, replace
from pathlib import Path
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


_cache: dict[tuple, str] = {}


def _cached_hash(kind: str, keys: tuple[str, ...], values: Mapping[str, Any]) -> str:
    """``identity_hash`` memoized on the values (many cells share an INAL setting or a pack)."""
    try:
        key = (kind, int(inal_core.ENGINE_VERSION), tuple(
            tuple(values[k]) if isinstance(values[k], list) else values[k] for k in keys))
        hit = _cache.get(key)
    except TypeError:  # an unhashable value: hash without the memo
        return identity_hash(kind, {k: values[k] for k in keys})
    if hit is None:
        if len(_cache) > 200_000:
            _cache.clear()
        hit = _cache[key] = identity_hash(kind, {k: values[k] for k in keys})
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
    config_id: str
    inal_config_id: str
    seed: int
    inal_seed: int
    config: JobConfig = field(hash=False, compare=False, repr=False)

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


def make_job(config: JobConfig) -> JobSpec:
    """Hash a validated :class:`JobConfig` into a :class:`JobSpec` (``sweeps.schema.validate_job`` calls this)."""
    values = flat_values(config)
    params = tuple(f"target.{name}" for name, _ in config.target.params)
    inal_keys = INAL_KEYS + params
    inal_id = _cached_hash("inal", inal_keys, values)
    if config.training.T == 0:  # INAL only: training settings decide nothing, so they do not split cells
        run_keys = pack_keys = inal_keys + ("T",)
    else:
        run_keys, pack_keys = RUN_KEYS + params, _PACK_KEYS + params
    run_id = identity_hash("run", {k: values[k] for k in run_keys})
    pack_key = _cached_hash("pack", pack_keys, values)
    config_id = _cached_hash("config", CONFIG_ID_KEYS + params, values)
    inal_config_id = _cached_hash("inal_config", INAL_CONFIG_ID_KEYS + params, values)
    return JobSpec(run_id, inal_id, pack_key, config_id, inal_config_id,
                   seed_from_hash(run_id), seed_from_hash(inal_id), config)


def dedupe_jobs(jobs: Iterable[JobSpec]) -> list[JobSpec]:
    """Keep the first job of each ``run_id`` (e.g. majority asked for c=1,2,3 is one job)."""
    seen: set[str] = set()
    unique = []
    for job in jobs:
        if job.run_id not in seen:
            seen.add(job.run_id)
            unique.append(job)
    return unique


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the working tree the code runs from ("+dirty" if modified; "unknown" outside git)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        if not sha:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
