"""Load a study's Parquet datasets (``runs``, ``curves``, ``inal``) into pandas DataFrames.

Layout (written by ``sweeps.store``; see CONTRACT.md)::

    <results_dir>/<study>/{runs,curves,inal}/target=<name>/<id>.parquet

The ``target`` column is not inside the files: it comes from the hive partition in the path. Files
are read with ``pyarrow.dataset`` and hive partitioning; files whose names start with ``.`` or
``_`` (temporary names of atomic writes, quarantine) and files not ending in ``.parquet`` are
ignored, so a half-written file is never read. ``path`` may be a study directory, a results root
holding several studies, a local path or a ``pyarrow.fs`` URI with its query (``s3://...``,
``s3://bkt/p?endpoint_override=host:9000&scheme=http``, ``gs://...``; see ``sweeps.location``).

Filters are keyword arguments naming any column: a scalar keeps equal rows, a list/tuple/set keeps
rows whose value is in it. Example: ``load_runs(path, target="parity", n=[8, 12])``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from sweeps.settings import column_defaults  # the table of settings: plain Python
from sweeps.location import Location, is_uri  # pyarrow only: what a results location is

__all__ = [
    "DATASETS", "RUNS_COLUMNS", "CURVES_COLUMNS", "INAL_COLUMNS", "Study",
    "find_study_dirs", "load_dataset", "load_runs", "load_curves", "load_inal", "load_study",
]

DATASETS = ("runs", "curves", "inal")

# Columns every writer provides (CONTRACT.md); used for empty frames and filter validation.
RUNS_COLUMNS = (
    "study", "run_id", "target", "c", "n", "N", "width", "depth", "init", "bias", "n_steps", "gamma",
    "sigma", "A", "precision", "loss", "batch", "seed", "E", "correlation", "correlation_se", "acc",
    "final_loss", "param_norm", "status", "diverged_step", "error", "bound_prefactor", "inal_id",
    "wall_s", "git_commit", "host", "device", "torch_version", "engine_version",
)
CURVES_COLUMNS = ("study", "run_id", "target", "step", "correlation", "correlation_se", "acc", "loss", "param_norm")
INAL_COLUMNS = (
    "study", "inal_id", "target", "c", "n", "width", "depth", "init", "bias", "estimator", "layer",
    "inal", "inal_se", "is_max", "n_inits", "n_inputs", "wall_s", "git_commit", "engine_version",
)
_COLUMNS = {"runs": RUNS_COLUMNS, "curves": CURVES_COLUMNS, "inal": INAL_COLUMNS}
_HIVE = ds.partitioning(pa.schema([("target", pa.string())]), flavor="hive")


class Study:
    """The three datasets of one or more studies; a missing dataset is an empty frame.

    ``curves`` is loaded on first access (``load_study`` does not read it until then), with the
    filters ``load_study`` was given; passing a DataFrame sets it directly.
    """

    def __init__(self, runs: pd.DataFrame, curves: "pd.DataFrame | None" = None,
                 inal: "pd.DataFrame | None" = None, *, curves_loader: "Callable[[], pd.DataFrame] | None" = None) -> None:
        self.runs = runs
        self.inal = inal if inal is not None else _empty("inal")
        self._curves = curves
        self._curves_loader = curves_loader

    @property
    def curves(self) -> pd.DataFrame:
        """One row per run and checkpoint (read from disk on first access)."""
        if self._curves is None:
            self._curves = self._curves_loader() if self._curves_loader is not None else _empty("curves")
            self._curves_loader = None
        return self._curves

    @curves.setter
    def curves(self, value: pd.DataFrame) -> None:
        self._curves, self._curves_loader = value, None

    @property
    def curves_loaded(self) -> bool:
        return self._curves is not None

    @property
    def has_training(self) -> bool:
        """True when at least one training run is present."""
        return len(self.runs) > 0

    @property
    def has_inal(self) -> bool:
        """True when at least one INAL estimate is present."""
        return len(self.inal) > 0

    def runs_with_inal(self, layer="selected") -> pd.DataFrame:
        """``runs`` with the INAL of each run's setting: one row per run, the columns of ``runs``
        plus ``inal``, ``inal_se`` (of ``layer``: ``"selected"``, the selection-free estimate, the
        default; ``"max"``; or a layer number), ``inal_layer`` (which of these was used; studies
        without the selection-free columns fall back to ``"max"``) and ``inal_method`` — joined on
        ``inal_id``, with no ``_x``/``_y`` duplicates. Runs whose INAL is missing get NaN."""
        from .fits import inal_rows, resolve_layer

        used, _ = resolve_layer(self.inal, layer)
        cols = ["inal_id", "inal", "inal_se", "method"]
        rows = inal_rows(self.inal, layer)[cols] if len(self.inal) else pd.DataFrame(columns=cols)
        rows = rows.drop_duplicates("inal_id").rename(columns={"method": "inal_method"})
        rows["inal_layer"] = str(used)
        return self.runs.merge(rows, on="inal_id", how="left", validate="many_to_one")

    def __repr__(self) -> str:
        curves = f"{len(self._curves)} curve rows" if self._curves is not None else "curves not loaded yet"
        return f"Study({len(self.runs)} runs, {len(self.inal)} INAL rows, {curves})"


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it (``sweeps.location``: a URI keeps its query)."""
    location = Location(path)
    return location.fs, location.path


def _is_dir(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type == pafs.FileType.Directory


def _visible(name: str) -> bool:
    return not (name.startswith(".") or name.startswith("_"))


def find_study_dirs(path: str) -> list[str]:
    """Study directories under ``path``: ``path`` itself when it holds ``runs/``, ``curves/`` or
    ``inal/``, else its visible subdirectories that do (sorted). Raises ``FileNotFoundError`` when
    there is none."""
    fs, base = _filesystem(path)
    if not _is_dir(fs, base):
        raise FileNotFoundError(f"results path {path!r} is not a directory")
    if any(_is_dir(fs, f"{base}/{d}") for d in DATASETS):
        return [str(path)]
    found = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=False)):
        if info.type == pafs.FileType.Directory and _visible(info.base_name):
            if any(_is_dir(fs, f"{info.path}/{d}") for d in DATASETS):
                found.append(Location(path).child(info.base_name).text if is_uri(path)
                             else f"{str(path).rstrip('/')}/{info.base_name}")
    if not found:
        raise FileNotFoundError(
            f"no study under {path!r}: expected a study directory holding runs/, curves/ or inal/, "
            "or a results root whose subdirectories are studies")
    return sorted(found)


def _parquet_files(fs: pafs.FileSystem, base: str) -> list[str]:
    """Visible ``*.parquet`` files under ``base`` (recursively), sorted for a stable row order."""
    if not _is_dir(fs, base):
        return []
    files = []
    for info in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        rel = info.path[len(base):].strip("/").split("/")
        if info.type == pafs.FileType.File and info.base_name.endswith(".parquet") \
                and all(_visible(part) for part in rel):
            files.append(info.path)
    return sorted(files)


def _filter_expression(schema: pa.Schema, filters: dict[str, Any]) -> ds.Expression | None:
    expr = None
    for key, value in filters.items():
        typ = schema.field(key).type
        values = list(value) if isinstance(value, (list, tuple, set, frozenset)) else [value]
        value_set = pa.array(values).cast(typ)
        term = pc.is_in(ds.field(key), value_set=value_set)
        expr = term if expr is None else expr & term
    return expr


def _check_filters(name: str, columns, filters: dict[str, Any]) -> None:
    unknown = sorted(set(filters) - set(columns))
    if unknown:
        raise ValueError(f"unknown filter column(s) {unknown} for dataset {name!r}; "
                         f"allowed: {sorted(columns)}")


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in _COLUMNS[name]})


# Columns renamed in 02909a3 (files of older studies): legacy name -> current name.
_LEGACY = {"runs": {"corr": "correlation", "corr_se": "correlation_se", "T": "n_steps"},
           "curves": {"corr": "correlation", "corr_se": "correlation_se"}, "inal": {}}
# Rows of one cell: a reader may see a cell twice during a compaction or a retry (sweeps.store).
_KEYS = {"runs": ["run_id"], "curves": ["run_id", "step"], "inal": ["inal_id", "layer"]}


def _load_one(study_dir: str, name: str, filters: dict[str, Any],
              columns: Sequence[str] | None = None) -> pd.DataFrame | None:
    fs, base = _filesystem(study_dir)
    root = f"{base}/{name}"
    files = _parquet_files(fs, root)
    if not files:
        return None
    try:
        dataset = ds.dataset(files, format="parquet", filesystem=fs, partitioning=_HIVE,
                             partition_base_dir=root)
        schema = dataset.schema
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        schema = None
    expected = _expected_schema(name)
    if schema is None or _needs_unified_schema(dataset, files, fs) or not set(expected.names) <= set(schema.names):
        # Files written at different times may disagree on a type (e.g. an all-null column).
        schemas = [ds.dataset(f, format="parquet", filesystem=fs).schema for f in files]
        # today's columns too: those added after a file was written read as null (a setting's: its default)
        schema = pa.unify_schemas(schemas + [expected, pa.schema([("target", pa.string())])],
                                  promote_options="permissive")
        dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=fs,
                             partitioning=_HIVE, partition_base_dir=root)
    legacy = {old: new for old, new in _LEGACY[name].items() if old in schema.names}
    back = {new: old for old, new in legacy.items()}
    names = set(schema.names) | set(legacy.values())
    _check_filters(name, names, filters)
    if columns is not None:
        unknown = sorted(set(columns) - names)
        if unknown:
            raise ValueError(f"unknown column(s) {unknown} for dataset {name!r}; allowed: {sorted(names)}")
        wanted = list(dict.fromkeys(list(columns) + [k for k in _KEYS[name] if k in names]))
        read = [c for c in wanted if c in schema.names] + [back[c] for c in wanted if c in back]
    else:
        read = None
    expr = _filter_expression(schema, {back.get(k, k) if k not in schema.names else k: v for k, v in filters.items()})
    table = dataset.to_table(columns=read, filter=expr)
    frame = table.to_pandas()
    for col, default in column_defaults(name).items():  # rows written before the setting existed ran at its default
        if col in frame.columns and frame[col].isna().any():
            frame[col] = frame[col].fillna(default)
    for old, new in legacy.items():  # a study of the previous layout (or one migrated half-way)
        if old in frame.columns:
            frame[new] = frame[new].fillna(frame[old]) if new in frame.columns else frame[old]
            frame = frame.drop(columns=[old])
    if columns is not None:
        frame = frame[[c for c in wanted if c in frame.columns]]
    return frame


def _expected_schema(name: str) -> pa.Schema:
    """The dataset's columns as the store writes them today (``sweeps.columns``: plain pyarrow)."""
    from sweeps.columns import SCHEMAS

    return SCHEMAS[name]


def _needs_unified_schema(dataset: ds.Dataset, files: list[str], fs: pafs.FileSystem) -> bool:
    """Cheap check: compare the first and last file's schemas (the inferred one is the first's)."""
    if len(files) < 2:
        return False
    last = ds.dataset(files[-1], format="parquet", filesystem=fs).schema
    first = ds.dataset(files[0], format="parquet", filesystem=fs).schema
    return not last.remove_metadata().equals(first.remove_metadata())


def load_dataset(path: str, name: str, columns: Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
    """Load dataset ``name`` (``"runs"``, ``"curves"`` or ``"inal"``) of every study under ``path``.

    ``columns`` reads only those columns (plus the dataset's id columns), which is what keeps a
    10^5-run study in bounded memory; None reads every column. Each cell appears once (a cell
    seen twice during a compaction or a retry of failed runs is kept once: for runs, a row that
    is not ``failed`` wins). Returns an empty frame with the contract's columns when no study has
    that dataset (for example ``runs`` of an INAL-only study). ``filters`` name columns; an
    unknown name raises ``ValueError`` listing the allowed ones.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    frames = [f for f in (_load_one(d, name, filters, columns) for d in find_study_dirs(path)) if f is not None]
    if not frames:
        _check_filters(name, _COLUMNS[name], filters)
        empty = _empty(name)
        return empty[[c for c in columns if c in empty.columns]] if columns is not None else empty
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    keys = [k for k in _KEYS[name] if k in frame.columns]
    if keys and len(frame) and frame.duplicated(keys).any():
        if name == "runs" and "status" in frame.columns:
            frame = frame.assign(_failed=frame["status"].eq("failed")).sort_values("_failed", kind="stable")
            frame = frame.drop_duplicates(keys).sort_index().drop(columns="_failed")
        else:
            frame = frame.drop_duplicates(keys)
    return frame.reset_index(drop=True)


def load_runs(path: str, columns: Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
    """One row per training run (see :func:`load_dataset`)."""
    return load_dataset(path, "runs", columns, **filters)


def load_curves(path: str, columns: Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
    """One row per run and checkpoint (see :func:`load_dataset`)."""
    return load_dataset(path, "curves", columns, **filters)


def load_inal(path: str, columns: Sequence[str] | None = None, **filters: Any) -> pd.DataFrame:
    """One row per INAL setting and layer (see :func:`load_dataset`)."""
    return load_dataset(path, "inal", columns, **filters)


def load_study(path: str, *, columns: dict[str, Sequence[str]] | None = None, **filters: Any) -> Study:
    """All three datasets; a filter applies to every dataset that has the column.

    ``runs`` and ``inal`` are read now, ``curves`` on first access of ``Study.curves``.
    ``columns`` maps a dataset name to the columns to read (e.g. ``{"runs": ["run_id", "n",
    "correlation"]}``); datasets not named are read whole. ``curves`` carries no config
    columns beyond ``target``: it is filtered to the ``run_id`` values of the filtered ``runs``
    when ``filters`` name other columns.
    """
    def applicable(names) -> dict[str, Any]:
        return {k: v for k, v in filters.items() if k in names}

    columns = dict(columns or {})
    unknown_kinds = sorted(set(columns) - set(DATASETS))
    if unknown_kinds:
        raise ValueError(f"columns must name datasets among {DATASETS}, got {unknown_kinds}")
    unknown = sorted(set(filters) - set(RUNS_COLUMNS) - set(INAL_COLUMNS) - set(CURVES_COLUMNS))
    if unknown:
        raise ValueError(f"unknown filter column(s) {unknown}; allowed: "
                         f"{sorted(set(RUNS_COLUMNS) | set(INAL_COLUMNS))}")
    runs = load_runs(path, columns.get("runs"), **applicable(RUNS_COLUMNS))
    inal = load_inal(path, columns.get("inal"), **applicable(INAL_COLUMNS))

    def curves() -> pd.DataFrame:
        frame = load_curves(path, columns.get("curves"), **applicable(CURVES_COLUMNS))
        if set(filters) - set(CURVES_COLUMNS) and len(frame):
            frame = frame[frame["run_id"].isin(set(runs["run_id"]))].reset_index(drop=True)
        return frame

    return Study(runs=runs, inal=inal, curves_loader=curves)
