"""Job identity: what a job computes, its hashes, and its seeds.

A job is one composed config (one cell of a Hydra grid), validated into a typed
:class:`sweeps.spec.JobConfig` by ``sweeps.validation.validate_job``. Its **identity** (DESIGN.md) is
the BLAKE2b hash of the canonical JSON of its validated values (so ``target.subset_seed=0`` and
``=0.0`` are one cell) together with ``inal_core.ENGINE_VERSION``. Where results go (``study``,
``results_dir``) and where they are computed (``device``) are not part of it, and neither is
anything under ``hydra.*``. The git commit is provenance, recorded but not hashed. Which value
enters which hash is stated once, in the table of settings (``sweeps.settings.SETTINGS``).

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

The hashes of this typed spec differ from those of the flat spec before it (0767b9c and earlier):
``python -m sweeps.store migrate`` recomputes the identities of such a study's rows from their
stored config columns. A setting added later is left out of every payload at its default
(``Setting.omit_at_default``), so adding it changes no existing identity.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import operator
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import inal_core

from .settings import VECTORIZED_ATTRS, keys_of
from .spec import INAL_KEYS, VECTORIZED_KEYS, JobConfig, Location, flat_values

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


class _KeySet:
    """The settings one hash covers (``sweeps.settings.keys_of``): their flat names, one getter of
    their typed values from a ``JobConfig`` (one C call), and which are left out at their default."""

    def __init__(self, kind: str) -> None:
        settings = keys_of(kind)
        self.names = tuple(s.flat for s in settings)
        self.get = operator.attrgetter(*(s.attr for s in settings))
        self.omit = tuple((i, s.default) for i, s in enumerate(settings) if s.omit_at_default)
        assert len(settings) > 1, kind  # attrgetter of one name returns a scalar, not a tuple


_KEYSETS = {kind: _KeySet(kind) for kind in ("inal", "pack", "pack0", "config", "inal_config")}
_memo: dict[tuple, str] = {}


def _memo_hash(kind: str, label: str, config: JobConfig) -> str:
    """``identity_hash(label, the values of the settings kind covers, with the family parameters)``,
    memoized on exactly those typed values (many cells share an INAL setting, a pack or a config):
    the memo key is the hashed content itself, so a setting added to the table cannot be left out
    of it. Settings declared ``omit_at_default`` are left out of the payload at their default."""
    keyset = _KEYSETS[kind]
    vals = keyset.get(config)
    params = config.target.params
    key = (kind, int(inal_core.ENGINE_VERSION), vals, params)
    hit = _memo.get(key)
    if hit is None:
        values = dict(zip(keyset.names, vals))
        for i, default in keyset.omit:
            if vals[i] == default and type(vals[i]) is type(default):
                del values[keyset.names[i]]
        for name, value in params:
            values[f"target.{name}"] = value
        if len(_memo) > 500_000:
            _memo.clear()
        hit = _memo[key] = identity_hash(label, values)
    return hit


def seed_from_hash(hex_id: str) -> int:
    """A non-negative 63-bit integer seed taken from the first 16 hex digits of an identity hash."""
    return int(hex_id[:16], 16) & _SEED_MASK


@dataclass(frozen=True)
class JobSpec:
    """One validated job (one cell of a grid). Build it with ``sweeps.validation.validate_job``.

    ``config`` is the typed, nested description (:class:`sweeps.spec.JobConfig`). ``values`` is
    a read-only flat view of it with the names of ``sweeps.settings.SETTINGS`` (``n, c, N, N_spec,
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

    def make_target(self):
        """The ``inal_core`` target on ``n`` bits (parity: ``k = c``)."""
        return self.config.target.make(self.config.n)

    def with_location(self, *, results_dir: str | None = None, study: str | None = None,
                      device: str | None = None) -> "JobSpec":
        """The same job (same identity) written elsewhere or computed on another device."""
        loc = self.config.location
        location = Location(study or loc.study, results_dir or loc.results_dir, device or loc.device)
        return replace(self, config=replace(self.config, location=location))


_VEC = keys_of("vectorized")
#: the values of a T = 0 job's run hash (per-run settings decide nothing there): zeros of their types
_VEC_ZEROS = tuple(s.type(0) for s in _VEC)
_VEC_OMIT = any(s.omit_at_default for s in _VEC)
_NO_CHANGES: Mapping[str, Any] = MappingProxyType({})


def _run_text(vec: Iterable[Any]) -> str:
    """The vectorized part of a run hash's text: ``|value`` per vectorized setting in table order
    (``repr``: a float's shortest round-trip form, the same everywhere); a setting declared
    ``omit_at_default`` adds ``|name=value`` only when not at its default."""
    text = ""
    for s, value in zip(_VEC, vec):
        if not s.omit_at_default:
            text += f"|{value!r}"
        elif not s.at_default(value):
            text += f"|{s.flat}={value!r}"
    return text


def _compile_run_text() -> Callable[[Any, Mapping[str, Any]], str]:
    """``_run_text`` of a Training with some vectorized values replaced, as one f-string built from
    the table: the planner's per-cell path (10^6 cells), 2x cheaper than the loop. Only while no
    vectorized setting is ``omit_at_default`` (then the loop)."""
    if _VEC_OMIT:
        return lambda tr, ch: _run_text(ch.get(s.name, getattr(tr, s.name)) for s in _VEC)
    parts = "".join(f"|{{ch.get({s.name!r}, tr.{s.name})!r}}" for s in _VEC)
    namespace: dict[str, Any] = {}
    exec(f'def run_text(tr, ch):\n    return f"{parts}"\n', namespace)  # noqa: S102 (names from the table)
    return namespace["run_text"]


_RUN_TEXT = _compile_run_text()


def _run_hash(pack_key: str, text: str) -> str:
    """``run_id``: BLAKE2b-128 of ``run|<engine version>|<pack key>`` and the vectorized values
    (``keys_of("vectorized")``: gamma, sigma, train.seed) as fixed-format text (:func:`_run_text`)."""
    text = f"run|{int(inal_core.ENGINE_VERSION)}|{pack_key}{text}"
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def make_job(config: JobConfig) -> JobSpec:
    """Hash a validated :class:`JobConfig` into a :class:`JobSpec` (``sweeps.validation.validate_job`` calls this).

    The hashed value sets are those of ``sweeps.settings.keys_of``; ``run_id`` hashes ``pack_key``
    (every run value but the vectorized ones) with the vectorized values (gamma, sigma, train.seed).
    """
    inal_id = _memo_hash("inal", "inal", config)
    if config.training.T == 0:  # INAL only: training settings decide nothing, so they do not split cells
        pack_key = _memo_hash("pack0", "pack", config)
        run_id = _run_hash(pack_key, _run_text(_VEC_ZEROS))
    else:
        pack_key = _memo_hash("pack", "pack", config)
        run_id = _run_hash(pack_key, _RUN_TEXT(config.training, _NO_CHANGES))
    return JobSpec(run_id, inal_id, pack_key, seed_from_hash(run_id), seed_from_hash(inal_id), config)


def run_id_with(base: JobSpec, changes: Mapping[str, Any]) -> str:
    """The ``run_id`` of :func:`with_run_values` ``(base, changes)`` without building the job."""
    if not changes:
        return base.run_id
    tr = base.config.training
    if tr.T == 0:  # INAL only: the per-run values decide nothing (make_job)
        return base.run_id
    return _run_hash(base.pack_key, _RUN_TEXT(tr, changes))


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


_VECTORIZED_ATTRS = frozenset(VECTORIZED_ATTRS.values())  # Training's names of the vectorized settings


def _shallow_copy(obj: Any, changes: Mapping[str, Any]) -> Any:
    """A frozen dataclass instance's copy with some attributes replaced (no constructor call)."""
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def config_ids(config: JobConfig) -> tuple[str, str]:
    """``(config_id, inal_config_id)`` of a validated config (``sweeps.spec.config_id_keys``)."""
    return _memo_hash("config", "config", config), _memo_hash("inal_config", "inal_config", config)


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
