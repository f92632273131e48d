"""Validation of one composed job config: typed values, ranges and names, checked at the edge.

``validate_job(cfg)`` turns a Hydra-composed ``DictConfig`` (see ``sweeps/conf/config.yaml``)
into a :class:`sweeps.jobs.JobSpec`, or raises :class:`ConfigError` whose message names the
key, the value given and what is allowed, e.g.::

    invalid n='abc' (allowed: an integer >= 1)
    invalid target.name='parityy' (allowed: one of full_parity, majority, parity, planted, staircase, or
    module:attribute naming your own inal_core.targets.Family)

It is cheap (no tensors beyond building the target object; the target, the INAL feasibility and
the ``results_dir`` check are cached per distinct value, so 10^6 cells of a grid cost about what
their scalar checks cost), so the launcher validates every job of a sweep before it schedules any
work. Every key of the task config must be one the job spec knows (``sweeps.settings.SETTINGS``; the
target group's keys are ``name`` and the family's parameters): ``+widht=8`` is refused, naming
the key. Each family's own inputs are checked by its validator in ``inal_core.targets.FAMILIES``;
``target.name`` may also be the import path of a user's own family (``read_target_name``).
"""

from __future__ import annotations

import difflib
import functools
import math
import os
import re
from typing import Any, Callable, Mapping, Sequence

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, ListConfig, OmegaConf

from inal_core import specs as _specs  # the engines' contracts in plain Python: validation imports no torch
from inal_core.losses import LOSSES as _LOSSES
from inal_core.targets import (FamilyImportError, TargetConfigError, available_targets, extension_allowed, get_family,
                               load_family, parse_extension)

from .jobs import JobSpec, make_job
from .settings import DEFAULTS, GROUPS, KNOWN_KEYS, MAX_INPUT_BITS, PARTS, REQUIRED, SETTINGS, Setting
from .spec import InalEstimator, Init, JobConfig, Location, Network, TargetSpec, Training, describe

__all__ = [
    "ConfigError",
    "validate_job",
    "DEVICES",
    "ESTIMATORS",
    "LOSSES",
    "PRECISIONS",
    "GAMMA_SCHEDULES",
    "MAX_INPUT_BITS",
    "MAX_TRAIN_BITS",
    "MAX_TRAIN_PARAMETERS",
    "check_keys",
    "check_results_dir",
]

ESTIMATORS = tuple(_specs.METHODS)  # auto, exact, mc, junta
LOSSES = tuple(_LOSSES)  # squared, correlation, hinge
PRECISIONS = tuple(_specs.PRECISIONS)  # clip, round
GAMMA_SCHEDULES = tuple(_specs.GAMMA_SCHEDULES)
DEVICES = ("auto", "cpu", "cuda", "cuda:<index>")
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=-]*")  # fullmatch: no trailing newline
_GIB = 1 << 30
#: N (the extension trained on) at most this when T > 0: every step holds a batch of N-bit inputs
#: and each run an N x width first layer (4096 = n^2 at n = 64); batch=0 is exact only while
#: 2^N <= 2^16 (``NGDConfig.exact_max_inputs``), fresh batches beyond
MAX_TRAIN_BITS = 4096
#: parameters E of one trained network at most this: a run holds theta, the next theta and the
#: gradient as float32 (3 x 4 bytes x 2^28 = 3 GiB per run)
MAX_TRAIN_PARAMETERS = 1 << 28


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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_int(key: str, value: Any, minimum: int | None = None, maximum: int | None = None, why: str = "") -> int:
    """``value`` as an int (integral floats such as ``8.0`` accepted) with ``minimum <= value <= maximum``."""
    if type(value) is int and (minimum is None or value >= minimum) and (maximum is None or value <= maximum):
        return value  # the common case, without building the message
    if maximum is None:
        allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    else:
        allowed = f"an integer >= {minimum} and <= {maximum}"
    if not _is_number(value) or not math.isfinite(value) or float(value) != int(value):
        raise ConfigError(key, value, allowed)
    value = int(value)
    if minimum is not None and value < minimum:
        raise ConfigError(key, value, allowed)
    if maximum is not None and value > maximum:
        raise ConfigError(key, value, allowed, why)
    return value


def read_float(key: str, value: Any, *, positive: bool = False, nonnegative: bool = False,
               minimum: float | None = None) -> float:
    """``value`` as a finite float, optionally ``> 0``, ``>= 0`` or ``>= minimum``."""
    if type(value) is float and -math.inf < value < math.inf and not (
            (positive and value <= 0) or (nonnegative and value < 0) or (minimum is not None and value < minimum)):
        return value  # the common case, without building the message
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
    if type(value) is not str or value not in choices:
        raise ConfigError(key, value, "one of " + ", ".join(choices))
    return value


def read_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(key, value, "true or false")
    return value


# --------------------------------------------------------------------------- pieces


def _available_targets() -> tuple[str, ...]:
    return tuple(sorted(available_targets()))


def read_target_name(key: str, value: Any) -> str:
    """A built-in family's name, or the import path ``"module:attribute"`` of a user's own
    ``inal_core.targets.Family`` (imported and registered here, so every later step finds it)."""
    if type(value) is str and ":" in value:
        try:
            load_family(value)
        except FamilyImportError as err:
            raise ConfigError(key, value, "a built-in family or an import path module:attribute of an "
                                          "inal_core.targets.Family", err.why) from None
        return value
    if type(value) is not str or value not in _TARGETS:
        raise ConfigError(key, value, "one of " + ", ".join(_TARGETS) + ", or module:attribute naming your own "
                                      "inal_core.targets.Family")
    return value


def read_extension(key: str, spec: Any, n: int) -> tuple[str, int]:
    """The extension spec (``"n^2"``, ``"2n"`` or an integer >= n) and the resolved ``N``: the rule
    is parsed by ``inal_core.targets.parse_extension``, the one place of its aliases."""
    try:
        return parse_extension(spec, n)
    except ValueError:
        raise ConfigError(key, spec, extension_allowed(n)) from None


def read_checkpoints(key: str, value: Any, T: int) -> int | tuple[int, ...]:
    """A count of evenly spaced checkpoints (>= 1; T always included) or an increasing list of steps in [0, T]."""
    allowed = f"an integer count >= 1 or an increasing list of steps in [0, T={T}]"
    if isinstance(value, (list, tuple)):
        if not value or not all(_is_number(s) and math.isfinite(s) and float(s) == int(s) for s in value):
            raise ConfigError(key, value, allowed)
        steps = tuple(int(s) for s in value)
        if any(s < 0 or s > T for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
            raise ConfigError(key, value, allowed)
        return steps
    if not _is_number(value) or not math.isfinite(value) or float(value) != int(value) or int(value) < 1:
        raise ConfigError(key, value, allowed)
    return int(value)


def read_device(key: str, value: Any) -> str:
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", value)):
        return value
    raise ConfigError(key, value, "one of " + ", ".join(DEVICES))


def read_study(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _STUDY_NAME.fullmatch(value):
        raise ConfigError(key, value, "a name of ASCII letters, digits and _ . = - (A-Z a-z 0-9 _ . = -) starting "
                                      "with a letter or digit (no slashes, spaces or newlines; nothing else)")
    return value


# --------------------------------------------------------------------------- results_dir


def _known_schemes() -> tuple[str, ...]:
    """URI schemes this pyarrow build opens (``pyarrow.fs.FileSystem.from_uri``)."""
    import pyarrow.fs as pafs

    schemes = ["file", "mock"]
    for flag, names in (("S3FileSystem", ("s3",)), ("GcsFileSystem", ("gs", "gcs")),
                        ("HadoopFileSystem", ("hdfs", "viewfs")), ("AzureFileSystem", ("abfs", "abfss"))):
        if hasattr(pafs, flag):
            schemes.extend(names)
    return tuple(schemes)


@functools.lru_cache(maxsize=1)
def _known_schemes_cached() -> tuple[str, ...]:
    return _known_schemes()


@functools.lru_cache(maxsize=256)
def _check_results_dir(results_dir: str, cwd: str, local: bool) -> None:
    """Raise ConfigError unless ``results_dir`` can hold a study (once per distinct value: cached)."""
    key = "results_dir"
    if "://" in results_dir:
        scheme = results_dir.split("://", 1)[0].lower()
        known = _known_schemes_cached()
        if scheme not in known:
            raise ConfigError(key, results_dir, "a local path or a pyarrow.fs URI with a scheme among "
                                                + ", ".join(known))
        if scheme != "file":
            return  # a remote store: its existence and permissions are the store's business
        path = results_dir.split("://", 1)[1]
        if not path.startswith("/"):
            raise ConfigError(key, results_dir, "a file:// URI with an absolute path (file:///abs/path)")
    else:
        path = results_dir
    if not local:
        return
    path = os.path.join(cwd, os.path.expanduser(path))
    probe = os.path.normpath(path)
    while not os.path.lexists(probe):  # the nearest existing ancestor
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        what = "is an existing file" if probe == os.path.normpath(path) else f"lies under {probe!r}, a file"
        raise ConfigError(key, results_dir, "a directory, or a path whose nearest existing parent is a "
                                            "writable directory", f"it {what}")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "it is" if probe == os.path.normpath(path) else f"its nearest existing parent {probe!r} is"
        raise ConfigError(key, results_dir, "a writable directory, or a path whose nearest existing parent is a "
                                            "writable directory", f"{where} not writable by this user")
    _check_no_link_out(key, results_dir, os.path.normpath(path))
    _probe_write(key, results_dir, probe, probe == os.path.normpath(path))


def _probe_write(key: str, results_dir: str, directory: str, is_target: bool) -> None:
    """Create and remove a probe file in ``directory`` (the results dir or its nearest existing
    parent): permissions say nothing of pseudo and read-only filesystems (``/proc``, ``/sys``, a
    read-only mount), where only a write fails."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(prefix=".inal-probe-", dir=directory)
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        where = "it" if is_target else f"its nearest existing parent {directory!r}"
        raise ConfigError(key, results_dir, "a directory where files can be created, or a path whose nearest "
                                            "existing parent is one",
                          f"creating a file in {where} failed: {err.strerror or err}") from None


def _check_no_link_out(key: str, results_dir: str, path: str) -> None:
    """Refuse a ``results_dir`` that is, or passes through, a symbolic link leading out of the
    directory holding the link (e.g. ``results -> /``, or ``a/b`` where ``a -> /etc``): the store
    writes, renames and deletes files under ``results_dir``, and such a link moves all of that
    elsewhere, unseen. A link that stays within its own directory (``results -> results.v2``) is
    followed, and so are links at the top of the tree (``/home -> /gpfs/home``, macOS's ``/tmp``):
    whatever they point at lies under ``/``, their directory."""
    parts = path.split(os.sep)
    for i in range(2, len(parts) + 1):
        prefix = os.sep.join(parts[:i]) or os.sep
        if not os.path.lexists(prefix):
            break
        if os.path.islink(prefix):
            parent = os.path.realpath(os.path.dirname(prefix))
            real = os.path.realpath(prefix)
            if os.path.commonpath([parent, real]) != parent or real == parent:
                what = "is" if prefix == path else f"passes through {prefix!r},"
                raise ConfigError(key, results_dir, "a path with no symbolic link leading out of its directory",
                                  f"it {what} a link to {real!r}; give the real path "
                                  f"({os.path.realpath(path)!r}) if it is meant")


def check_results_tree(results_dir: str, study: str) -> None:
    """Refuse a study directory (``<results_dir>/<study>``) or one of its datasets that is a
    symbolic link leading out of the results dir (``ConfigError`` on ``study``)."""
    if "://" in results_dir:
        return
    root = os.path.realpath(results_dir)
    for sub in ("", "runs", "curves", "inal", "_tmp"):
        path = os.path.join(results_dir, study, sub) if sub else os.path.join(results_dir, study)
        if os.path.islink(path):
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) != root or real == root:
                raise ConfigError("study", study, "a directory of results_dir, not a symbolic link leading out "
                                                  "of it", f"{path} links to {real!r}")


def check_results_dir(results_dir: Any, *, local: bool = True) -> str:
    """``results_dir`` must be a non-empty string: a local path to a directory (or one that can be
    made: its nearest existing parent is a writable directory) or a URI whose scheme pyarrow knows
    (``file://`` URIs are checked as local paths). ``local=False`` checks the form only (a path on
    another machine, e.g. for ``inal-submit``). Checked once per distinct value (cached)."""
    if not isinstance(results_dir, str) or not results_dir.strip() or "\n" in results_dir or "\0" in results_dir:
        raise ConfigError("results_dir", results_dir, "a non-empty local path or pyarrow.fs URI")
    relative = local and "://" not in results_dir and not os.path.isabs(results_dir) and results_dir[:1] != "~"
    _check_results_dir(results_dir, os.getcwd() if relative else "", local)
    return results_dir


# --------------------------------------------------------------------------- target and INAL (cached)


@functools.lru_cache(maxsize=4096)
def _resolve_target(name: str, n: int, c: float, params: tuple) -> tuple[TargetSpec, Any]:
    """``(TargetSpec, target)`` for validated scalars; the family's validator checks its inputs."""
    family = get_family(name)  # a built-in, or a user's family by import path (registered by read_target_name)
    params = tuple((k, v) for k, _, v in params)  # the key carries each value's type: True is not 1
    try:
        nominal_c, checked = family.validate(n, c, dict(params))
        target = family.build(n, nominal_c, checked)
    except TargetConfigError as err:
        key = err.param if err.param in ("c", "n") else f"target.{err.param}"
        value = dict(params).get(err.param, err.value) if key.startswith("target.") else err.value
        if key == "c" and err.family == name and isinstance(value, float) and value.is_integer():
            value = int(value) if family.c_rule == "degree" else value
        raise ConfigError(key, value, err.allowed, "" if str(err).startswith(f"{name}: {err.param} must be") else str(err)) from None
    except (ValueError, TypeError) as err:  # any other check of the family
        raise ConfigError("target", {"name": name, "n": n, "c": c, **dict(params)},
                          "parameters accepted by inal_core.make_target", str(err)) from None
    spec = TargetSpec(name, nominal_c, tuple(sorted(checked.items())), describe(target.params))
    return spec, target


def resolve_target(name: str, n: int, c: float, params: Mapping[str, Any]):
    """Build the target on n bits; a family error becomes a ConfigError naming the input."""
    try:
        key = tuple((k, type(v), v) for k, v in sorted(params.items()))
        hash(key)
    except TypeError:  # a list or dict value: not allowed by any family, and not cacheable
        bad = next(k for k, v in params.items() if isinstance(v, (list, dict)))
        raise ConfigError(f"target.{bad}", params[bad], "a scalar (see the family's parameters)") from None
    return _resolve_target(name, n, c, key)[1]


@functools.lru_cache(maxsize=4096)
def _check_inal(target_key: tuple, width: int, depth: int, bias: bool, init: str, estimator: str,
                n_inits: int, n_inputs: int, budget: float, activation: str = "relu") -> str:
    _, target = _resolve_target(*target_key)
    spec = _specs.NetworkSpec(target.n, width, depth, bias=bias, init=init, activation=activation)
    try:
        return _specs.check_inal_request(target, spec, n_inits=n_inits, method=estimator,
                                         n_inputs=n_inputs or None, memory_budget_bytes=int(budget * _GIB))
    except ValueError as err:
        if "memory_budget" in str(err):
            raise ConfigError("inal.memory_budget_gb", budget,
                              "a budget the smallest INAL chunk fits in, or another inal.estimator",
                              str(err)) from None
        raise ConfigError("inal.estimator", estimator,
                          f"one of {', '.join(ESTIMATORS)} that can serve n={target.n} "
                          f"(exact enumeration only while it fits inal.memory_budget_gb={budget:g})",
                          str(err)) from None


# --------------------------------------------------------------------------- the job


def _plain(cfg: Any) -> dict[str, Any]:
    """The task config as plain Python (``hydra`` left out), converted once."""
    if type(cfg) is dict:  # the fast path: already plain (groups may still be DictConfigs)
        if "hydra" in cfg or any(type(cfg.get(g)) in _OC_TYPES for g in _GROUP_NAMES):
            return {k: (OmegaConf.to_container(v, resolve=True) if isinstance(v, (DictConfig, ListConfig)) else v)
                    for k, v in cfg.items() if k != "hydra"}
        return cfg
    if isinstance(cfg, DictConfig):
        try:
            return {k: _plain_node(cfg, k, child) for k, child in cfg._content.items() if k != "hydra"}
        except (AttributeError, TypeError):  # another OmegaConf layout: its own (10x slower) conversion
            return {k: _plain_node(cfg, k) for k in cfg if k != "hydra"}
    if isinstance(cfg, Mapping):
        return _plain(dict(cfg))
    raise ConfigError("config", type(cfg).__name__, "a mapping of config keys (a composed DictConfig)")


_OC_TYPES = (DictConfig, ListConfig)
_GROUP_NAMES = ("target", *GROUPS)


_SLOW = object()


def _fast_container(node: Any) -> Any:
    """A node's plain value read straight from OmegaConf's nodes (``_SLOW`` where an interpolation
    or a special node needs ``OmegaConf.to_container``): 10x cheaper than ``to_container``."""
    if isinstance(node, DictConfig):
        content = node._content
        if type(content) is not dict:
            return _SLOW
        out = {}
        for key, child in content.items():
            value = _fast_container(child)
            if value is _SLOW:
                return _SLOW
            out[key] = value
        return out
    if isinstance(node, ListConfig):
        content = node._content
        if type(content) is not list:
            return _SLOW
        items = [_fast_container(child) for child in content]
        return _SLOW if any(v is _SLOW for v in items) else items
    if node._is_interpolation():
        return _SLOW
    return node._value()


def _plain_node(cfg: DictConfig, key: str, child: Any = None) -> Any:
    if child is not None:
        value = _fast_container(child)
        if value is not _SLOW:
            return value
    value = cfg[key]
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value


def _known(key: str, value: Any, allowed: Sequence[str]) -> ConfigError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, allowed, n=1)
    hint = f"; did you mean {key[: len(key) - len(leaf)]}{close[0]}?" if close else ""
    return ConfigError(key, value, "one of the keys " + ", ".join(sorted(allowed)),
                       "unknown key (a typo, or a setting this program does not have)" + hint)


_KNOWN_TOP = frozenset(KNOWN_KEYS)
_KNOWN_SUB = {group: frozenset(keys) for group, keys in GROUPS.items()}
#: keys that may be left out, with the value they then take (the settings' defaults)
_DEFAULTS = DEFAULTS
_REQUIRED_TOP = frozenset(k for k in KNOWN_KEYS if k not in _DEFAULTS)
_REQUIRED_SUB = {group: frozenset(k for k in keys if f"{group}.{k}" not in _DEFAULTS)
                 for group, keys in GROUPS.items()}
_REQUIRED_SUB["target"] = frozenset({"name"})


def _missing(path: str) -> ConfigError:
    return ConfigError(path, None, "the key must be present (see sweeps/conf/config.yaml)")


def check_keys(cfg: Mapping[str, Any]) -> None:
    """Every key of the task config is one the job spec knows (``sweeps.settings.SETTINGS``), the target
    group's keys being ``name`` and the family's parameters, and every required key is there;
    raises ConfigError naming the first other key (or the first missing one)."""
    keys = cfg.keys()
    if not keys <= _KNOWN_TOP:
        key = next(k for k in cfg if k not in _KNOWN_TOP)
        raise _known(str(key), cfg[key], sorted(_KNOWN_TOP))
    if not _REQUIRED_TOP <= keys:
        raise _missing(sorted(_REQUIRED_TOP - keys)[0])
    for group, required in _REQUIRED_SUB.items():
        value = cfg[group]
        if type(value) is not dict:
            if not isinstance(value, Mapping):
                allowed = ("a target group: " + ", ".join(_available_targets())) if group == "target" else \
                    "a group with the keys " + ", ".join(GROUPS[group])
                raise ConfigError(group, value, allowed)
            value = dict(value)
        sub = value.keys()
        if group != "target" and not sub <= _KNOWN_SUB[group]:  # target: name, then the family's parameters
            key = next(k for k in value if k not in _KNOWN_SUB[group])
            raise _known(f"{group}.{key}", value[key], sorted(_KNOWN_SUB[group]))
        if not required <= sub:
            raise _missing(f"{group}.{sorted(required - sub)[0]}")


def validate_job(cfg: DictConfig | Mapping[str, Any], *, local: bool = True) -> JobSpec:
    """Check every value of one composed job config and return its :class:`JobSpec`.

    ``cfg``: a Hydra-composed ``DictConfig`` (the ``hydra`` node is ignored) or the same as plain
    Python (a ``dict``: the fast path, about 20x cheaper than converting a ``DictConfig``).
    ``local=False``: ``results_dir`` is a path on another machine (``inal-submit``): its form and
    URI scheme are checked, not the local filesystem.

    Raises
    ------
    ConfigError
        On the first key or value that is not allowed, naming the key, the value and what is allowed.
    """
    c_ = _plain(cfg)
    check_keys(c_)
    got: dict[str, Any] = {}
    for flat, group, key, path, read, default in _READING:  # every setting with a reader, in table order
        src = c_ if group is None else c_[group]
        value = src.get(key, default) if default is not _REQUIRED else src[key]
        got[flat] = read(path, value, got, local)
    n, width, depth, bias, T = got["n"], got["width"], got["depth"], got["bias"], got["T"]

    # target: name, family parameters, nominal c (the family's validator in inal_core.targets)
    target_cfg = c_["target"]
    name = read_target_name("target.name", target_cfg["name"])
    params = {k: val for k, val in target_cfg.items() if k != "name"}
    c = read_float("c", c_["c"])
    target_key = (name, n, c, tuple((k, type(v), v) for k, v in sorted(params.items())))
    try:
        target_spec = _resolve_target(*target_key)[0]
    except TypeError:  # an unhashable parameter value (a list ...): named by resolve_target
        resolve_target(name, n, c, params)
        raise

    if T > 0:  # training sizes the engine can hold (the training values are recorded even for T=0)
        _check_training_size(c_["train"]["N"], n, got["N"], width, depth, bias)
    got["inal_method"] = _check_inal(target_key, width, depth, bias, got["init"], got["estimator"],
                                     got["n_inits"], got["n_inputs"], got["memory_budget_gb"], got["activation"])

    config = JobConfig(
        n=n, target=target_spec, network=_intern(Network, *[got[f] for f in _PART_FLATS["network"]]),
        init=_intern(Init, *[got[f] for f in _PART_FLATS["init"]]),
        training=Training(*[got[f] for f in _PART_FLATS["training"]]),
        inal=_intern(InalEstimator, *[got[f] for f in _PART_FLATS["inal"]]),
        location=_intern(Location, *[got[f] for f in _PART_FLATS["location"]]),
    )
    return make_job(config)


def _reader(setting: Setting) -> Callable[[str, Any, dict, bool], Any]:
    """``read(key, value, values read so far, local)`` for a setting's :class:`sweeps.settings.Reader`."""
    spec = setting.read
    kw = spec.kwargs
    # the common case (a value already of its type and in range) answered inline, without a call
    if spec.kind == "int":
        lo, hi, why = kw.get("minimum"), kw.get("maximum"), kw.get("why", "")
        lo_ = -math.inf if lo is None else lo
        hi_ = math.inf if hi is None else hi
        base = lambda key, v, got, local: (v if type(v) is int and lo_ <= v <= hi_  # noqa: E731
                                           else read_int(key, v, lo, hi, why))
    elif spec.kind == "float":
        positive, nonnegative, minimum = kw.get("positive", False), kw.get("nonnegative", False), kw.get("minimum")
        floor = 0.0 if (positive or nonnegative) else (-math.inf if minimum is None else minimum)
        strict = positive
        base = lambda key, v, got, local: (v if type(v) is float and (v > floor if strict else v >= floor)  # noqa: E731
                                           and -math.inf < v < math.inf
                                           else read_float(key, v, positive=positive, nonnegative=nonnegative,
                                                           minimum=minimum))
    elif spec.kind == "choice":
        choices = kw["choices"]
        allowed = frozenset(choices)
        base = lambda key, v, got, local: (v if type(v) is str and v in allowed  # noqa: E731
                                           else read_choice(key, v, choices))
    elif spec.kind == "bool":
        base = lambda key, v, got, local: v if type(v) is bool else read_bool(key, v)  # noqa: E731
    elif spec.kind == "study":
        base = lambda key, v, got, local: read_study(key, v)  # noqa: E731
    elif spec.kind == "results_dir":
        base = lambda key, v, got, local: check_results_dir(v, local=local)  # noqa: E731
    elif spec.kind == "device":
        base = lambda key, v, got, local: read_device(key, v)  # noqa: E731
    elif spec.kind == "extension":  # also resolves N (a derived setting) from n
        def base(key, v, got, local):
            N_spec, got["N"] = read_extension(key, v, got["n"])
            return N_spec
    elif spec.kind == "checkpoints":
        base = lambda key, v, got, local: read_checkpoints(key, v, got["T"])  # noqa: E731
    else:
        raise ValueError(f"setting {setting.path}: unknown reader {spec.kind!r}")
    if spec.null is None:
        return base
    null = spec.null
    return lambda key, v, got, local: null if v is None else base(key, v, got, local)


_REQUIRED = REQUIRED
#: (flat name, config group or None, key in it, config path, reader, default) of every read setting
_READING = tuple((s.flat, s.path.split(".", 1)[0] if "." in s.path else None, s.path.rsplit(".", 1)[-1], s.path,
                  _reader(s), s.default) for s in SETTINGS if s.read is not None)
#: the flat names of each part's fields, in the part's field order (the table's)
_PART_FLATS = {part: tuple(s.flat for s in SETTINGS if s.part == part) for part in PARTS}


_TARGETS = tuple(sorted(available_targets()))


@functools.lru_cache(maxsize=4096)
def _check_training_size(N_given: Any, n: int, N: int, width: int, depth: int, bias: bool) -> None:
    """Training sizes the engine can hold (T > 0): N and the parameter count E."""
    if N > MAX_TRAIN_BITS:
        raise ConfigError("train.N", N_given,
                          f'"n^2", "2n" or an integer in [n, {MAX_TRAIN_BITS}] resolving to N <= {MAX_TRAIN_BITS} '
                          f"(n={n}) when T > 0",
                          f"N={N}: every step holds a batch of N-bit inputs and an N x width first layer per run")
    E = _specs.NetworkSpec(N, width, depth, bias=bias).num_parameters
    if E > MAX_TRAIN_PARAMETERS:
        raise ConfigError("width", width, f"a network on N={N} inputs with at most {MAX_TRAIN_PARAMETERS} "
                                          f"parameters (depth={depth})",
                          f"E={E} parameters: a run holds three float32 copies of them")


_interned: dict[tuple, Any] = {}


def _intern(cls, *args):
    """One shared instance per distinct value (most cells share their network, estimator, location)."""
    key = (cls, *args)
    hit = _interned.get(key)
    if hit is None:
        if len(_interned) > 100_000:
            _interned.clear()
        hit = _interned[key] = cls(*args)
    return hit
