"""The typed job description: one frozen, nested dataclass per part of a job, and the one table
of its config keys.

A job (one cell of a grid) is a :class:`JobConfig`::

    JobConfig(n, target=TargetSpec(name, c, params, resolved),
              network=Network(width, depth, bias), init=Init(name),
              training=Training(T, gamma, sigma, A, precision, loss, batch, N_spec, N,
                                gamma_schedule, checkpoints, n_eval, seed),
              inal=InalEstimator(estimator, method, n_inits, n_inputs, memory_budget_gb),
              location=Location(study, results_dir, device))

``sweeps.schema.validate_job`` builds it from a composed config (the only way to get one:
every value in it is validated and in its canonical type, ``subset_seed=0.0`` is ``0``);
``sweeps.jobs`` hashes it into identities; ``sweeps.columns`` turns it into Parquet rows.

:data:`FIELDS` is the one table of config keys: the config path of each value, its name in
the flat ``JobSpec.values`` mapping, and which identities it enters. The known keys of the
composed config (anything else is rejected, naming the key), the identity key sets and the
``config_id`` key set are all derived from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from inal_core.targets import get_family

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


@dataclass(frozen=True)
class Network:
    width: int
    depth: int
    bias: bool


@dataclass(frozen=True)
class Init:
    name: str


@dataclass(frozen=True)
class Training:
    """Noisy GD: ``T`` steps (0 = INAL only) on the extension to ``N`` bits (``N_spec``: as written)."""

    T: int
    gamma: float
    sigma: float
    A: float
    precision: str
    loss: str
    batch: int
    N_spec: str
    N: int
    gamma_schedule: str
    checkpoints: int | tuple[int, ...]
    n_eval: int
    seed: int


@dataclass(frozen=True)
class InalEstimator:
    """``estimator`` as requested, ``method`` the one it resolves to for this job."""

    estimator: str
    method: str
    n_inits: int
    n_inputs: int  # 0: the engine's default
    memory_budget_gb: float


@dataclass(frozen=True)
class Location:
    """Where results go and where the job runs: never part of an identity."""

    study: str
    results_dir: str
    device: str


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


@dataclass(frozen=True)
class Field:
    """One value of a job: its config path (None: derived, not a config key), its flat name in
    ``JobSpec.values``, and the identities it enters.

    ``run``: hashed into ``run_id`` (when T > 0); ``inal``: into ``inal_id``; ``vectorized``: may differ
    inside a pack (so not in ``pack_key``); ``config``: in ``config_id`` (every config value but the n
    axis, the seed and the location; requested, not resolved, values)."""

    path: str | None
    flat: str
    run: bool = True
    inal: bool = False
    vectorized: bool = False
    config: bool = True


FIELDS: tuple[Field, ...] = (
    Field("n", "n", inal=True, config=False),
    Field("c", "c", inal=True),  # the family's nominal c
    Field("target.name", "target", inal=True),
    # target.<param>: one field per family parameter, added by flat_values (inal=True, config=True)
    Field(None, "target_params", run=False, config=False),  # resolved from the inputs: recorded, not hashed
    Field("width", "width", inal=True),
    Field("depth", "depth", inal=True),
    Field("network.bias", "bias", inal=True),
    Field("init.name", "init", inal=True),
    Field("T", "T"),
    Field("gamma", "gamma", vectorized=True),
    Field("sigma", "sigma", vectorized=True),
    Field("train.A", "A"),
    Field("train.precision", "precision"),
    Field("train.loss", "loss"),
    Field("train.batch", "batch"),
    Field("train.N", "N_spec"),
    Field(None, "N", config=False),  # resolved from N_spec and n
    Field("train.gamma_schedule", "gamma_schedule"),
    Field("train.checkpoints", "checkpoints"),
    Field("train.n_eval", "n_eval"),
    Field("train.seed", "train_seed", vectorized=True, config=False),
    Field("inal.estimator", "estimator", run=False),  # enters through the method it resolves to
    Field(None, "inal_method", inal=True, config=False),  # resolved from the estimator and n
    Field("inal.n_inits", "n_inits", inal=True),
    Field("inal.n_inputs", "n_inputs", inal=True),
    Field("inal.memory_budget_gb", "memory_budget_gb", run=False, config=False),  # a resource setting
    Field("study", "study", run=False, config=False),
    Field("results_dir", "results_dir", run=False, config=False),
    Field("device", "device", run=False, config=False),
)
_LOCATION = ("study", "results_dir", "device")

#: config groups and their keys (``target``'s keys are ``name`` plus the family's parameters)
GROUPS: dict[str, tuple[str, ...]] = {}
for _f in FIELDS:
    if _f.path and "." in _f.path:
        _group, _key = _f.path.split(".", 1)
        GROUPS.setdefault(_group, ())
        GROUPS[_group] += (_key,)
#: top-level keys of a composed task config (``hydra`` is Hydra's, not the task's)
KNOWN_KEYS: tuple[str, ...] = tuple(f.path for f in FIELDS if f.path and "." not in f.path) + tuple(GROUPS)

RUN_KEYS = tuple(f.flat for f in FIELDS if f.run)
INAL_KEYS = tuple(f.flat for f in FIELDS if f.inal)
VECTORIZED_KEYS = tuple(f.flat for f in FIELDS if f.vectorized)
#: config_id of a runs row: every config value but n, train.seed and the location
CONFIG_ID_KEYS = tuple(f.flat for f in FIELDS if f.config)
#: config_id of an inal row: the INAL config values but n (the estimator as requested)
INAL_CONFIG_ID_KEYS = tuple(f.flat for f in FIELDS if f.config and (f.inal or f.flat == "estimator"))


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
    """The flat mapping of every value (``JobSpec.values``; the names of :data:`FIELDS`), with
    ``target.<param>`` for each family parameter. ``checkpoints`` is a list or an int."""
    t, net, tr, inal, loc = cfg.target, cfg.network, cfg.training, cfg.inal, cfg.location
    values = {
        "n": cfg.n, "c": t.c, "target": t.name, "target_params": t.resolved,
        "width": net.width, "depth": net.depth, "bias": net.bias, "init": cfg.init.name,
        "T": tr.T, "gamma": tr.gamma, "sigma": tr.sigma, "A": tr.A, "precision": tr.precision,
        "loss": tr.loss, "batch": tr.batch, "N_spec": tr.N_spec, "N": tr.N,
        "gamma_schedule": tr.gamma_schedule,
        "checkpoints": list(tr.checkpoints) if isinstance(tr.checkpoints, tuple) else tr.checkpoints,
        "n_eval": tr.n_eval, "train_seed": tr.seed,
        "estimator": inal.estimator, "inal_method": inal.method, "n_inits": inal.n_inits,
        "n_inputs": inal.n_inputs, "memory_budget_gb": inal.memory_budget_gb,
        "study": loc.study, "results_dir": loc.results_dir, "device": loc.device,
    }
    for name, value in t.params:
        values[f"target.{name}"] = value
    return values


def describe(mapping: Mapping[str, Any]) -> str:
    """``k=v`` text of a mapping, keys sorted (how ``target_params`` is written)."""
    return ",".join(f"{k}={v}" for k, v in sorted(mapping.items()))
