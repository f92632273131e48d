"""The table of settings: every value of a job declared once.

Each :class:`Setting` states its config path, where it lives in the typed job
(:class:`sweeps.spec.JobConfig`), its type and how it is read, its default, what is allowed, the
identities it enters, its stored column, its unit and meaning, and the engine keyword it feeds.
Everything else is derived from :data:`SETTINGS`:

- validation (``sweeps.validation.validate_job`` reads each key with the setting's :class:`Reader`;
  a key with a default may be left out of a config);
- the typed spec (``sweeps.spec.Network``, ``Training``, ... are built from the table's parts);
- the identities (``sweeps.jobs``: which values each hash covers, and its memo key);
- packing (the ``vectorized`` settings may differ inside one training stack);
- the job columns of the Parquet datasets (``sweeps.columns.JOB_VALUES`` and their types);
- the config key table of ``sweeps/README.md`` (``python -m sweeps.settings --write sweeps/README.md``);
- the engines' keyword arguments (``sweeps.execute``: :func:`engine_kwargs`);
- what the analysis groups runs by (:func:`training_columns`).

**Adding a setting** (e.g. ``train.weight_decay``): its key in the yaml under ``sweeps/conf/``, one
``Setting`` here, its use in the engine, and tests. A setting added after studies exist declares
``omit_at_default=True``: at its default it is left out of every hashed payload, so the identity of
every cell written before it existed is unchanged and nothing is recomputed.

This module is plain Python (it imports only ``inal_core``'s torch-free contracts), so the analysis
may import it.
"""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from inal_core import specs as _specs  # plain Python: no torch
from inal_core.losses import LOSSES as _LOSSES

from .readme_tables import marked_block, replace_marked_block, write_command

__all__ = [
    "Reader", "Engine", "Setting", "SETTINGS", "BY_FLAT", "BY_PATH", "REQUIRED", "PARTS",
    "GROUPS", "KNOWN_KEYS", "DEFAULTS", "keys_of", "hashed_settings", "VECTORIZED_ATTRS",
    "engine_kwargs", "stored_settings", "column_defaults", "training_columns", "render_key_table", "write_readme",
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: the default of a setting that must be given (by the yaml under ``sweeps/conf/``)
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class Reader:
    """How a config value is read (``sweeps.validation`` interprets it): ``kind`` is one of ``int``,
    ``float``, ``choice``, ``bool`` or the name of a dedicated reader (``extension``,
    ``checkpoints``, ``study``, ``results_dir``, ``device``); ``options`` are its keyword
    arguments (``minimum``, ``positive``, ``choices`` ...); ``null``: the value a YAML ``null``
    stands for (``None``: null is not allowed)."""

    kind: str
    options: tuple[tuple[str, Any], ...] = ()
    null: Any = None

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.options)


def Int(minimum: int | None = None, maximum: int | None = None, why: str = "", null: Any = None) -> Reader:
    return Reader("int", tuple((k, v) for k, v in (("minimum", minimum), ("maximum", maximum), ("why", why))
                               if v not in (None, "")), null)


def Float(positive: bool = False, nonnegative: bool = False, minimum: float | None = None) -> Reader:
    return Reader("float", tuple((k, v) for k, v in (("positive", positive), ("nonnegative", nonnegative),
                                                      ("minimum", minimum)) if v not in (None, False)))


def Choice(choices: tuple[str, ...]) -> Reader:
    return Reader("choice", (("choices", tuple(choices)),))


BOOL = Reader("bool")


@dataclass(frozen=True)
class Engine:
    """The engine keyword a setting feeds: ``engine`` is ``network`` (``inal_core.NetworkSpec``),
    ``ngd`` (``inal_core.NGDConfig``) or ``inal`` (``inal_core.estimate_inal``); ``convert`` maps
    the validated value to the keyword's value (``batch`` 0 -> None ...)."""

    engine: str
    keyword: str
    convert: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Setting:
    """One value of a job.

    path
        Its config key (``train.A``); None: derived by validation from other values (``N``).
    flat
        Its name in ``JobSpec.values``.
    attr
        Where it lives in :class:`sweeps.spec.JobConfig` (``training.A``).
    type
        Its Python type after validation (``object``: a dedicated reader's own form).
    read
        How it is read (None: by validation's own code: the target, and derived values).
    default
        The value of a key left out of a config (:data:`REQUIRED`: it must be given).
    allowed, doc, unit
        What is allowed, what it means and its unit (the README key table).
    run, inal, vectorized, config, inal_config
        Identity roles: hashed into ``run_id`` (when T > 0); into ``inal_id``; may differ inside
        one training stack (so left out of ``pack_key``, hashed into ``run_id`` beside it); in
        ``config_id`` (every config value but the n axis, the seed and the location, as
        requested); in the INAL rows' ``config_id`` (default: ``config and inal``).
    omit_at_default
        Left out of every hashed payload while at ``default`` (settings added after studies exist:
        their cells keep the identities they had before the setting existed).
    trains
        Changes what a trained network computes (the analysis groups runs by these).
    column, stored_in, ctype
        The stored column (None: none), the datasets holding it (``runs``, ``inal``), its stored
        type (``int``, ``float``, ``str``, ``bool``).
    to_column
        Maps the validated value to the stored one (``checkpoints`` as JSON text).
    engine
        The engine keyword it feeds (None: none).
    """

    path: str | None
    flat: str
    attr: str
    type: type
    read: Reader | None
    default: Any = REQUIRED
    allowed: str = ""
    doc: str = ""
    unit: str = ""
    run: bool = True
    inal: bool = False
    vectorized: bool = False
    config: bool = True
    inal_config: bool | None = None
    omit_at_default: bool = False
    trains: bool = False
    column: str | None = None
    stored_in: tuple[str, ...] = ("runs",)
    ctype: str = ""
    to_column: Callable[[Any], Any] | None = None
    engine: Engine | None = None
    getter: Callable[[Any], Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "getter", operator.attrgetter(self.attr))
        if self.inal_config is None:
            object.__setattr__(self, "inal_config", self.config and self.inal)

    @property
    def part(self) -> str:
        """The part of :class:`sweeps.spec.JobConfig` holding it (``training``; ``""``: top level)."""
        return self.attr.rsplit(".", 1)[0] if "." in self.attr else ""

    @property
    def name(self) -> str:
        """Its attribute name in its part."""
        return self.attr.rsplit(".", 1)[-1]

    def at_default(self, value: Any) -> bool:
        return self.default is not REQUIRED and value == self.default and type(value) is type(self.default)


def _json_list(value: Any) -> str:
    import json

    return json.dumps(list(value) if isinstance(value, tuple) else value)


_GIB = 1 << 30
_SEED_MAX = (1 << 63) - 1
#: n at most this: targets and networks hold inputs as rows of n numbers, majority and full_parity
#: depend on every bit, and exact INAL stops at 32 bits anyway (a typo such as n=1e12 would hang
#: building the target instead of failing)
MAX_INPUT_BITS = 4096

_S = Setting
#: every value of a job, in the order validation reads them (a reader may use the values read before it)
SETTINGS: tuple[Setting, ...] = (
    # location: where results go and where the job runs; never part of an identity
    _S("study", "study", "location.study", str, Reader("study"), allowed="a name of letters, digits, `_ . = -`",
       doc="results go to `<results_dir>/<study>/`", run=False, config=False, column="study",
       stored_in=("runs", "inal"), ctype="str"),
    _S("results_dir", "results_dir", "location.results_dir", str, Reader("results_dir"),
       allowed="a non-empty path or pyarrow.fs URI with its query (`file:///x`, `s3://b/p`, `s3://b/p?endpoint_override=host:9000&scheme=http`: `sweeps/location.py`)",
       doc="the directory holding the study", run=False, config=False),
    _S("device", "device", "location.device", str, Reader("device"), allowed="`auto`, `cpu`, `cuda`, `cuda:<i>`",
       doc="`auto`: CUDA if the worker has one", run=False, config=False),
    # the study axes
    _S("n", "n", "n", int, Int(1, MAX_INPUT_BITS, "inputs are held as rows of n numbers and a family may "
                                                   "depend on every bit"),
       allowed=f"integer 1..{MAX_INPUT_BITS}", doc="input bits of the target", unit="bits", inal=True,
       config=False, trains=True, column="n", stored_in=("runs", "inal"), ctype="int"),
    _S("width", "width", "network.width", int, Int(1), allowed="integer >= 1", doc="hidden neurons per layer",
       inal=True, trains=True, column="width", stored_in=("runs", "inal"), ctype="int",
       engine=Engine("network", "width")),
    _S("depth", "depth", "network.depth", int, Int(1), allowed="integer >= 1", doc="hidden layers", inal=True,
       trains=True, column="depth", stored_in=("runs", "inal"), ctype="int", engine=Engine("network", "depth")),
    _S("T", "T", "training.T", int, Int(0), allowed="integer >= 0", doc="noisy-GD steps; 0 = INAL only",
       unit="steps", trains=True, column="n_steps", ctype="int", engine=Engine("ngd", "T")),
    _S("gamma", "gamma", "training.gamma", float, Float(positive=True), allowed="> 0", doc="step size",
       vectorized=True, trains=True, column="gamma", ctype="float", engine=Engine("ngd", "gamma")),
    _S("sigma", "sigma", "training.sigma", float, Float(nonnegative=True), allowed=">= 0",
       doc="noise standard deviation per coordinate and step", vectorized=True, trains=True, column="sigma",
       ctype="float", engine=Engine("ngd", "sigma")),
    # the target: read by validation's own code (the family's validator in inal_core.targets.FAMILIES)
    _S("target.name", "target", "target.name", str, None,
       allowed="a family of `inal_core.targets.FAMILIES` (`target=<name>`, with its parameters `target.<p>`)",
       doc="the Boolean function family", inal=True, trains=True),
    _S("c", "c", "target.c", float, None, allowed="parity: integer 1..n; planted: real >= 1; others: ignored "
                                                   "(nominal c recorded)",
       doc="INAL exponent knob; parity: degree k = c", inal=True, trains=True, column="c",
       stored_in=("runs", "inal"), ctype="float"),
    _S(None, "target_params", "target.resolved", str, None, doc="the family's resolved parameters as text",
       run=False, config=False, column="target_params", stored_in=("runs", "inal"), ctype="str"),
    # network and init
    _S("network.bias", "bias", "network.bias", bool, BOOL, allowed="true / false", doc="biases on or off",
       inal=True, trains=True, column="bias", stored_in=("runs", "inal"), ctype="bool",
       engine=Engine("network", "bias")),
    _S("network.activation", "activation", "network.activation", str, Choice(tuple(_specs.ACTIVATIONS)),
       default="relu", allowed=" / ".join(_specs.ACTIVATIONS),
       doc="hidden activation (`inal_core.activations`; sign: straight-through gradient, SCIENCE.md §5)",
       inal=True, trains=True, omit_at_default=True, column="activation", stored_in=("runs", "inal"), ctype="str",
       engine=Engine("network", "activation")),
    _S("init.name", "init", "init.name", str, Choice(_specs.INITS), allowed=" / ".join(_specs.INITS),
       doc="initialization (`init=<name>`)", inal=True, trains=True, column="init", stored_in=("runs", "inal"),
       ctype="str", engine=Engine("network", "init")),
    # noisy GD (SCIENCE.md §5)
    _S("train.A", "A", "training.A", float, Float(positive=True), allowed="> 0",
       doc="gradient precision: clip bound / 1/A grid", trains=True, column="A", ctype="float",
       engine=Engine("ngd", "A")),
    _S("train.precision", "precision", "training.precision", str, Choice(_specs.PRECISIONS),
       allowed=" / ".join(_specs.PRECISIONS), doc="precision map [.]_A", trains=True, column="precision",
       ctype="str", engine=Engine("ngd", "precision")),
    _S("train.loss", "loss", "training.loss", str, Choice(tuple(_LOSSES)), allowed=" / ".join(_LOSSES),
       doc="training loss", trains=True, column="loss", ctype="str", engine=Engine("ngd", "loss")),
    _S("train.batch", "batch", "training.batch", int, Int(0, null=0), allowed="integer >= 0 (null: 0)",
       doc="B; 0 = exact population gradient when 2^N is small, else fresh batches", trains=True,
       column="batch", ctype="int", engine=Engine("ngd", "batch", lambda b: b or None)),
    _S("train.N", "N_spec", "training.N_spec", str, Reader("extension"),
       allowed="`n^2` (alias `n2`), `2n`, integer >= n", doc="the extension fbar trained on, as written",
       trains=True, column="N_spec", ctype="str"),
    _S(None, "N", "training.N", int, None, doc="bits of the extension (resolved from `train.N` and n)",
       unit="bits", config=False, column="N", ctype="int"),
    _S("train.gamma_schedule", "gamma_schedule", "training.gamma_schedule", str, Choice(_specs.GAMMA_SCHEDULES),
       default="constant", allowed=" / ".join(_specs.GAMMA_SCHEDULES), doc="step-size schedule", trains=True,
       column="gamma_schedule", ctype="str", engine=Engine("ngd", "gamma_schedule")),
    _S("train.weight_decay", "weight_decay", "training.weight_decay", float, Float(nonnegative=True), default=0.0,
       allowed=">= 0", doc="lambda: noisy GD on L + (lambda/2)||theta||^2 (weights and biases), before [.]_A",
       trains=True, omit_at_default=True, column="weight_decay", ctype="float", engine=Engine("ngd", "weight_decay")),
    _S("train.checkpoints", "checkpoints", "training.checkpoints", object, Reader("checkpoints"),
       allowed="count >= 1 or increasing list of steps in [0, T]", doc="checkpoints of the curves",
       column="checkpoints", ctype="str", to_column=_json_list, engine=Engine("ngd", "checkpoints")),
    _S("train.n_eval", "n_eval", "training.n_eval", int, Int(2), allowed="integer >= 2",
       doc="fresh inputs of each evaluation", column="n_eval", ctype="int", engine=Engine("ngd", "n_eval")),
    _S("train.seed", "train_seed", "training.seed", int, Int(0, _SEED_MAX, "a 63-bit replicate number"),
       allowed="integer >= 0", doc="replicate number (part of the identity; vary it for replicates)",
       vectorized=True, config=False, column="seed", ctype="int"),
    # the INAL estimator (SCIENCE.md §4)
    _S("inal.estimator", "estimator", "inal.estimator", str, Choice(tuple(_specs.METHODS)),
       allowed=" / ".join(_specs.METHODS), doc="INAL estimator as requested (`inal=<name>`)", run=False,
       inal_config=True, column="estimator", stored_in=("runs", "inal"), ctype="str"),
    _S(None, "inal_method", "inal.method", str, None, doc="the method the estimator resolves to for this job",
       inal=True, config=False, engine=Engine("inal", "method")),
    _S("inal.n_inits", "n_inits", "inal.n_inits", int, Int(1), allowed="integer >= 1",
       doc="network initializations averaged over", inal=True, column="n_inits", ctype="int",
       engine=Engine("inal", "n_inits")),
    _S("inal.n_inputs", "n_inputs", "inal.n_inputs", int, Int(2, null=0), allowed="null or integer >= 2",
       doc="inputs per init for mc / junta (null: the engine's default)", inal=True, column="n_inputs",
       ctype="int", engine=Engine("inal", "n_inputs", lambda m: m or None)),
    _S("inal.memory_budget_gb", "memory_budget_gb", "inal.memory_budget_gb", float, Float(positive=True),
       allowed="> 0", doc="exact enumeration must fit in this (a resource, not an identity)", unit="GiB",
       run=False, config=False, engine=Engine("inal", "memory_budget_bytes", lambda gb: int(gb * _GIB))),
)
del _S

BY_FLAT: dict[str, Setting] = {s.flat: s for s in SETTINGS}
BY_PATH: dict[str, Setting] = {s.path: s for s in SETTINGS if s.path}
#: the parts of JobConfig built from the table (``TargetSpec`` is the target family's own)
PARTS: tuple[str, ...] = tuple(dict.fromkeys(s.part for s in SETTINGS if s.part and s.part != "target"))
#: config groups and their keys (``target``'s keys are ``name`` plus the family's parameters)
GROUPS: dict[str, tuple[str, ...]] = {}
for _s in SETTINGS:
    if _s.path and "." in _s.path:
        _group, _key = _s.path.split(".", 1)
        GROUPS[_group] = GROUPS.get(_group, ()) + (_key,)
#: top-level keys of a composed task config (``hydra`` is Hydra's, not the task's)
KNOWN_KEYS: tuple[str, ...] = tuple(s.path for s in SETTINGS if s.path and "." not in s.path) + tuple(GROUPS)
#: config keys that may be left out, with the value they then take
DEFAULTS: dict[str, Any] = {s.path: s.default for s in SETTINGS if s.path and s.default is not REQUIRED}

assert len(BY_FLAT) == len(SETTINGS) and len(BY_PATH) == sum(1 for s in SETTINGS if s.path)
assert all(s.part == "training" for s in SETTINGS if s.vectorized), "vectorized settings live in training"
assert all(s.default is not REQUIRED for s in SETTINGS if s.omit_at_default), "omit_at_default needs a default"

#: the attribute of ``sweeps.spec.Training`` behind each vectorized setting (flat name -> attribute)
VECTORIZED_ATTRS: dict[str, str] = {s.flat: s.name for s in SETTINGS if s.vectorized}


def keys_of(kind: str) -> tuple[Setting, ...]:
    """The settings a hash covers, in table order. ``kind``: ``inal`` (``inal_id``), ``pack``
    (``pack_key`` of a training job: every run value but the vectorized ones), ``pack0``
    (``pack_key`` of a T = 0 job: its INAL values and T), ``vectorized`` (hashed into ``run_id``
    beside the pack key), ``config`` and ``inal_config`` (the two ``config_id`` columns)."""
    if kind == "inal":
        return tuple(s for s in SETTINGS if s.inal)
    if kind == "pack":
        return tuple(s for s in SETTINGS if s.run and not s.vectorized)
    if kind == "pack0":
        return tuple(s for s in SETTINGS if s.inal or s.flat == "T")
    if kind == "vectorized":
        return tuple(s for s in SETTINGS if s.vectorized)
    if kind == "config":
        return tuple(s for s in SETTINGS if s.config)
    if kind == "inal_config":
        return tuple(s for s in SETTINGS if s.inal_config)
    raise ValueError(f"kind must be one of inal, pack, pack0, vectorized, config, inal_config; got {kind!r}")


def hashed_settings(kind: str) -> tuple[Setting, ...]:
    return keys_of(kind)


def engine_kwargs(engine: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``engine`` (``network``, ``ngd``, ``inal``) fed by the settings,
    from a job's flat values (``JobSpec.values``), converted as each setting says."""
    out = {}
    for s in SETTINGS:
        if s.engine is not None and s.engine.engine == engine:
            value = values[s.flat]
            out[s.engine.keyword] = s.engine.convert(value) if s.engine.convert else value
    return out


def stored_settings(dataset: str) -> tuple[Setting, ...]:
    """The settings stored as a column of ``dataset`` (``runs`` or ``inal``), in table order."""
    return tuple(s for s in SETTINGS if s.column and dataset in s.stored_in)


def column_defaults(dataset: str) -> dict[str, Any]:
    """``{column: default}`` of the settings stored in ``dataset`` that have a default: what a row
    written without them (an older file, a synthetic study) holds for them."""
    return {s.column: s.default for s in stored_settings(dataset) if s.default is not REQUIRED}


def training_columns() -> tuple[str, ...]:
    """The ``runs`` columns of the settings that change what a trained network computes, except
    the n axis and the seed (``target`` from the path first): runs agreeing on all of them differ
    only in n and seed, which is what the bound check groups by."""
    cols = [s.column or s.flat for s in SETTINGS if s.trains and s.config]
    return tuple(dict.fromkeys(["target", *cols]))


# --------------------------------------------------------------------------- the README key table


def _code(text: str) -> str:
    return f"`{text}`"


def render_key_table() -> str:
    """The markdown table of config keys (what ``sweeps/README.md`` holds between its markers)."""
    lines = ["| key | meaning | allowed | default when left out | identity |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        if not s.path:
            continue
        roles = [r for r, on in (("run", s.run), ("inal", s.inal), ("config", s.config)) if on]
        if s.vectorized:
            roles.append("per-run (packed)")
        if s.omit_at_default:
            roles.append("omitted at default")
        default = "" if s.default is REQUIRED else _code(repr(s.default) if isinstance(s.default, str) else
                                                         str(s.default).lower() if isinstance(s.default, bool)
                                                         else str(s.default))
        unit = f" ({s.unit})" if s.unit else ""
        column = f"; column `{s.column}`" if s.column and s.column != s.flat.split(".")[-1] else ""
        lines.append(f"| `{s.path}` | {s.doc}{unit}{column} | {s.allowed} | {default} | "
                     f"{', '.join(roles) or 'none'} |")
    return "\n".join(lines)


_MARK = "<!-- settings (generated by `python -m sweeps.settings --write sweeps/README.md`; do not edit) -->"
_END = "<!-- /settings -->"


def readme_table(text: str) -> str | None:
    """The generated key table found in a README text (None: no markers)."""
    return marked_block(text, _MARK, _END)


def write_readme(text: str) -> str:
    """``text`` with its marked key table replaced by the generated one."""
    return replace_marked_block(text, _MARK, _END, render_key_table(), "marked key tables")


def main(argv: list[str] | None = None) -> int:
    return write_command(sys.argv[1:] if argv is None else argv, write_readme, render_key_table)


if __name__ == "__main__":
    raise SystemExit(main())
