"""The typed job description: one frozen, nested dataclass per part of a job.

A job (one cell of a grid) is a :class:`JobConfig`::

    JobConfig(n, target=TargetSpec(name, c, params, resolved),
              network=Network(width, depth, bias), init=Init(name),
              training=Training(T, gamma, sigma, A, precision, loss, batch, N_spec, N,
                                gamma_schedule, checkpoints, n_eval, seed),
              inal=InalEstimator(estimator, method, n_inits, n_inputs, memory_budget_gb),
              location=Location(study, results_dir, device))

``sweeps.validation.validate_job`` builds it from a composed config (the only way to get one:
every value in it is validated and in its canonical type, ``subset_seed=0.0`` is ``0``);
``sweeps.jobs`` hashes it into identities; ``sweeps.columns`` turns it into Parquet rows.

The parts ``Network``, ``Init``, ``Training``, ``InalEstimator`` and ``Location`` are built from
the table of settings (``sweeps.settings.SETTINGS``: their fields in table order), as are the known
keys of the composed config (anything else is rejected, naming the key), the identity key sets
and the ``config_id`` key set. ``FIELDS`` is that table under its former name.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, make_dataclass
from typing import Any, Mapping

from inal_core.targets import get_family

from .settings import GROUPS, KNOWN_KEYS, SETTINGS, Setting, keys_of

__all__ = [
    "TargetSpec", "Network", "Init", "Training", "InalEstimator", "Location", "JobConfig",
    "Field", "FIELDS", "KNOWN_KEYS", "GROUPS",
    "RUN_KEYS", "INAL_KEYS", "VECTORIZED_KEYS", "CONFIG_ID_KEYS", "INAL_CONFIG_ID_KEYS",
    "config_id_keys", "flat_values",
]


@dataclass(frozen=True)
class TargetSpec:
    """The target family ``name``, its nominal ``c`` and its validated ``params`` (every parameter
    of the family, sorted by name, defaults filled in; None where the family derives it from n);
    ``resolved``: what the family made of them on n bits, as text (``k=2,subset=first,...``)."""

    name: str
    c: float
    params: tuple[tuple[str, Any], ...]
    resolved: str

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    def make(self, n: int):
        """The ``inal_core`` target on ``n`` bits (built by the family's registry entry)."""
        return get_family(self.name).build(n, self.c, dict(self.params))  # imports a user's family by its path


def _part(cls_name: str, part: str, doc: str) -> type:
    """A frozen dataclass of the settings of ``part`` (``sweeps.settings.SETTINGS``), in table order."""
    fields = [(s.name, s.type) for s in SETTINGS if s.part == part]
    cls = make_dataclass(cls_name, fields, frozen=True)
    cls.__module__, cls.__doc__ = __name__, doc  # pickled by name (Ray ships jobs to its workers)
    return cls


Network = _part("Network", "network", "The network: ``depth`` hidden layers of ``width`` neurons, biases or not.")
Init = _part("Init", "init", "The initialization scheme.")
Training = _part("Training", "training", "Noisy GD: ``T`` steps (0 = INAL only) on the extension to ``N`` bits "
                                         "(``N_spec``: as written), and the rest of its settings.")
InalEstimator = _part("InalEstimator", "inal", "``estimator`` as requested, ``method`` the one it resolves to "
                                               "for this job; ``n_inputs`` 0: the engine's default.")
Location = _part("Location", "location", "Where results go and where the job runs: never part of an identity.")


@dataclass(frozen=True)
class JobConfig:
    n: int
    target: TargetSpec
    network: Network
    init: Init
    training: Training
    inal: InalEstimator
    location: Location


# --------------------------------------------------------------------------- the key table

#: the one table of a job's values (``sweeps.settings.SETTINGS``; ``Field`` is its old name)
Field = Setting
FIELDS: tuple[Setting, ...] = SETTINGS

RUN_KEYS = tuple(s.flat for s in SETTINGS if s.run)
INAL_KEYS = tuple(s.flat for s in keys_of("inal"))
VECTORIZED_KEYS = tuple(s.flat for s in keys_of("vectorized"))
#: config_id of a runs row: every config value but n, train.seed and the location
CONFIG_ID_KEYS = tuple(s.flat for s in keys_of("config"))
#: config_id of an inal row: the INAL config values but n (the estimator as requested)
INAL_CONFIG_ID_KEYS = tuple(s.flat for s in keys_of("inal_config"))


def config_id_keys(kind: str = "runs", target_params: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The flat value names a ``config_id`` covers, for ``kind`` ``"runs"`` or ``"inal"``; with a
    family's parameter names, their ``target.<param>`` entries too. Two rows with one config_id
    differ only in ``n`` (and, in ``runs``, ``train.seed``): a fit across n groups by it.

    >>> "n" in config_id_keys("runs") or "train_seed" in config_id_keys("runs")
    False
    """
    if kind not in ("runs", "inal"):
        raise ValueError(f"kind must be 'runs' or 'inal', got {kind!r}")
    keys = CONFIG_ID_KEYS if kind == "runs" else INAL_CONFIG_ID_KEYS
    return keys + tuple(f"target.{p}" for p in target_params)


def flat_values(cfg: JobConfig) -> dict[str, Any]:
    """The flat mapping of every value (``JobSpec.values``; the names of ``sweeps.settings.SETTINGS``),
    with ``target.<param>`` for each family parameter. Tuples (``checkpoints`` as a list of steps)
    are given as lists."""
    values = {flat: (list(v) if type(v) is tuple else v) for flat, v in zip(_FLAT_NAMES, _GET_ALL(cfg))}
    for name, value in cfg.target.params:
        values[f"target.{name}"] = value
    return values


_FLAT_NAMES = tuple(s.flat for s in SETTINGS)
_GET_ALL = operator.attrgetter(*(s.attr for s in SETTINGS))


def describe(mapping: Mapping[str, Any]) -> str:
    """``k=v`` text of a mapping, keys sorted (how ``target_params`` is written)."""
    return ",".join(f"{k}={v}" for k, v in sorted(mapping.items()))
