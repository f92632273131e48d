"""Validation of one composed job config: typed values, ranges and names, checked at the edge.

``validate_job(cfg)`` turns a Hydra-composed ``DictConfig`` (see ``sweeps/conf/config.yaml``)
into a :class:`sweeps.jobs.JobSpec`, or raises :class:`ConfigError` whose message names the
key, the value given and what is allowed, e.g.::

    invalid n='abc' (allowed: an integer >= 1)
    invalid target.name='parityy' (allowed: one of full_parity, majority, parity, planted, staircase)

It is pure and cheap (no files, no tensors beyond building the target object), so the launcher
validates every job of a sweep before it schedules any work.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig, OmegaConf

import inal_core
from inal_core import inal as _inal
from inal_core import ngd as _ngd
from inal_core.targets import available_targets, make_target

from .jobs import JobSpec, make_job

__all__ = [
    "ConfigError",
    "validate_job",
    "DEVICES",
    "ESTIMATORS",
    "LOSSES",
    "PRECISIONS",
    "GAMMA_SCHEDULES",
]

ESTIMATORS = tuple(_inal.METHODS)  # auto, exact, mc, junta
LOSSES = tuple(_ngd.LOSSES)  # squared, correlation, hinge
PRECISIONS = tuple(_ngd.PRECISIONS)  # clip, round
GAMMA_SCHEDULES = tuple(_ngd.GAMMA_SCHEDULES)
DEVICES = ("auto", "cpu", "cuda", "cuda:<index>")
PARITY_SUBSETS = ("first", "random")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]*$")
_GIB = 1 << 30


class ConfigError(ValueError, CompactHydraException):
    """A config value that is not allowed; the message names the key, the value and what is allowed.

    A ``CompactHydraException``, so that Hydra's command line prints the message alone (no
    traceback) and exits non-zero.
    """

    def __init__(self, key: str, value: Any, allowed: str, detail: str = "") -> None:
        self.key, self.value, self.allowed = key, value, allowed
        extra = f": {detail}" if detail else ""
        super().__init__(f"invalid {key}={value!r} (allowed: {allowed}){extra}")


# --------------------------------------------------------------------------- typed readers


def _get(cfg: DictConfig, key: str, default: Any = ...) -> Any:
    """The value at dotted ``key``; missing keys are an error unless a default is given."""
    value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    if value is ...:
        raise ConfigError(key, None, "the key must be present (see sweeps/conf/config.yaml)")
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_int(key: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (integral floats such as ``8.0`` accepted) with ``value >= minimum``."""
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if not _is_number(value) or not math.isfinite(value) or float(value) != int(value):
        raise ConfigError(key, value, allowed)
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(key, value, allowed)
    return value


def read_float(key: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
               minimum: float | None = None) -> float:
    """``value`` as a finite float, optionally ``> 0``, ``>= 0`` or ``>= minimum``."""
    if positive:
        allowed = "a finite number > 0"
    elif nonnegative:
        allowed = "a finite number >= 0"
    elif minimum is not None:
        allowed = f"a finite number >= {minimum:g}"
    else:
        allowed = "a finite number"
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(key, value, allowed)
    value = float(value)
    if (positive and value <= 0) or (nonnegative and value < 0) or (minimum is not None and value < minimum):
        raise ConfigError(key, value, allowed)
    return value


def read_choice(key: str, value: Any, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(choices))
    return value


def read_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")
    return value


# --------------------------------------------------------------------------- pieces


def _available_targets() -> tuple[str, ...]:
    return tuple(sorted(available_targets()))


def read_extension(key: str, spec: Any, n: int) -> tuple[str, int]:
    """The extension spec (``"n^2"``, ``"2n"`` or an integer >= n) and the resolved ``N``."""
    allowed = f'"n^2" (alias n2), "2n" or an integer >= n (n={n})'
    aliases = {"n^2": "n^2", "n**2": "n^2", "n2": "n^2", "2n": "2n", "2*n": "2n"}  # n^2 must be quoted on a command line
    if isinstance(spec, str) and spec.strip() in aliases:
        spec = aliases[spec.strip()]
        return spec, (n * n if spec == "n^2" else 2 * n)
    if isinstance(spec, str):
        raise ConfigError(key, spec, allowed)
    N = read_int(key, spec) if _is_number(spec) else None
    if N is None or N < n:
        raise ConfigError(key, spec, allowed)
    return str(N), N


def read_checkpoints(key: str, value: Any, T: int) -> int | list[int]:
    """A count of evenly spaced checkpoints (>= 1; T always included) or an increasing list of steps in [0, T]."""
    allowed = f"an integer count >= 1 or an increasing list of steps in [0, T={T}]"
    if isinstance(value, list):
        if not value or not all(_is_number(s) and float(s) == int(s) for s in value):
            raise ConfigError(key, value, allowed)
        steps = [int(s) for s in value]
        if any(s < 0 or s > T for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ConfigError(key, value, allowed)
        return steps
    if not _is_number(value) or float(value) != int(value) or int(value) < 1:
        raise ConfigError(key, value, allowed)
    return int(value)


def read_device(key: str, value: Any) -> str:
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value)):
        return value
    raise ConfigError(key, value, "one of " + ", ".join(DEVICES))


def resolve_target(name: str, n: int, c: float, params: Mapping[str, Any]):
    """Build the target on n bits; a family error becomes a ConfigError naming ``target``."""
    try:
        return make_target(name, n, c=int(c) if name == "parity" else c, **params)
    except (ValueError, TypeError) as err:  # the family's own check, e.g. an unknown parameter
        raise ConfigError("target", {"name": name, "n": n, "c": c, **params},
                          "parameters accepted by inal_core.make_target", str(err)) from None


def check_inal(target, spec: inal_core.NetworkSpec, v: Mapping[str, Any]) -> str:
    """The INAL request must be feasible (``inal_core.inal.check_inal_request``: exact enumeration
    within ``MAX_EXACT_BITS`` and the memory budget, junta within its bit limit ...); returns the
    method ``auto`` resolves to."""
    budget = v["memory_budget_gb"]
    try:
        return _inal.check_inal_request(target, spec, n_inits=v["n_inits"], method=v["estimator"],
                                  n_inputs=v["n_inputs"] or None, memory_budget_bytes=int(budget * _GIB))
    except ValueError as err:
        if "memory_budget" in str(err):
            raise ConfigError("inal.memory_budget_gb", budget,
                              "a budget the smallest INAL chunk fits in, or another inal.estimator",
                              str(err)) from None
        raise ConfigError("inal.estimator", v["estimator"],
                          f"one of {', '.join(ESTIMATORS)} that can serve n={v['n']} "
                          f"(exact enumeration only while it fits inal.memory_budget_gb={budget:g})",
                          str(err)) from None


# --------------------------------------------------------------------------- the job


def validate_job(cfg: DictConfig | Mapping[str, Any]) -> JobSpec:
    """Check every value of one composed job config and return its :class:`JobSpec`.

    Raises
    ------
    ConfigError
        On the first value that is not allowed, naming the key, the value and what is allowed.
    """
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(dict(cfg))
    v: dict[str, Any] = {}

    # location, not identity
    study = _get(cfg, "study")
    if not isinstance(study, str) or not _STUDY_NAME.match(study):
        raise ConfigError("study", study, "a name of letters, digits and _ . = - (no slashes)")
    results_dir = _get(cfg, "results_dir")
    if not isinstance(results_dir, str) or not results_dir.strip():
        raise ConfigError("results_dir", results_dir, "a non-empty local path or pyarrow.fs URI")
    device = read_device("device", _get(cfg, "device"))

    # study axes
    n = read_int("n", _get(cfg, "n"), minimum=1)
    v["n"] = n
    c_requested = _get(cfg, "c")
    v["width"] = read_int("width", _get(cfg, "width"), minimum=1)
    v["depth"] = read_int("depth", _get(cfg, "depth"), minimum=1)
    T = v["T"] = read_int("T", _get(cfg, "T"), minimum=0)
    v["gamma"] = read_float("gamma", _get(cfg, "gamma"), positive=True)
    v["sigma"] = read_float("sigma", _get(cfg, "sigma"), nonnegative=True)

    # target: name, family parameters, resolved c
    target_cfg = _get(cfg, "target")
    if not isinstance(target_cfg, dict):
        raise ConfigError("target", target_cfg, "a target group: " + ", ".join(_available_targets()))
    name = read_choice("target.name", target_cfg.get("name"), _available_targets())
    params = {k: val for k, val in target_cfg.items() if k != "name"}
    c = read_float("c", c_requested)
    if name == "parity":
        k = read_int("c", c_requested, minimum=1)
        if k > n:
            raise ConfigError("c", c_requested, f"parity degree k = c in 1..n (n={n})")
        if "subset" in params:
            read_choice("target.subset", params["subset"], PARITY_SUBSETS)
        if "subset_seed" in params:
            read_int("target.subset_seed", params["subset_seed"], minimum=0)
    elif name == "planted":
        c = read_float("c", c_requested, minimum=1.0)
    target = resolve_target(name, n, c, params)
    v["target"] = name
    v["c"] = float(target.nominal_c)
    for key, val in sorted(params.items()):  # the family's inputs (make_target's keyword arguments)
        v[f"target.{key}"] = val
    # what the family made of them (e.g. majority's bits, planted's realised p), recorded with every row
    v["target_params"] = ",".join(f"{k}={val}" for k, val in sorted(target.params.items()))

    # network
    v["bias"] = read_bool("network.bias", _get(cfg, "network.bias"))
    v["init"] = read_choice("init.name", _get(cfg, "init.name"), inal_core.INITS)

    # training (recorded even for T=0 so the identity is complete)
    v["A"] = read_float("train.A", _get(cfg, "train.A"), positive=True)
    v["precision"] = read_choice("train.precision", _get(cfg, "train.precision"), PRECISIONS)
    v["loss"] = read_choice("train.loss", _get(cfg, "train.loss"), LOSSES)
    batch = _get(cfg, "train.batch")
    v["batch"] = 0 if batch is None else read_int("train.batch", batch, minimum=0)
    v["N_spec"], v["N"] = read_extension("train.N", _get(cfg, "train.N"), n)
    v["gamma_schedule"] = read_choice("train.gamma_schedule",
                                      _get(cfg, "train.gamma_schedule", "constant"), GAMMA_SCHEDULES)
    v["checkpoints"] = read_checkpoints("train.checkpoints", _get(cfg, "train.checkpoints"), T)
    v["n_eval"] = read_int("train.n_eval", _get(cfg, "train.n_eval"), minimum=2)
    v["train_seed"] = read_int("train.seed", _get(cfg, "train.seed"), minimum=0)

    # INAL
    v["estimator"] = read_choice("inal.estimator", _get(cfg, "inal.estimator"), ESTIMATORS)
    v["n_inits"] = read_int("inal.n_inits", _get(cfg, "inal.n_inits"), minimum=1)
    n_inputs = _get(cfg, "inal.n_inputs")
    v["n_inputs"] = 0 if n_inputs is None else read_int("inal.n_inputs", n_inputs, minimum=2)
    v["memory_budget_gb"] = read_float("inal.memory_budget_gb", _get(cfg, "inal.memory_budget_gb"),
                                       positive=True)
    inal_spec = inal_core.NetworkSpec(n, v["width"], v["depth"], bias=v["bias"], init=v["init"])
    v["inal_method"] = check_inal(target, inal_spec, v)

    return make_job(v, study=study, results_dir=results_dir, device=device)
