"""Load a study's Parquet datasets (``runs``, ``curves``, ``inal``) into pandas DataFrames.

Layout (written by ``sweeps.store``; see CONTRACT.md)::

    <results_dir>/<study>/{runs,curves,inal}/target=<name>/<id>.parquet

The ``target`` column is not inside the files: it comes from the hive partition in the path. Files
are read with ``pyarrow.dataset`` and hive partitioning; files whose names start with ``.`` or
``_`` (temporary names of atomic writes, quarantine) and files not ending in ``.parquet`` are
ignored, so a half-written file is never read. ``path`` may be a study directory, a results root
holding several studies, a local path or a ``pyarrow.fs`` URI (``s3://...``, ``gs://...``).

Filters are keyword arguments naming any column: a scalar keeps equal rows, a list/tuple/set keeps
rows whose value is in it. Example: ``load_runs(path, target="parity", n=[8, 12])``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

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


@dataclass
class Study:
    """The three datasets of one or more studies; a missing dataset is an empty frame."""

    runs: pd.DataFrame
    curves: pd.DataFrame
    inal: pd.DataFrame

    @property
    def has_training(self) -> bool:
        """True when at least one training run is present."""
        return len(self.runs) > 0

    @property
    def has_inal(self) -> bool:
        """True when at least one INAL estimate is present."""
        return len(self.inal) > 0


def _filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """A pyarrow filesystem and the path inside it (URIs go through ``FileSystem.from_uri``)."""
    path = str(path)
    if "://" in path:
        return pafs.FileSystem.from_uri(path)
    import os
    return pafs.LocalFileSystem(), os.path.abspath(path)


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
                found.append(f"{str(path).rstrip('/')}/{info.base_name}")
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


def _load_one(study_dir: str, name: str, filters: dict[str, Any]) -> pd.DataFrame | None:
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
    if schema is None or _needs_unified_schema(dataset, files, fs):
        # Files written at different times may disagree on a type (e.g. an all-null column).
        schemas = [ds.dataset(f, format="parquet", filesystem=fs).schema for f in files]
        schema = pa.unify_schemas(schemas + [pa.schema([("target", pa.string())])],
                                  promote_options="permissive")
        dataset = ds.dataset(files, schema=schema, format="parquet", filesystem=fs,
                             partitioning=_HIVE, partition_base_dir=root)
    _check_filters(name, schema.names, filters)
    table = dataset.to_table(filter=_filter_expression(schema, filters))
    return table.to_pandas()


def _needs_unified_schema(dataset: ds.Dataset, files: list[str], fs: pafs.FileSystem) -> bool:
    """Cheap check: compare the first and last file's schemas (the inferred one is the first's)."""
    if len(files) < 2:
        return False
    last = ds.dataset(files[-1], format="parquet", filesystem=fs).schema
    first = ds.dataset(files[0], format="parquet", filesystem=fs).schema
    return not last.remove_metadata().equals(first.remove_metadata())


def load_dataset(path: str, name: str, **filters: Any) -> pd.DataFrame:
    """Load dataset ``name`` (``"runs"``, ``"curves"`` or ``"inal"``) of every study under ``path``.

    Returns an empty frame with the contract's columns when no study has that dataset (for example
    ``runs`` of an INAL-only study). ``filters`` name columns; an unknown name raises ``ValueError``
    listing the allowed ones.
    """
    if name not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {name!r}")
    frames = [f for f in (_load_one(d, name, filters) for d in find_study_dirs(path)) if f is not None]
    if not frames:
        _check_filters(name, _COLUMNS[name], filters)
        return _empty(name)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return frame.reset_index(drop=True)


def load_runs(path: str, **filters: Any) -> pd.DataFrame:
    """One row per training run (see :func:`load_dataset`)."""
    return load_dataset(path, "runs", **filters)


def load_curves(path: str, **filters: Any) -> pd.DataFrame:
    """One row per run and checkpoint (see :func:`load_dataset`)."""
    return load_dataset(path, "curves", **filters)


def load_inal(path: str, **filters: Any) -> pd.DataFrame:
    """One row per INAL setting and layer (see :func:`load_dataset`)."""
    return load_dataset(path, "inal", **filters)


def load_study(path: str, **filters: Any) -> Study:
    """All three datasets; a filter applies to every dataset that has the column.

    ``curves`` carries no config columns beyond ``target``: it is filtered to the ``run_id`` values
    of the filtered ``runs`` when ``filters`` name other columns.
    """
    def applicable(columns) -> dict[str, Any]:
        return {k: v for k, v in filters.items() if k in columns}

    unknown = sorted(set(filters) - set(RUNS_COLUMNS) - set(INAL_COLUMNS) - set(CURVES_COLUMNS))
    if unknown:
        raise ValueError(f"unknown filter column(s) {unknown}; allowed: "
                         f"{sorted(set(RUNS_COLUMNS) | set(INAL_COLUMNS))}")
    runs = load_runs(path, **applicable(RUNS_COLUMNS))
    inal = load_inal(path, **applicable(INAL_COLUMNS))
    curves = load_curves(path, **applicable(CURVES_COLUMNS))
    if set(filters) - set(CURVES_COLUMNS) and len(curves):
        curves = curves[curves["run_id"].isin(set(runs["run_id"]))].reset_index(drop=True)
    return Study(runs=runs, curves=curves, inal=inal)
