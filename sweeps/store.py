"""The results store: three hive-partitioned Parquet datasets per study, one file per job.

Layout (CONTRACT.md)::

    <results_dir>/<study>/runs/target=<name>/<run_id>.parquet     one row per training run
    <results_dir>/<study>/curves/target=<name>/<run_id>.parquet   one row per run and checkpoint
    <results_dir>/<study>/inal/target=<name>/<inal_id>.parquet    one row per layer (1..depth+1)
    <results_dir>/<study>/_quarantine/                            files found corrupt, moved aside

The ``target`` column lives only in the path (hive partitioning); readers get it back with
``pyarrow.dataset.dataset(p, partitioning="hive")``, ``pandas.read_parquet(p)``, DuckDB
``read_parquet('p/**/*.parquet', hive_partitioning=true)`` or polars
``scan_parquet(p, hive_partitioning=True)``. Column types are fixed (``RUNS_SCHEMA`` ...):
ints int64, floats float64, strings string, flags bool.

Every file carries in its footer ``inal.schema_version``, ``inal.kind``, ``inal.id`` (the file's
id, equal to its name) and ``inal.rows``; runs files also ``inal.status`` and ``inal.curve_rows``.
A write goes to a hidden temporary name in the same directory and is renamed into place (on an
object store, where a put is atomic, it is a single put), so a reader never sees half a file.
A scan checks each file's footer, metadata, row count and id column; a file that fails is moved
to ``_quarantine/`` and its job counts as not done, so a rerun recomputes it.
"""

from __future__ import annotations

import os
import posixpath
import time
import uuid
from typing import Any, Iterable, Mapping

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

__all__ = ["ResultsStore", "RUNS_SCHEMA", "CURVES_SCHEMA", "INAL_SCHEMA", "SCHEMA_VERSION", "DATASETS"]

SCHEMA_VERSION = "1"
_S, _I, _F, _B = pa.string(), pa.int64(), pa.float64(), pa.bool_()

RUNS_SCHEMA = pa.schema([
    ("study", _S), ("run_id", _S), ("c", _F), ("n", _I), ("N", _I), ("N_spec", _S),
    ("width", _I), ("depth", _I), ("init", _S), ("bias", _B), ("target_params", _S),
    ("n_steps", _I), ("gamma", _F), ("sigma", _F), ("A", _F), ("precision", _S), ("loss", _S),
    ("batch", _I), ("batch_used", _I), ("gamma_schedule", _S), ("checkpoints", _S), ("n_eval", _I),
    ("seed", _I), ("engine_seed", _I), ("E", _I),
    ("correlation", _F), ("correlation_se", _F), ("acc", _F), ("final_loss", _F), ("param_norm", _F),
    ("status", _S), ("diverged_step", _I), ("error", _S), ("bound_prefactor", _F),
    ("inal_id", _S), ("estimator", _S), ("n_inits", _I), ("n_inputs", _I),
    ("wall_s", _F), ("git_commit", _S), ("host", _S), ("device", _S), ("torch_version", _S),
    ("engine_version", _I), ("created_at", pa.timestamp("us", tz="UTC")),
])
CURVES_SCHEMA = pa.schema([
    ("study", _S), ("run_id", _S), ("step", _I), ("correlation", _F), ("correlation_se", _F), ("acc", _F),
    ("loss", _F), ("param_norm", _F),
])
INAL_SCHEMA = pa.schema([
    ("study", _S), ("inal_id", _S), ("c", _F), ("n", _I), ("width", _I), ("depth", _I),
    ("init", _S), ("bias", _B), ("target_params", _S), ("estimator", _S), ("method", _S),
    ("layer", _I), ("inal", _F), ("inal_se", _F), ("is_max", _B), ("n_inits", _I), ("n_inputs", _I),
    # selection-free INAL (inal_core.inal_summary.selection_free_max), the same on every layer row
    ("selected_inal", _F), ("selected_inal_se", _F), ("selected_layer_a", _I), ("selected_layer_b", _I),
    ("seed", _I), ("wall_s", _F), ("git_commit", _S), ("host", _S), ("device", _S),
    ("torch_version", _S), ("engine_version", _I), ("created_at", pa.timestamp("us", tz="UTC")),
])
DATASETS = {"runs": (RUNS_SCHEMA, "run_id"), "curves": (CURVES_SCHEMA, "run_id"), "inal": (INAL_SCHEMA, "inal_id")}
_TMP_MARK = ".tmp-"
_STALE_TMP_S = 3600.0


def resolve_filesystem(results_dir: str) -> tuple[pafs.FileSystem, str]:
    """``(filesystem, base path)`` for a local path or a pyarrow.fs URI (``file://``, ``s3://`` ...)."""
    if "://" in str(results_dir):
        fs, path = pafs.FileSystem.from_uri(str(results_dir))
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(str(results_dir)))


class ResultsStore:
    """The Parquet datasets of one study under ``results_dir`` (a local path or a pyarrow.fs URI)."""

    def __init__(self, results_dir: str, study: str) -> None:
        self.results_dir, self.study = str(results_dir), study
        self.fs, base = resolve_filesystem(results_dir)
        self.root = posixpath.join(base, study)
        # a put is atomic on object stores; rename is what is atomic on a local/POSIX filesystem
        self._rename_writes = self.fs.type_name in ("local", "hdfs")
        self._made_dirs: set[str] = set()

    # ------------------------------------------------------------------ paths

    def dataset_path(self, kind: str) -> str:
        """Directory of the ``runs``, ``curves`` or ``inal`` dataset (a path inside ``self.fs``)."""
        if kind not in DATASETS:
            raise ValueError(f"dataset kind must be one of {tuple(DATASETS)}, got {kind!r}")
        return posixpath.join(self.root, kind)

    def dataset_uri(self, kind: str) -> str:
        """The dataset directory as a string readers accept (a local path, or a URI for other filesystems)."""
        path = self.dataset_path(kind)
        if self.fs.type_name == "local":
            return path
        return f"{self.results_dir.split('://', 1)[0]}://{path}"

    def file_path(self, kind: str, target: str, file_id: str) -> str:
        return posixpath.join(self.dataset_path(kind), f"target={target}", f"{file_id}.parquet")

    # ------------------------------------------------------------------ writing

    def _write(self, kind: str, target: str, file_id: str, columns: Mapping[str, Iterable[Any]],
               extra_meta: Mapping[str, str] | None = None) -> str:
        schema, id_col = DATASETS[kind]
        missing = [f.name for f in schema if f.name not in columns]
        if missing:
            raise ValueError(f"{kind} rows lack columns {missing}")
        table = pa.Table.from_pydict({f.name: list(columns[f.name]) for f in schema}, schema=schema)
        if table.num_rows == 0:
            raise ValueError(f"refusing to write an empty {kind} file for {file_id}")
        ids = set(table.column(id_col).to_pylist())
        if ids != {file_id}:
            raise ValueError(f"{kind} file {file_id} would hold rows of {sorted(ids)}")
        meta = {"inal.schema_version": SCHEMA_VERSION, "inal.kind": kind, "inal.id": file_id,
                "inal.rows": str(table.num_rows), **(extra_meta or {})}
        table = table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
        final = self.file_path(kind, target, file_id)
        directory = posixpath.dirname(final)
        if not self._rename_writes:
            self._write_table(table, final, directory)
            return final
        tmp = posixpath.join(directory, f".{file_id}.parquet{_TMP_MARK}{uuid.uuid4().hex}")
        try:
            self._write_table(table, tmp, directory)
            self.fs.move(tmp, final)  # os.replace on a local filesystem: atomic
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise
        return final

    def _write_table(self, table: pa.Table, path: str, directory: str) -> None:
        """``pq.write_table``, creating ``directory`` once per store (again if it vanished meanwhile)."""
        if directory not in self._made_dirs:
            self.fs.create_dir(directory, recursive=True)
            self._made_dirs.add(directory)
        try:
            pq.write_table(table, path, filesystem=self.fs)
        except FileNotFoundError:  # the study was deleted while this process kept its store
            self.fs.create_dir(directory, recursive=True)
            pq.write_table(table, path, filesystem=self.fs)

    def write_run(self, target: str, run_row: Mapping[str, Any],
                  curves: Mapping[str, Iterable[Any]] | None = None) -> str:
        """Write one run: its curves file first, then its runs file (the runs file marks it done).

        ``run_row`` maps every ``RUNS_SCHEMA`` column to a scalar; ``curves`` maps every
        ``CURVES_SCHEMA`` column to a sequence (one entry per checkpoint), or is None.
        """
        run_id = run_row["run_id"]
        curve_rows = 0
        if curves is not None and len(list(curves["step"])) > 0:
            curve_rows = self._write_curves(target, run_id, curves)
        meta = {"inal.status": str(run_row["status"]), "inal.curve_rows": str(curve_rows)}
        return self._write("runs", target, run_id, {k: [v] for k, v in run_row.items()}, meta)

    def _write_curves(self, target: str, run_id: str, curves: Mapping[str, Iterable[Any]]) -> int:
        cols = {k: list(v) for k, v in curves.items()}
        self._write("curves", target, run_id, cols)
        return len(cols["step"])

    def write_inal(self, target: str, inal_id: str, rows: Mapping[str, Iterable[Any]]) -> str:
        """Write the per-layer INAL rows of one ``inal_id`` (every ``INAL_SCHEMA`` column a sequence)."""
        return self._write("inal", target, inal_id, rows)

    # ------------------------------------------------------------------ checking

    def _list(self, kind: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.dataset_path(kind), recursive=True, allow_not_found=True)
        return [info for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.File]

    def check_file(self, kind: str, path: str) -> tuple[dict[str, str] | None, str]:
        """``(footer metadata, "")`` for a sound file, ``(None, reason)`` otherwise.

        Sound: the Parquet footer reads, ``inal.schema_version`` and ``inal.kind`` match,
        ``inal.id`` equals the file name, the footer's row count equals ``inal.rows`` and every
        value of the id column equals ``inal.id``.
        """
        schema, id_col = DATASETS[kind]
        file_id = posixpath.basename(path)[: -len(".parquet")]
        try:
            with self.fs.open_input_file(path) as handle:
                pf = pq.ParquetFile(handle)
                raw = pf.metadata.metadata or {}
                meta = {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"inal.")}
                if meta.get("inal.schema_version") != SCHEMA_VERSION:
                    return None, f"schema version {meta.get('inal.schema_version')!r} != {SCHEMA_VERSION!r}"
                if meta.get("inal.kind") != kind or meta.get("inal.id") != file_id:
                    return None, f"metadata kind/id {meta.get('inal.kind')}/{meta.get('inal.id')} do not match the path"
                if pf.metadata.num_rows != int(meta.get("inal.rows", -1)) or pf.metadata.num_rows < 1:
                    return None, f"row count {pf.metadata.num_rows} != recorded {meta.get('inal.rows')}"
                ids = pf.read(columns=[id_col]).column(id_col)
                if ids.null_count or set(ids.to_pylist()) != {file_id}:
                    return None, f"{id_col} column does not match the file name"
        except (OSError, pa.ArrowException, ValueError, KeyError) as err:
            return None, f"unreadable: {type(err).__name__}: {err}"
        return meta, ""

    def quarantine(self, kind: str, path: str, reason: str) -> str:
        """Move a bad file to ``<study>/_quarantine/`` (with a ``.reason.txt`` beside it); returns its new path."""
        rel = posixpath.relpath(path, self.dataset_path(kind)).replace("/", "__")
        dest_dir = posixpath.join(self.root, "_quarantine")
        self.fs.create_dir(dest_dir, recursive=True)
        dest = posixpath.join(dest_dir, f"{kind}__{rel}.{int(time.time() * 1e6)}")
        self.fs.move(path, dest)
        with self.fs.open_output_stream(dest + ".reason.txt") as out:
            out.write(reason.encode())
        return dest

    def _scan(self, kind: str) -> dict[str, dict[str, str]]:
        """Metadata of every sound file of ``kind`` by id; bad files are quarantined, stale temp files removed."""
        sound: dict[str, dict[str, str]] = {}
        now = time.time()
        for info in self._list(kind):
            name = info.base_name
            if name.startswith(".") and _TMP_MARK in name:
                mtime = info.mtime.timestamp() if info.mtime is not None else now
                if now - mtime > _STALE_TMP_S:  # left by a writer that died; never a result
                    self.fs.delete_file(info.path)
                continue
            if not name.endswith(".parquet"):
                continue
            meta, reason = self.check_file(kind, info.path)
            if meta is None:
                self.quarantine(kind, info.path, reason)
                continue
            sound[meta["inal.id"]] = meta
        return sound

    def completed_run_ids(self) -> set[str]:
        """Ids of runs whose results are complete: a sound runs file, status not ``failed``, and a
        sound curves file with the recorded number of rows when it has curves. One scan."""
        runs = self._scan("runs")
        curves = self._scan("curves")
        done = set()
        for run_id, meta in runs.items():
            if meta.get("inal.status") == "failed":
                continue  # retried on the next invocation
            want = int(meta.get("inal.curve_rows", "0"))
            if want and curves.get(run_id, {}).get("inal.rows") != str(want):
                continue
            done.add(run_id)
        return done

    def completed_inal_ids(self) -> set[str]:
        """Ids of INAL settings with a sound file (one scan)."""
        return set(self._scan("inal"))

    def has_inal(self, inal_id: str, target: str) -> bool:
        """Whether the INAL file of ``inal_id`` is present and sound (checks that one file; quarantines it if bad)."""
        return self._has("inal", target, inal_id)

    def has_run(self, run_id: str, target: str) -> bool:
        """Whether run ``run_id`` is complete (checks its runs and curves files only)."""
        if not self._has("runs", target, run_id):
            return False
        meta, _ = self.check_file("runs", self.file_path("runs", target, run_id))
        if meta is None or meta.get("inal.status") == "failed":
            return False
        want = int(meta.get("inal.curve_rows", "0"))
        return want == 0 or self._has("curves", target, run_id)

    def _has(self, kind: str, target: str, file_id: str) -> bool:
        path = self.file_path(kind, target, file_id)
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return False
        meta, reason = self.check_file(kind, path)
        if meta is None:
            self.quarantine(kind, path, reason)
            return False
        return True

    def is_complete(self, run_id: str, target: str | None = None) -> bool:
        """Whether a run is complete; with ``target`` one file is checked, without it the study is scanned."""
        if target is not None:
            return self.has_run(run_id, target)
        return run_id in self.completed_run_ids()

    def pending(self, jobs: Iterable[Any]) -> list[Any]:
        """The jobs (``sweeps.jobs.JobSpec``) whose results are not complete, in order.

        A job is complete when its INAL file is sound and, if it trains (``T > 0``), its run is
        complete. Two scans in all, whatever the number of jobs.
        """
        jobs = list(jobs)
        runs_done = self.completed_run_ids() if any(j.train for j in jobs) else set()
        inal_done = self.completed_inal_ids()
        return [j for j in jobs if j.inal_id not in inal_done or (j.train and j.run_id not in runs_done)]

    # ------------------------------------------------------------------ reading

    def read(self, kind: str) -> pa.Table:
        """The whole dataset as one table, ``target`` included (scans and quarantines first)."""
        import pyarrow.dataset as ds

        self._scan(kind)
        schema, _ = DATASETS[kind]
        if not self._list(kind):
            return schema.append(pa.field("target", pa.string())).empty_table()
        dataset = ds.dataset(self.dataset_path(kind), filesystem=self.fs, format="parquet",
                             partitioning="hive", ignore_prefixes=[".", "_"])
        return dataset.to_table()
