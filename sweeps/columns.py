"""The columns of the three result datasets, written once: types, meanings and where each value
comes from. The Parquet schemas (``RUNS_SCHEMA``, ``CURVES_SCHEMA``, ``INAL_SCHEMA``), the job
part of every row (``job_columns``) and the column tables of ``sweeps/README.md`` are derived from
:data:`TABLES`; ``tests/test_columns.py`` fails when the README, the schemas and the row builders
of ``sweeps.execute`` disagree. Regenerate the README tables with::

    python -m sweeps.columns --write sweeps/README.md

A column's ``source`` is ``"job"`` (a function of the validated job: ``JOB_VALUES``),
``"measured"`` (the engine's result, filled by ``sweeps.execute``), ``"provenance"`` (where and
with what it ran) or ``"path"`` (the hive partition ``target=<name>``: in the path, not the file).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable

import pyarrow as pa

from .jobs import JobSpec
from .readme_tables import marked_block, replace_marked_block, write_command
from .settings import SETTINGS, Setting, stored_settings

__all__ = ["Column", "TABLES", "RUNS_SCHEMA", "CURVES_SCHEMA", "INAL_SCHEMA", "SCHEMAS", "JOB_VALUES",
           "PROVENANCE", "ADDED_LATER", "job_columns", "render_table", "check_row", "columns_of", "config_columns"]

_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
_TS = pa.timestamp("us", tz="UTC")

_CTYPES = {"int": _I, "float": _F, "str": _S, "bool": _B}
#: the type of every column name (one name, one type, in every dataset); the job settings' columns
#: take theirs from the table of settings (``sweeps.settings.SETTINGS``)
TYPES: dict[str, pa.DataType] = {
    "run_id": _S, "config_id": _S, "target": _S,
    "batch_used": _I, "engine_seed": _I, "E": _I,
    "correlation": _F, "correlation_se": _F, "acc": _F, "final_loss": _F, "param_norm": _F,
    "status": _S, "diverged_step": _I, "error": _S, "bound_prefactor": _F,
    "inal_id": _S, "method": _S,
    "layer": _I, "inal": _F, "inal_se": _F, "is_max": _B, "step": _I,
    "selected_inal": _F, "selected_inal_se": _F, "selected_layer_a": _I, "selected_layer_b": _I,
    "inal_boot_lo": _F, "inal_boot_hi": _F, "selected_inal_boot_lo": _F, "selected_inal_boot_hi": _F,
    "inal_boot_hi99": _F, "selected_inal_boot_hi99": _F,
    "output_offset": _F,
    "wall_s": _F, "git_commit": _S, "host": _S, "device": _S, "torch_version": _S,
    "engine_version": _I, "created_at": _TS,
    **{s.column: _CTYPES[s.ctype] for s in SETTINGS if s.column},
}

#: where a dataset's column of a shared name holds something else (curves' `loss` is the mean loss)
_TYPE_OVERRIDES: dict[str, dict[str, pa.DataType]] = {"curves": {"loss": _F}}


def column_type(kind: str, name: str) -> pa.DataType:
    return _TYPE_OVERRIDES.get(kind, {}).get(name) or TYPES[name]


def _setting_value(setting: Setting) -> Callable[[JobSpec], Any]:
    get, convert = setting.getter, setting.to_column
    if convert is None:
        return lambda j: get(j.config)
    return lambda j: convert(get(j.config))


#: job-derived values, by column name (runs and inal rows share these where the name is shared): the
#: identities, and every setting stored as a column (``sweeps.settings``: its ``column``)
JOB_VALUES: dict[str, Callable[[JobSpec], Any]] = {
    "run_id": lambda j: j.run_id,
    "inal_id": lambda j: j.inal_id,
    "engine_seed": lambda j: j.seed,
    **{s.column: _setting_value(s) for s in SETTINGS if s.column},
}
# the same column name means another job value in one dataset than in the other
_PER_DATASET: dict[str, dict[str, Callable[[JobSpec], Any]]] = {
    "runs": {"config_id": lambda j: j.config_id},
    "inal": {"config_id": lambda j: j.inal_config_id, "seed": lambda j: j.inal_seed},
    "curves": {},
}
PROVENANCE = ("git_commit", "host", "device", "torch_version", "engine_version", "created_at")


@dataclass(frozen=True)
class Column:
    """A documented group of columns (one README table row): names, meaning, and where they come from."""

    names: tuple[str, ...]
    meaning: str
    source: str  # job | measured | provenance | path | mixed (a row of several sources)
    #: added after studies existed: a file written before lacks these columns, read back as null
    #: (``sweeps.store`` does not count such a file as corrupt; any other missing column it does)
    added_later: bool = False


_PROV_DOC = "provenance: code commit, host, device it ran on, torch and engine versions, UTC time written"

#: the README column tables, in schema order (a table row names one or more columns)
TABLES: dict[str, tuple[Column, ...]] = {
    "runs": (
        Column(("study", "run_id"), "study name, identity hash (hex) of the run", "job"),
        Column(("config_id",), "hash of every config value but `n`, `train.seed` and the location: runs with one "
                               "config_id differ only in n and seed (group by it to fit across n; "
                               "`sweeps.spec.config_id_keys` lists what it covers)", "job"),
        Column(("target",), "family (from the path: hive partition `target=<name>`)", "path"),
        Column(("c",), "nominal INAL exponent (parity: k; majority/staircase 1; full_parity inf; planted: c)", "job"),
        Column(("n", "N", "N_spec"), "bits of f, bits of the extension fbar trained on, the spec it came from "
                                     "(`n^2`, `2n`, integer)", "job"),
        Column(("width", "depth", "init", "bias"), "network (depth hidden layers of width ReLU neurons, "
                                                  "one linear output)", "job"),
        Column(("target_params",), "the family's resolved parameters as text (`k=2,subset=first,subset_seed=0`)",
               "job"),
        Column(("n_steps", "gamma", "sigma", "A", "precision", "loss"),
               "noisy-GD settings (steps, the config key `T`; step size; noise std per coordinate; gradient "
               "clip bound / 1/A grid; precision mode; loss)", "job"),
        Column(("batch",), "B requested (0 = exact population gradient when 2^N <= 2^16, else fresh batches)",
               "job"),
        Column(("batch_used",), "B used (0 = exact population gradient)", "measured"),
        Column(("gamma_schedule", "checkpoints", "n_eval"),
               "step-size schedule; checkpoint spec (JSON text); fresh inputs of the evaluation", "job"),
        Column(("seed", "engine_seed"), "`train.seed` (replicate number), the derived 63-bit seed of every "
                                        "random stream", "job"),
        Column(("E",), "trainable parameters (weights + biases) of the network on N inputs", "measured"),
        Column(("correlation", "correlation_se"), "E_x[fbar(x) NN_T(x)] estimated on `n_eval` fresh uniform "
                                                  "inputs, its standard error", "measured"),
        Column(("acc", "final_loss", "param_norm"), "P[sign NN_T = fbar] and the mean loss, on the same inputs; "
                                                    "Euclidean norm of all parameters", "measured"),
        Column(("status", "diverged_step", "error"), "`ok` / `diverged` (non-finite at step `diverged_step`) / "
                                                     "`failed` (error text)", "measured"),
        Column(("bound_prefactor",), "gamma T sqrt(E A) / sigma (inf when sigma = 0)", "measured"),
        Column(("inal_id", "estimator", "n_inits", "n_inputs"),
               "the INAL setting of this run (join with `inal` on `inal_id`): requested estimator, inits, "
               "inputs per init (0 = the engine's default)", "job"),
        Column(("wall_s",), "seconds of training (a pack's time divided by its runs)", "measured"),
        Column(PROVENANCE, _PROV_DOC, "provenance"),
    ),
    "curves": (
        Column(("study", "run_id"), "study name, the run (join with `runs` on `run_id`)", "job"),
        Column(("target",), "family (from the path)", "path"),
        Column(("step",), "checkpoint step, 0..T", "measured"),
        Column(("correlation", "correlation_se", "acc", "loss", "param_norm"),
               "as in `runs`, at that step", "measured"),
    ),
    "inal": (
        Column(("study", "inal_id"), "study name, identity hash (hex) of the INAL setting", "job"),
        Column(("config_id",), "hash of every INAL config value but `n` (target and its parameters, c, network, "
                               "init, requested estimator, n_inits, n_inputs): fit INAL against n per config_id",
               "job"),
        Column(("target",), "family (from the path)", "path"),
        Column(("c", "n", "width", "depth", "init", "bias", "target_params"),
               "the setting (network on n inputs)", "job"),
        Column(("estimator",), "requested estimator (auto / exact / mc / junta)", "job"),
        Column(("method",), "method actually used (exact / mc / junta)", "measured"),
        Column(("layer",), "1..depth+1; `depth + 1` is the output neuron", "measured"),
        Column(("inal", "inal_se"), "E_theta[mean over the layer's neurons of (E_x[f v])^2] (dimensionless), its "
                                    "standard error over inits", "measured"),
        Column(("inal_boot_lo", "inal_boot_hi"), "95 % bootstrap-t interval of the layer's INAL over its inits "
                                                 "(`inal_core.inal_summary.bootstrap_t_interval`; NaN with fewer "
                                                 "than 2 inits; null in studies written before it existed)",
               "measured", added_later=True),
        Column(("inal_boot_hi99",), "the bootstrap-t upper limit at the 1 % upper tail of t* (the same resamples): "
                                    "the reported interval's upper end on heavy tails "
                                    "(`analysis.inal_intervals.reported_interval`; null in studies written before "
                                    "it existed)", "measured", added_later=True),
        Column(("is_max",), "the layer attaining INAL = max over layers", "measured"),
        Column(("n_inits", "n_inputs"), "initializations; inputs per init (2^n for exact)", "measured"),
        Column(("selected_inal", "selected_inal_se", "selected_layer_a", "selected_layer_b"),
               "selection-free INAL (`inal_core.inal_summary.selection_free_max`, the same on every layer row): "
               "the layer chosen on one half of the inits (`_a`: first half, `_b`: second half) and measured on "
               "the other, the two averaged; its standard error (NaN / -1 with fewer than 4 inits)", "measured"),
        Column(("selected_inal_boot_lo", "selected_inal_boot_hi"),
               "95 % bootstrap-t interval of `selected_inal` (each half resampled, the layer choices held fixed)",
               "measured", added_later=True),
        Column(("selected_inal_boot_hi99",), "its upper limit at the 1 % upper tail of t*, as `inal_boot_hi99`",
               "measured", added_later=True),
        Column(("output_offset",), "the output neuron's INAL minus the last hidden layer's, v_b E_x[f]^2, exact "
                                   "(`inal_core.inal.output_offset`; NaN for n > 22; null in studies written "
                                   "before it existed): the output neuron's interval is the last hidden layer's "
                                   "shifted by it", "measured", added_later=True),
        Column(("seed",), "the setting's derived seed", "job"),
        Column(("wall_s",), "seconds of the estimate", "measured"),
        Column(PROVENANCE, _PROV_DOC, "provenance"),
    ),
}


def _with_new_settings(kind: str, table: tuple[Column, ...]) -> tuple[Column, ...]:
    """``table`` with a row for every setting stored in ``kind`` that no row names yet (a setting
    added to ``sweeps.settings``), in table order, placed before the provenance columns: adding a
    setting needs no edit here. Files written before it lack the column (read back as null)."""
    named = {name for col in table for name in col.names}
    new = tuple(Column((s.column,), f"{s.doc}{f' ({s.unit})' if s.unit else ''}; config key `{s.path}`"
                       + ("; null in studies written before it existed" if s.omit_at_default else ""), "job",
                       added_later=s.omit_at_default)
                for s in stored_settings(kind) if s.column not in named)
    if not new:
        return table
    at = next(i for i, col in enumerate(table) if col.names == PROVENANCE)
    return table[:at] + new + table[at:]


TABLES = {kind: _with_new_settings(kind, table) if kind in ("runs", "inal") else table
          for kind, table in TABLES.items()}


def columns_of(kind: str, source: str | None = None) -> tuple[str, ...]:
    """The stored column names of dataset ``kind`` in order (``source``: only those of that source)."""
    return tuple(name for col in TABLES[kind] if col.source != "path" and (source is None or col.source == source)
                 for name in col.names)


def _schema(kind: str) -> pa.Schema:
    return pa.schema([(name, column_type(kind, name)) for name in columns_of(kind)])


#: per dataset, the columns a file written before they existed may lack (null when read back)
ADDED_LATER: dict[str, frozenset[str]] = {kind: frozenset(n for col in table if col.added_later for n in col.names)
                                          for kind, table in TABLES.items()}

RUNS_SCHEMA = _schema("runs")
CURVES_SCHEMA = _schema("curves")
INAL_SCHEMA = _schema("inal")
SCHEMAS = {"runs": RUNS_SCHEMA, "curves": CURVES_SCHEMA, "inal": INAL_SCHEMA}


def _getters(kind: str) -> tuple[tuple[str, Callable[[JobSpec], Any]], ...]:
    own = _PER_DATASET[kind]
    return tuple((name, own.get(name) or JOB_VALUES[name]) for name in columns_of(kind, "job"))


_GETTERS = {kind: _getters(kind) for kind in TABLES}


def job_columns(kind: str, job: JobSpec) -> dict[str, Any]:
    """The job part of a ``kind`` row: every column whose source is ``job``, from the validated job."""
    return {name: get(job) for name, get in _GETTERS[kind]}


#: stored column -> the job value it holds, where the names differ (``n_steps`` is the config key ``T``)
_COLUMN_VALUE = {s.column: s.flat for s in SETTINGS if s.column and s.column != s.flat}


def config_columns(kind: str = "runs") -> tuple[str, ...]:
    """The columns of ``kind`` (``runs`` or ``inal``) that are constant within one ``config_id``:
    the config values it covers that are stored as columns (``target`` from the path included;
    family parameters are inside ``target_params``, which also varies with n). Label a group by
    these after ``groupby("config_id")``.

    >>> "n" in config_columns("runs") or "seed" in config_columns("runs")
    False
    """
    from .spec import config_id_keys

    keys = set(config_id_keys(kind))
    out = tuple(name for name in columns_of(kind, "job") if _COLUMN_VALUE.get(name, name) in keys)
    if kind == "inal":  # the inal rows' seed is the setting's derived seed, not a config value
        out = tuple(c for c in out if c != "seed")
    return ("target",) + out


def check_row(kind: str, row: dict[str, Any]) -> None:
    """Raise ValueError unless ``row`` has exactly the columns of ``kind`` (what the row builders promise)."""
    expected = set(columns_of(kind))
    if set(row) != expected:
        raise ValueError(f"{kind} row: missing {sorted(expected - set(row))}, unexpected {sorted(set(row) - expected)}")


# --------------------------------------------------------------------------- the README tables


def render_table(kind: str) -> str:
    """The markdown column table of dataset ``kind`` (what ``sweeps/README.md`` holds between its markers)."""
    lines = ["| column | type | unit / meaning |", "|---|---|---|"]
    for col in TABLES[kind]:
        names = ", ".join(f"`{n}`" for n in col.names)
        types = [_type_name(column_type(kind, n)) for n in col.names]
        typed = types[0] if len(set(types)) == 1 else ", ".join(types)
        lines.append(f"| {names} | {typed} | {col.meaning} |")
    return "\n".join(lines)


def _type_name(t: pa.DataType) -> str:
    return {"double": "float64", "timestamp[us, tz=UTC]": "timestamp (UTC)"}.get(str(t), str(t))


_MARK = "<!-- columns:{kind} (generated by `python -m sweeps.columns --write sweeps/README.md`; do not edit) -->"
_END = "<!-- /columns:{kind} -->"


def readme_tables(text: str) -> dict[str, str]:
    """The generated tables found in a README text, by dataset."""
    found = {kind: marked_block(text, _MARK.format(kind=kind), _END.format(kind=kind)) for kind in TABLES}
    return {kind: block for kind, block in found.items() if block is not None}


def write_readme(text: str) -> str:
    """``text`` with each marked table replaced by the generated one."""
    for kind in TABLES:
        text = replace_marked_block(text, _MARK.format(kind=kind), _END.format(kind=kind), render_table(kind),
                                    f"marked tables for {kind!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    return write_command(sys.argv[1:] if argv is None else argv, write_readme,
                         lambda: "\n".join(f"### {kind}\n\n{render_table(kind)}\n" for kind in TABLES))


if __name__ == "__main__":
    raise SystemExit(main())
