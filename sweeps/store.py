"""The results store: three hive-partitioned Parquet datasets per study, one file per task.

Layout (schema version 2)::

    <results_dir>/<study>/runs/target=<name>/pack-<h>.parquet     runs of one training task (a pack)
    <results_dir>/<study>/runs/target=<name>/failed-<h>.parquet   failed runs of one task (retried later)
    <results_dir>/<study>/curves/target=<name>/pack-<h>.parquet   their curves (same name as the runs file)
    <results_dir>/<study>/inal/target=<name>/<inal_id>.parquet     one INAL task: one row per layer
    <results_dir>/<study>/{runs,curves,inal}/target=<name>/part-<h>.parquet   compacted (``compact``)
    <results_dir>/<study>/_tmp/          files being written (renamed into place when complete)
    <results_dir>/<study>/_quarantine/   files proven corrupt, moved aside with a .reason.txt
    <results_dir>/<study>/_lease/        the maintenance lease of the process compacting the study
    <results_dir>/<study>/_claims/       the cells each running driver computes (``sweeps.claims``)

Costs grow with tasks (packs), not with runs: a task writes one file per dataset, and resume
(``completed_run_ids``) reads each file's footer, schema and id column only, never its rows.
The ``target`` column lives only in the path (hive partitioning); readers get it back with
``pyarrow.dataset.dataset(p, partitioning="hive")``, ``pandas.read_parquet(p)``, DuckDB
``read_parquet('p/**/*.parquet', hive_partitioning=true)`` or polars
``scan_parquet(p, hive_partitioning=True)``, with no extra library. Column types are fixed
(``RUNS_SCHEMA`` ...): ints int64, floats float64, strings string, flags bool.

Every file carries in its footer ``inal.schema_version`` ("2"), ``inal.kind``, ``inal.ids`` (the
sorted ids it holds, comma-separated), ``inal.rows``; runs files also ``inal.status`` (``ok``:
ok and diverged runs; ``failed``) and ``inal.curve_rows`` (rows of the curves file of the same
name). A file is **sound** when its footer reads, its metadata match, its Arrow schema holds the
expected columns with their types (in any order; a file written before a column was added may
lack it when that column is one of ``sweeps.columns.ADDED_LATER``: it reads back as null, a
setting's column as the setting's default), its row count is the recorded one and its id column
holds exactly the recorded ids (``schema_difference`` says what else is wrong). A file that fails is **proven corrupt** and moved to
``_quarantine/`` (its cells are then recomputed); a transient read error (``OSError``:
permissions, timeouts, a flaky NFS or object store) is retried three times and then stops the
scan with :class:`StoreReadError`, never quarantining a file. Two scans at once may both find a
corrupt file: the second one's move finds it gone, which is fine.

What a reader sees:

- during a write: nothing of it. Files are written under ``<study>/_tmp/`` (outside the
  dataset directories, so polars and DuckDB never list them) and renamed into place, which is
  atomic on a POSIX filesystem; on an object store a put is atomic and goes to its final name.
  A task writes its curves file before its runs file; the runs file marks the runs complete.
- during a compaction (``compact``, at the end of a study, under the maintenance lease): the
  compacted file is renamed in first, then the small files it replaces are deleted, runs before
  curves. A reader listing the directory in between (milliseconds) can see those cells twice;
  ``analysis.load`` drops such duplicates by id. Afterwards every cell is in exactly one runs file
  (cells that two drivers both computed included), so pandas, DuckDB and polars count each once;
  a compaction killed half-way is finished by the next ``compact``, which a rerun of the study
  runs when a scan finds such leftovers (``maintenance_due``).
- while failed runs are retried: the new rows are written, then the ``failed-`` file is
  rewritten without them (or deleted); in between a reader sees both rows of a retried run.

Studies written by the previous layout (schema version 1: one file per run named by its id,
columns ``corr``/``corr_se``/``T`` before 02909a3) are migrated in place by
``python -m sweeps.store migrate <results_dir>/<study>``; a scan that meets such a file stops
with that command in its message instead of quarantining it. ``migrate`` also carries identities
forward (``carry_identities``): each row's ``run_id``, ``inal_id`` and ``config_id`` are recomputed
from its stored config columns with today's validation (a study written before the typed spec,
0767b9c and earlier, hashed another payload), so a rerun of the same command finds every cell
complete; rows of another engine version are moved to ``<study>/_superseded/`` (kept, never
counted beside the recomputed ones); rows whose config cannot be read back are left as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import random
import shlex
import socket
import sys
import time
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .columns import ADDED_LATER, CURVES_SCHEMA, INAL_SCHEMA, RUNS_SCHEMA
from .location import Location

__all__ = ["ResultsStore", "RUNS_SCHEMA", "CURVES_SCHEMA", "INAL_SCHEMA", "SCHEMA_VERSION", "DATASETS",
           "StoreReadError", "LegacyLayoutError", "migrate_study"]

SCHEMA_VERSION = "2"
LEGACY_VERSIONS = ("1",)
# the schemas are derived from the column tables in sweeps/columns.py (one place, with the README tables)
DATASETS = {"runs": (RUNS_SCHEMA, "run_id"), "curves": (CURVES_SCHEMA, "run_id"), "inal": (INAL_SCHEMA, "inal_id")}
#: Column renames of 02909a3 (legacy name -> current name), applied by ``migrate_study``.
LEGACY_RENAMES = {"runs": {"corr": "correlation", "corr_se": "correlation_se", "T": "n_steps"},
                  "curves": {"corr": "correlation", "corr_se": "correlation_se"}, "inal": {}}
_STALE_TMP_S = 3600.0
_READ_ATTEMPTS = 3
_RETRY_SLEEP_S = 0.2
COMPACT_ROWS = 1 << 18  # rows of one compacted file at most
COMPACT_MIN_FILES = 64  # small files of a partition that the end of a study compacts
LEASE_S = 900.0  # a maintenance lease not rewritten for this long was left by a dead process (its holder rewrites it every LEASE_S / 3)
_LEASE_POLL_S = 0.2
_LEASE_RENEW_S = LEASE_S / 3  # a compaction rewrites its lease this often (between merges)


try:  # Hydra's command line prints these as one line, without a traceback
    from hydra.errors import CompactHydraException as _Compact
except ImportError:  # pragma: no cover - hydra is a dependency; the store itself does not need it
    class _Compact(Exception):  # type: ignore[no-redef]
        pass


class StoreReadError(OSError, _Compact):
    """A file could not be read after retries (not proven corrupt: nothing was quarantined)."""


class LegacyLayoutError(RuntimeError, _Compact):
    """The study holds files of an older layout; the message names the migration command."""


def _digest(ids: Iterable[str]) -> str:
    return hashlib.blake2b(",".join(sorted(ids)).encode(), digest_size=12).hexdigest()


class FileEntry:
    """One sound file found by a scan: its path, target partition, name, ids and footer metadata."""

    __slots__ = ("path", "target", "name", "ids", "meta", "mtime")

    def __init__(self, path: str, target: str, name: str, ids: List[str], meta: Dict[str, str],
                 mtime: Optional[float] = None) -> None:
        self.path, self.target, self.name, self.ids, self.meta = path, target, name, ids, meta
        self.mtime = mtime


class ResultsStore:
    """The Parquet datasets of one study under ``results_dir`` (a local path or a pyarrow.fs URI)."""

    def __init__(self, results_dir: "str | Location", study: str) -> None:
        self.results_dir, self.study = str(results_dir), study
        #: the study's location as one value (a path, or the URI with its query): what hints print
        self.location = Location(results_dir).child(study)
        self.fs = self.location.fs
        self.root = self.location.path
        # a put is atomic on object stores; rename is what is atomic on a local/POSIX filesystem
        self._rename_writes = self.fs.type_name in ("local", "hdfs")
        self._made_dirs: set[str] = set()
        #: set by each scan of the runs: whether ``compact`` has work (cells held twice, orphan
        #: curves, a partition of at least ``COMPACT_MIN_FILES`` small files), so that a rerun of a complete study
        #: finishes what a killed compaction left
        self.maintenance_due = False
        self._lease: Optional[list] = None  # [path, when written (monotonic), renewals] while the lease is held

    # ------------------------------------------------------------------ paths

    def dataset_path(self, kind: str) -> str:
        """Directory of the ``runs``, ``curves`` or ``inal`` dataset (a path inside ``self.fs``)."""
        if kind not in DATASETS:
            raise ValueError(f"dataset kind must be one of {tuple(DATASETS)}, got {kind!r}")
        return posixpath.join(self.root, kind)

    def shown(self, path: str) -> str:
        """``path`` (inside ``self.fs``) as messages print it: itself on a local filesystem, else the
        study's URI with ``path``'s part below the study inserted before the query (quoted for a
        shell), so that the message names the endpoint that was asked."""
        if self.location.is_local:
            return path
        if path == self.root or path.startswith(self.root + "/"):
            return shlex.quote(str(self.location.child(path[len(self.root):])))
        return path

    def dataset_uri(self, kind: str) -> str:
        """The dataset directory as a string readers accept (a local path, or a URI for other filesystems)."""
        if self.fs.type_name == "local":
            return self.dataset_path(kind)
        return self.location.child(kind).text

    def file_path(self, kind: str, target: str, name: str) -> str:
        """Path of the file ``<name>.parquet`` of ``kind`` in partition ``target``."""
        return posixpath.join(self.dataset_path(kind), f"target={target}", f"{name}.parquet")

    @property
    def tmp_dir(self) -> str:
        return posixpath.join(self.root, "_tmp")

    # ------------------------------------------------------------------ writing

    def _table(self, kind: str, columns: Mapping[str, Sequence[Any]], meta: Mapping[str, str]) -> Tuple[pa.Table, List[str]]:
        schema, _ = DATASETS[kind]
        missing = [f.name for f in schema if f.name not in columns and f.name not in ADDED_LATER[kind]]
        if missing:
            raise ValueError(f"{kind} rows lack columns {missing}")
        rows = len(next(iter(columns.values()))) if columns else 0  # an older file's rows: added columns null
        return self._with_footer(kind, pa.Table.from_pydict(
            {f.name: list(columns[f.name]) if f.name in columns else [None] * rows for f in schema},
            schema=schema), meta)

    def _with_footer(self, kind: str, table: pa.Table, meta: Mapping[str, str]) -> Tuple[pa.Table, List[str]]:
        """``table`` (the dataset's columns, typed) with the footer metadata: schema version, kind,
        the ids it holds, its row count and ``meta``."""
        _, id_col = DATASETS[kind]
        if table.num_rows == 0:
            raise ValueError(f"refusing to write an empty {kind} file")
        ids = sorted(pc.unique(table.column(id_col)).to_pylist())
        full = {"inal.schema_version": SCHEMA_VERSION, "inal.kind": kind, "inal.ids": ",".join(ids),
                "inal.rows": str(table.num_rows), **meta}
        return table.replace_schema_metadata({k.encode(): v.encode() for k, v in full.items()}), ids

    def _write(self, kind: str, target: str, name: str, columns: Mapping[str, Sequence[Any]],
               meta: Mapping[str, str] | None = None, expect_ids: Optional[Sequence[str]] = None) -> str:
        table, ids = self._table(kind, columns, meta or {})
        if expect_ids is not None and set(ids) != set(expect_ids):
            raise ValueError(f"{kind} file {name} would hold rows of {ids}, expected {sorted(expect_ids)}")
        return self._put(table, self.file_path(kind, target, name))

    def _put(self, table: pa.Table, final: str) -> str:
        """Write ``table`` at ``final`` atomically: into ``_tmp/``, then a rename (a single put on object stores)."""
        directory = posixpath.dirname(final)
        self._ensure_dir(directory)
        if not self._rename_writes:
            pq.write_table(table, final, filesystem=self.fs)
            return final
        self._ensure_dir(self.tmp_dir)
        tmp = posixpath.join(self.tmp_dir, f"{uuid.uuid4().hex}.parquet")
        try:
            try:
                pq.write_table(table, tmp, filesystem=self.fs)
            except FileNotFoundError:  # the study was deleted while this process kept its store
                self._made_dirs.clear()
                self._ensure_dir(self.tmp_dir)
                pq.write_table(table, tmp, filesystem=self.fs)
            try:
                self.fs.move(tmp, final)  # os.replace on a local filesystem: atomic
            except FileNotFoundError:
                self._made_dirs.discard(directory)
                self._ensure_dir(directory)
                self.fs.move(tmp, final)
        except BaseException:
            try:
                self.fs.delete_file(tmp)
            except OSError:
                pass
            raise
        return final

    def _ensure_dir(self, directory: str) -> None:
        if directory not in self._made_dirs:
            self.fs.create_dir(directory, recursive=True)
            self._made_dirs.add(directory)

    def write_runs(self, target: str, rows: Sequence[Mapping[str, Any]],
                   curves: Mapping[str, Sequence[Any]] | None = None) -> str:
        """Write the runs of one task: its curves file first, then its runs file (which marks them done).

        ``rows`` map every ``RUNS_SCHEMA`` column to a scalar; ``curves`` maps every
        ``CURVES_SCHEMA`` column to a sequence (the checkpoints of all runs), or is None. Runs
        whose status is ``failed`` go to a ``failed-`` file of their own (no curves), so that a
        retry replaces them without touching the results of the others.
        """
        rows = list(rows)
        failed = [r for r in rows if r["status"] == "failed"]
        good = [r for r in rows if r["status"] != "failed"]
        path = ""
        if good:
            ids = [r["run_id"] for r in good]
            name = f"pack-{_digest(ids)}"
            curve_rows = 0
            if curves is not None and len(curves["step"]) > 0:
                keep = set(ids)
                sel = [i for i, rid in enumerate(curves["run_id"]) if rid in keep]
                cols = {k: [v[i] for i in sel] for k, v in curves.items()}
                if sel:
                    self._write("curves", target, name, cols, expect_ids=ids)
                    curve_rows = len(sel)
            path = self._write("runs", target, name, {k: [r[k] for r in good] for k in good[0]},
                               {"inal.status": "ok", "inal.curve_rows": str(curve_rows)})
        if failed:
            ids = [r["run_id"] for r in failed]
            fpath = self._write("runs", target, f"failed-{_digest(ids)}", {k: [r[k] for r in failed] for k in failed[0]},
                                {"inal.status": "failed", "inal.curve_rows": "0"})
            path = path or fpath
        return path

    def write_run(self, target: str, run_row: Mapping[str, Any],
                  curves: Mapping[str, Iterable[Any]] | None = None) -> str:
        """Write one run (a task of one run): see :meth:`write_runs`."""
        cols = None if curves is None else {k: list(v) for k, v in curves.items()}
        return self.write_runs(target, [run_row], cols)

    def write_inal(self, target: str, inal_id: str, rows: Mapping[str, Iterable[Any]]) -> str:
        """Write the per-layer INAL rows of one ``inal_id`` (every ``INAL_SCHEMA`` column a sequence)."""
        cols = {k: list(v) for k, v in rows.items()}
        return self._write("inal", target, inal_id, cols, expect_ids=[inal_id])

    # ------------------------------------------------------------------ checking

    def _list(self, kind: str) -> list[pafs.FileInfo]:
        selector = pafs.FileSelector(self.dataset_path(kind), recursive=True, allow_not_found=True)
        return [info for info in self._retry(lambda: self.fs.get_file_info(selector), self.dataset_path(kind))
                if info.type == pafs.FileType.File]

    def _retry(self, fn, path: str):
        """``fn()``, retried on ``OSError`` (transient: permissions, timeouts); ``StoreReadError`` at the end."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                return fn()
            except FileNotFoundError:
                raise
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise
            except OSError as err:
                if attempt + 1 == _READ_ATTEMPTS:
                    raise StoreReadError(
                        f"cannot read {self.shown(path)} ({type(err).__name__}: {err}) after {_READ_ATTEMPTS} attempts; "
                        "nothing was changed: check the file system and run the same command again") from err
                time.sleep(_RETRY_SLEEP_S * (attempt + 1))

    def check_file(self, kind: str, path: str) -> tuple[dict[str, str] | None, str]:
        """``(footer metadata, "")`` for a sound file, ``(None, reason)`` for a file proven corrupt.

        Raises :class:`StoreReadError` when the file cannot be read (transient), ``FileNotFoundError``
        when it vanished, and :class:`LegacyLayoutError` for a file of an older layout.
        """
        return self._retry(lambda: self._check(kind, path), path)

    def _check(self, kind: str, path: str) -> tuple[dict[str, str] | None, str]:
        schema, id_col = DATASETS[kind]
        try:
            with self.fs.open_input_file(path) as handle:
                pf = pq.ParquetFile(handle)
                raw = pf.metadata.metadata or {}
                meta = {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"inal.")}
                version = meta.get("inal.schema_version")
                if version in LEGACY_VERSIONS:
                    raise LegacyLayoutError(
                        f"{path} was written by an older layout of the results store (schema version "
                        f"{version}); migrate the study once with: python -m sweeps.store migrate {shlex.quote(str(self.location))}")
                if version != SCHEMA_VERSION:
                    return None, f"schema version {version!r} != {SCHEMA_VERSION!r}"
                if meta.get("inal.kind") != kind or "inal.ids" not in meta:
                    return None, f"metadata kind {meta.get('inal.kind')!r} (expected {kind!r}) or ids missing"
                if not pf.schema_arrow.remove_metadata().equals(schema):
                    reason = schema_difference(kind, pf.schema_arrow)
                    if reason:
                        return None, reason
                if pf.metadata.num_rows != int(meta.get("inal.rows", -1)) or pf.metadata.num_rows < 1:
                    return None, f"row count {pf.metadata.num_rows} != recorded {meta.get('inal.rows')}"
                ids = pf.read(columns=[id_col]).column(id_col)
                want_ids = meta["inal.ids"].split(",")
                if ids.null_count or set(ids.unique().to_pylist()) != set(want_ids):
                    return None, f"{id_col} column does not hold the recorded ids"
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, KeyError,
                UnicodeDecodeError) as err:
            return None, f"unreadable: {type(err).__name__}: {err}"
        return meta, ""

    def quarantine(self, kind: str, path: str, reason: str) -> str | None:
        """Move a corrupt file to ``<study>/_quarantine/`` (with a ``.reason.txt``); its new path, or
        None when another scan moved it first."""
        rel = posixpath.relpath(path, self.dataset_path(kind)).replace("/", "__")
        dest_dir = posixpath.join(self.root, "_quarantine")
        self.fs.create_dir(dest_dir, recursive=True)
        dest = posixpath.join(dest_dir, f"{kind}__{rel}.{int(time.time() * 1e6)}.{uuid.uuid4().hex[:6]}")
        try:
            self.fs.move(path, dest)
        except FileNotFoundError:
            return None
        with self.fs.open_output_stream(dest + ".reason.txt") as out:
            out.write(reason.encode())
        return dest

    def _clean_tmp(self) -> None:
        selector = pafs.FileSelector(self.tmp_dir, recursive=False, allow_not_found=True)
        now = time.time()
        try:
            infos = self.fs.get_file_info(selector)
        except OSError:
            return
        for info in infos:
            mtime = info.mtime.timestamp() if info.mtime is not None else now
            if info.type == pafs.FileType.File and now - mtime > _STALE_TMP_S:  # a writer that died
                try:
                    self.fs.delete_file(info.path)
                except OSError:
                    pass

    def scan(self, kind: str) -> List[FileEntry]:
        """Every sound file of ``kind`` (footer, schema and ids checked); corrupt files quarantined."""
        out: List[FileEntry] = []
        base = self.dataset_path(kind)
        for info in self._list(kind):
            name = info.base_name
            rel = posixpath.relpath(info.path, base).split("/")
            if not name.endswith(".parquet") or any(p.startswith((".", "_")) for p in rel):
                continue
            target = rel[0][len("target="):] if rel[0].startswith("target=") else ""
            try:
                meta, reason = self.check_file(kind, info.path)
            except FileNotFoundError:
                continue  # deleted meanwhile (a compaction, another scan's quarantine)
            if meta is None:
                self.quarantine(kind, info.path, reason)
                continue
            out.append(FileEntry(info.path, target, name[: -len(".parquet")], meta["inal.ids"].split(","), meta,
                                 info.mtime.timestamp() if info.mtime is not None else None))
        return out

    def _index(self) -> Tuple[set, List[FileEntry], List[FileEntry]]:
        """``(complete run ids, sound runs files, sound curves files)``, after the repairs of the module doc."""
        self._clean_tmp()
        runs = self.scan("runs")
        curves = {(e.target, e.name): e for e in self.scan("curves")}
        done: set = set()
        good: List[FileEntry] = []
        for entry in runs:
            if entry.meta.get("inal.status") == "failed":
                continue
            want = int(entry.meta.get("inal.curve_rows", "0"))
            if want and (entry.target, entry.name) not in curves:
                self.quarantine("runs", entry.path, "its curves file is missing or was quarantined")
                continue
            if want and curves[(entry.target, entry.name)].meta.get("inal.rows") != str(want):
                self.quarantine("runs", entry.path, "its curves file holds another number of rows")
                continue
            done.update(entry.ids)
            good.append(entry)
        kept = self._drop_covered(good, curves)
        names = {(e.target, e.name) for e in runs}
        small = _small_files_by_target(kept)
        self.maintenance_due = (sum(len(e.ids) for e in kept) != len(done)
                                or any((k not in names) for k in curves)
                                or any(len(v) >= COMPACT_MIN_FILES for v in small.values()))
        for entry in runs:  # failed rows of runs now complete elsewhere: drop them
            if entry.meta.get("inal.status") == "failed":
                stale = [i for i in entry.ids if i in done]
                if stale:
                    self._rewrite_without("runs", entry, set(stale))
        return done, kept, list(curves.values())

    def _drop_covered(self, good: List[FileEntry], curves: Dict[Tuple[str, str], FileEntry]) -> List[FileEntry]:
        """Delete small files whose ids a compacted file holds too (a compaction killed half-way)."""
        parts: Dict[str, set] = {}
        for e in good:
            if e.name.startswith("part-"):
                parts.setdefault(e.target, set()).update(e.ids)
        if not parts:
            return good
        kept = []
        for e in good:
            if not e.name.startswith("part-") and set(e.ids) <= parts.get(e.target, set()):
                for kind, path in (("runs", e.path), ("curves", self.file_path("curves", e.target, e.name))):
                    try:
                        self.fs.delete_file(path)
                    except FileNotFoundError:
                        pass
                    curves.pop((e.target, e.name), None) if kind == "curves" else None
            else:
                kept.append(e)
        return kept

    def _rewrite_without(self, kind: str, entry: FileEntry, ids: set) -> None:
        _, id_col = DATASETS[kind]
        try:
            table = pq.read_table(entry.path, filesystem=self.fs)
        except FileNotFoundError:
            return
        import pyarrow.compute as pc

        rest = table.filter(pc.invert(pc.is_in(table.column(id_col), pa.array(sorted(ids)))))
        try:
            if rest.num_rows == 0:
                self.fs.delete_file(entry.path)
            else:
                cols = rest.replace_schema_metadata(None).to_pydict()
                meta = {k: v for k, v in entry.meta.items() if k in ("inal.status", "inal.curve_rows")}
                new, _ = self._table(kind, cols, meta)
                self._put(new, entry.path)
        except FileNotFoundError:
            pass

    def completed_run_ids(self) -> set[str]:
        """Ids of runs whose results are complete: in a sound runs file of status ``ok`` (ok or
        diverged runs) whose curves file is sound with the recorded rows. Footers, schemas and id
        columns only: one pass over the study's files."""
        return self._index()[0]

    def completed_inal_ids(self) -> set[str]:
        """Ids of INAL settings with a sound file."""
        done: set = set()
        for entry in self.scan("inal"):
            done.update(entry.ids)
        return done

    def has_inal(self, inal_id: str, target: str) -> bool:
        """Whether the INAL file of ``inal_id`` is present and sound (checks that one file, or scans)."""
        path = self.file_path("inal", target, inal_id)
        try:
            meta, reason = self.check_file("inal", path)
        except FileNotFoundError:
            return inal_id in self.completed_inal_ids()
        if meta is None:
            self.quarantine("inal", path, reason)
            return False
        return True

    def has_run(self, run_id: str, target: str) -> bool:
        """Whether run ``run_id`` is complete: its own pack file first (a task of one run), else a scan."""
        name = f"pack-{_digest([run_id])}"
        path = self.file_path("runs", target, name)
        try:
            meta, _ = self.check_file("runs", path)
            curves_meta, _ = self.check_file("curves", self.file_path("curves", target, name)) \
                if meta is not None and int(meta.get("inal.curve_rows", "0")) else (meta, "")
            if meta is not None and curves_meta is not None:
                return True
        except FileNotFoundError:
            pass
        return run_id in self.completed_run_ids()

    def pending(self, jobs: Iterable[Any]) -> list[Any]:
        """The jobs (``sweeps.jobs.JobSpec``) whose results are not complete, in order (one pass)."""
        jobs = list(jobs)
        runs_done = self.completed_run_ids() if any(j.train for j in jobs) else set()
        inal_done = self.completed_inal_ids()
        return [j for j in jobs if j.inal_id not in inal_done or (j.train and j.run_id not in runs_done)]

    # ------------------------------------------------------------------ compaction

    def _concat(self, kind: str, paths: List[str]) -> pa.Table:
        """The rows of ``paths``, in order, as one table of the dataset's schema (the files' own footer
        metadata dropped). One dataset scan over the files: about 2.5x faster than a read per file."""
        import pyarrow.dataset as ds

        schema, _ = DATASETS[kind]
        table = ds.dataset(paths, schema=schema, format="parquet", filesystem=self.fs).to_table()
        return table.replace_schema_metadata(None)

    def compact(self, min_files: int = COMPACT_MIN_FILES, wait: bool = True) -> Dict[str, int]:
        """Bring the study's files to their converged form (the launcher calls this when a study
        ends; ``python -m sweeps.store compact`` with ``min_files=2``), under the study's
        maintenance lease (:meth:`maintenance_lease`: with ``wait``, once the process holding it
        releases it; without, nothing is done while another process holds it):

        1. runs files that share a cell (two drivers that computed the same cells, a compaction
           killed half-way) are merged into one ``part-`` file holding each cell once, with the
           curves of the copy kept, whatever their number;
        2. the small files of a partition holding at least ``min_files`` of them are merged into
           files of up to ``COMPACT_ROWS`` rows (compacted files are never rewritten, so extending
           a study leaves them as they are); ``failed-`` files are left alone (retries replace them);
        3. orphan curves files (no runs file of their name) are deleted when every run they hold is
           complete elsewhere (left by a compaction killed between its deletes), or when older than
           an hour (a writer killed between its curves and its runs file).

        A merge writes its file (curves, then runs; via ``_tmp`` and a rename, a single put on an
        object store) before deleting the files it replaces (runs, then curves), and a file is
        deleted only when a file written earlier holds all its cells: a reader, a scan or a merge
        killed at any point never loses a cell, and the next ``compact`` finishes the work.
        Returns the number of files removed per dataset.
        """
        removed = {"runs": 0, "curves": 0, "inal": 0}
        with self.maintenance_lease(wait=wait) as held:
            if not held:
                return removed
            done, good, curves_files = self._index()
            curves = {(e.target, e.name): e for e in curves_files}
            merged: set = set()
            for group in _overlapping(good):
                self._merge(group[0].target, group, curves, removed)
                merged.update(e.path for e in group)
            good = [e for e in good if e.path not in merged]
            for target, entries in _small_files_by_target(good).items():
                if len(entries) < min_files:
                    continue
                for chunk in _chunks(entries, COMPACT_ROWS):
                    self._merge(target, chunk, curves, removed)
            self._drop_orphan_curves(done, curves_files, removed)
            from .claims import StudyClaims  # old claims of finished drivers, and those of dead ones

            StudyClaims(self).remove_stale()
            for target, entries in _small_files_by_target(self.scan("inal")).items():
                if len(entries) < min_files:
                    continue
                for chunk in _chunks(entries, COMPACT_ROWS):
                    self._renew_lease()
                    table, ids = self._with_footer("inal", self._concat("inal", [e.path for e in chunk]), {})
                    self._put(table, self.file_path("inal", target, f"part-{_digest(ids)}"))
                    for e in chunk:
                        self._delete(e.path)
                        removed["inal"] += 1
            self.maintenance_due = False
        return removed

    @contextlib.contextmanager
    def maintenance_lease(self, wait: bool = True) -> Iterator[bool]:
        """Hold the study's maintenance lease while the block runs; yields whether it is held.

        One process at a time rewrites and deletes a study's files (``compact``). On a local or
        POSIX filesystem the lease is ``<study>/_lease/maintenance``, created with ``O_EXCL``
        (atomic: exactly one creator wins), holding its owner (host, pid) and removed on exit. An
        object store has no exclusive create through pyarrow, so there each contender lists the
        claims, puts its own ``<study>/_lease/<ns>-<uuid>`` when it saw none, and lists again: it
        holds the lease only when its claim is the only live one, else it removes its claim. S3
        and GCS make every put visible to a later list, so of two contenders the one that put
        second sees the other's claim: at most one holds, whatever their names or clocks (a
        "first in name order wins" rule let a contender whose clock was earlier but whose put
        landed after the other's second look hold the lease too). Two that see each other both
        step back and try again after a random part of ``_LEASE_POLL_S``.
        A lease whose process is gone from this host, or not rewritten for ``LEASE_S`` (its holder
        rewrites it between merges: :meth:`_renew_lease`), was left by a process that died and is
        taken over. With
        ``wait`` a contender polls until the lease is free (or stale); without, it yields False.
        """
        lease_dir = posixpath.join(self.root, "_lease")
        while True:
            token = self._take_lease(lease_dir)
            if token is not None or not wait:
                break
            time.sleep(_LEASE_POLL_S * (0.5 + random.random()))  # contenders out of step
        self._lease = [token, time.monotonic(), 0] if token is not None else None
        try:
            yield token is not None
        finally:
            self._lease = None
            if token is not None:
                self._delete(token)

    def _renew_lease(self) -> None:
        """Rewrite the held lease when ``_LEASE_RENEW_S`` (``LEASE_S / 3``) has passed since it was written (called
        between the merges of a compaction): a compaction longer than ``LEASE_S`` keeps its lease
        instead of another host's process taking it over as left by a dead one."""
        lease = self._lease
        if lease is None or time.monotonic() - lease[1] < _LEASE_RENEW_S:
            return
        lease[2] += 1
        owner = f"{socket.gethostname()} pid {os.getpid()} at {time.time():.3f} renewal {lease[2]}".encode()
        try:
            if self.fs.type_name == "local":
                with open(lease[0], "r+b") as held:  # the O_EXCL file stays: rewritten in place
                    held.write(owner)
                    held.truncate()
            else:
                with self.fs.open_output_stream(lease[0]) as out:  # a put: a fresh modification time
                    out.write(owner)
        except OSError:  # the next compaction finishes what this one leaves
            pass
        lease[1] = time.monotonic()

    def _take_lease(self, lease_dir: str) -> Optional[str]:
        """The lease's path when taken now, else None (see :meth:`maintenance_lease`)."""
        owner = f"{socket.gethostname()} pid {os.getpid()} at {time.time():.3f}".encode()
        self._ensure_dir(lease_dir)
        if self.fs.type_name == "local":
            path = posixpath.join(lease_dir, "maintenance")
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    with open(path, "rb") as held:
                        text = held.read()
                    if _lease_is_stale(text, os.stat(path).st_mtime):  # its holder died: take it over
                        stale = f"{path}.stale-{uuid.uuid4().hex}"
                        os.replace(path, stale)  # one of two takers wins the rename
                        os.unlink(stale)
                except FileNotFoundError:
                    pass
                return None
            with os.fdopen(fd, "wb") as out:
                out.write(owner)
            return path
        if self._live_claims(lease_dir):
            return None
        mine = posixpath.join(lease_dir, f"{time.time_ns():020d}-{uuid.uuid4().hex}")
        with self.fs.open_output_stream(mine) as out:
            out.write(owner)
        if self._live_claims(lease_dir) != [mine]:  # another contender's claim: never two holders
            self._delete(mine)
            return None
        return mine

    def _live_claims(self, lease_dir: str) -> List[str]:
        """Claims of the object-store lease, in name order; those older than ``LEASE_S`` are deleted."""
        selector = pafs.FileSelector(lease_dir, recursive=False, allow_not_found=True)
        live = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            try:
                with self.fs.open_input_stream(info.path) as held:
                    text = held.read()
            except FileNotFoundError:
                continue
            if _lease_is_stale(text, info.mtime.timestamp() if info.mtime is not None else time.time()):
                self._delete(info.path)
            else:
                live.append(info.path)
        return sorted(live)

    def _delete(self, path: str) -> bool:
        """Delete ``path``; False when it was gone already (another process's compaction)."""
        try:
            self.fs.delete_file(path)
            return True
        except FileNotFoundError:
            return False

    def _merge(self, target: str, chunk: List[FileEntry], curves: Dict[Tuple[str, str], FileEntry],
               removed: Dict[str, int]) -> None:
        """Replace the runs files ``chunk`` (and their curves files) by one ``part-`` file holding
        each of their runs once: the row (and curves) of the first file holding it, files ordered
        compacted first, then by name, so that two processes merging the same files write the same
        file. When one file already holds every run of the chunk, the others are only deleted."""
        self._renew_lease()
        chunk = sorted(chunk, key=lambda e: (not e.name.startswith("part-"), e.name))
        union = sorted({i for e in chunk for i in e.ids})
        whole = next((e for e in chunk if len(e.ids) == len(union)), None)
        keep = whole
        if whole is None:
            try:
                keep = self._write_merged(target, chunk, union, curves)
            except FileNotFoundError:  # another process merged these files meanwhile: its file holds them
                return
        for e in chunk:  # runs files first: a reader never sees a runs file without its curves
            if e.path != keep.path and self._delete(e.path):
                removed["runs"] += 1
        for e in chunk:
            if e.name != keep.name and (target, e.name) in curves and self._delete(curves[(target, e.name)].path):
                removed["curves"] += 1

    def _write_merged(self, target: str, chunk: List[FileEntry], union: List[str],
                      curves: Dict[Tuple[str, str], FileEntry]) -> FileEntry:
        """Write the ``part-`` file (curves, then runs) of :meth:`_merge`; its entry."""
        rtab = self._concat("runs", [e.path for e in chunk])
        source = [k for k, e in enumerate(chunk) for _ in range(int(e.meta.get("inal.rows", "0")))]
        first: Dict[str, int] = {}
        for rid, k in zip(rtab.column("run_id").to_pylist(), source):
            first.setdefault(rid, k)
        if len(first) != rtab.num_rows:  # cells held twice: keep the first copy of each
            rtab = rtab.filter(pa.array([first[r] == k for r, k in zip(rtab.column("run_id").to_pylist(), source)]))
        with_curves = [(k, e) for k, e in enumerate(chunk) if int(e.meta.get("inal.curve_rows", "0"))]
        name = f"part-{_digest(union)}"
        curve_rows = 0
        if with_curves:
            ctab = self._concat("curves", [curves[(target, e.name)].path for _, e in with_curves])
            csource = [k for k, e in with_curves for _ in range(int(e.meta["inal.curve_rows"]))]
            if len(first) != len(source):
                ctab = ctab.filter(pa.array([first.get(r) == k for r, k in
                                             zip(ctab.column("run_id").to_pylist(), csource)]))
            curve_rows = ctab.num_rows
            table, _ = self._with_footer("curves", ctab, {})
            self._put(table, self.file_path("curves", target, name))
        table, _ = self._with_footer("runs", rtab, {"inal.status": "ok", "inal.curve_rows": str(curve_rows)})
        keep_path = self._put(table, self.file_path("runs", target, name))
        return FileEntry(keep_path, target, name, union, {})

    def _drop_orphan_curves(self, done: set, curves_files: List[FileEntry], removed: Dict[str, int]) -> None:
        """Delete curves files with no runs file of their name whose runs are all complete elsewhere,
        or that are older than ``_STALE_TMP_S`` (their writer died before writing its runs file)."""
        runs_names = {(posixpath.basename(posixpath.dirname(i.path))[len("target="):], i.base_name[: -len(".parquet")])
                      for i in self._list("runs")}
        now = time.time()
        for e in curves_files:
            if (e.target, e.name) in runs_names:
                continue
            stale = e.mtime is not None and now - e.mtime > _STALE_TMP_S
            if (set(e.ids) <= done or stale) and self._delete(e.path):
                removed["curves"] += 1

    # ------------------------------------------------------------------ reading

    def read(self, kind: str) -> pa.Table:
        """The whole dataset as one table, ``target`` included (scans and quarantines first)."""
        import pyarrow.dataset as ds

        if kind == "runs":
            self._index()
        else:
            self.scan(kind)
        schema, _ = DATASETS[kind]
        if not self._list(kind):
            return schema.append(pa.field("target", pa.string())).empty_table()
        # today's schema: a file written before a column existed reads it as null (a setting's: its default)
        dataset = ds.dataset(self.dataset_path(kind), schema=schema.append(pa.field("target", pa.string())),
                             filesystem=self.fs, format="parquet", partitioning="hive", ignore_prefixes=[".", "_"])
        return _fill_setting_defaults(kind, dataset.to_table())


def _fill_setting_defaults(kind: str, table: pa.Table) -> pa.Table:
    """Nulls of a setting's column (rows written before the setting existed) as its default: those
    rows were computed at it (a setting added later is hashed only away from its default)."""
    from .settings import column_defaults

    for name, default in column_defaults(kind).items():
        if name in table.column_names and table.column(name).null_count:
            i = table.column_names.index(name)
            table = table.set_column(i, table.field(i), pc.fill_null(table.column(name), default))
    return table


def schema_difference(kind: str, got: pa.Schema) -> str:
    """Why a file's Arrow schema cannot hold ``kind`` rows ("" when it can). A file may lack the
    columns added since it was written (``sweeps.columns.ADDED_LATER``: read back as null) and hold
    its columns in another order; a column of another type, an unknown column, or a missing column
    that has no null meaning make it corrupt."""
    schema, _ = DATASETS[kind]
    want = {f.name: f.type for f in schema}
    have = {f.name: f.type for f in got}
    wrong = sorted(k for k in have if k in want and not have[k].equals(want[k]))
    unknown = sorted(k for k in have if k not in want)
    missing = sorted(k for k in want if k not in have and k not in ADDED_LATER[kind])
    if not (wrong or unknown or missing):
        return ""
    parts = [f"{k} is {have[k]} (expected {want[k]})" for k in wrong]
    parts += [f"unknown column {k}" for k in unknown] + [f"missing column {k}" for k in missing]
    return f"schema differs from the expected {kind} schema: " + "; ".join(parts)


def _chunks(entries: List[FileEntry], max_rows: int) -> Iterable[List[FileEntry]]:
    chunk: List[FileEntry] = []
    rows = 0
    for e in entries:
        n = int(e.meta.get("inal.rows", "0"))
        if chunk and rows + n > max_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(e)
        rows += n
    if chunk:
        yield chunk


# ---------------------------------------------------------------------- migration


def _lease_is_stale(owner: bytes, mtime: float) -> bool:
    """Whether a lease (``"<host> pid <pid> at <time>"``) was left by a dead process: its process is
    gone from this host, or it is older than ``LEASE_S`` (a holder on another host)."""
    words = owner.decode(errors="replace").split()
    if len(words) >= 3 and words[0] == socket.gethostname() and words[1] == "pid" and words[2].isdigit():
        try:
            os.kill(int(words[2]), 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive, another user's
            pass
    return time.time() - mtime > LEASE_S


def _overlapping(entries: List["FileEntry"]) -> List[List["FileEntry"]]:
    """The groups (connected components) of runs files of one partition that share a cell, each of
    at least two files; one pass over the ids."""
    owner: Dict[Tuple[str, str], int] = {}
    parent = list(range(len(entries)))

    def find(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for k, e in enumerate(entries):
        for rid in e.ids:
            other = owner.setdefault((e.target, rid), k)
            if other != k:
                parent[find(k)] = find(other)
    groups: Dict[int, List["FileEntry"]] = {}
    for k, e in enumerate(entries):
        groups.setdefault(find(k), []).append(e)
    return [g for g in groups.values() if len(g) > 1]


def _small_files_by_target(entries: Iterable["FileEntry"]) -> Dict[str, List["FileEntry"]]:
    """The entries not yet compacted (names other than ``part-*``), grouped by target partition."""
    out: Dict[str, List["FileEntry"]] = {}
    for e in entries:
        if not e.name.startswith("part-"):
            out.setdefault(e.target, []).append(e)
    return out


def migrate_study(study_root: str) -> Dict[str, int]:
    """Rewrite a study of the previous layout (one file per run, schema version 1, columns
    ``corr``/``corr_se``/``T`` or already renamed) into the current one: per dataset and target,
    the rows of the old files are renamed to the current columns, written as compacted files,
    and the old files removed. Idempotent; returns the number of old files migrated per dataset."""
    results_dir, study = Location(study_root).split()
    store = ResultsStore(results_dir, study)
    fs = store.fs
    counts = {}
    for kind, (schema, id_col) in DATASETS.items():
        base = store.dataset_path(kind)
        old: Dict[str, List[str]] = {}
        for info in store._list(kind):
            rel = posixpath.relpath(info.path, base).split("/")
            if not info.base_name.endswith(".parquet") or any(p.startswith((".", "_")) for p in rel):
                continue
            md = pq.read_metadata(info.path, filesystem=fs).metadata or {}
            if md.get(b"inal.schema_version", b"").decode() in LEGACY_VERSIONS:
                target = rel[0][len("target="):]
                old.setdefault(target, []).append(info.path)
        counts[kind] = sum(len(v) for v in old.values())
        for target, paths in old.items():
            for start in range(0, len(paths), 20000):
                chunk = paths[start:start + 20000]
                tables = []
                for p in chunk:
                    t = pq.read_table(p, filesystem=fs).replace_schema_metadata(None)
                    t = t.rename_columns([LEGACY_RENAMES[kind].get(c, c) for c in t.column_names])
                    for f in schema:  # columns added since (config_id, selected_inal, ...): null
                        if f.name not in t.column_names:
                            t = t.append_column(f.name, pa.nulls(t.num_rows, f.type))
                    tables.append(t.select(schema.names).cast(schema))
                table = pa.concat_tables(tables)
                if kind == "runs":
                    for status in ("ok", "failed"):
                        mask = pc.equal(table.column("status"), "failed")
                        part = table.filter(mask if status == "failed" else pc.invert(mask))
                        if part.num_rows == 0:
                            continue
                        ids = part.column(id_col).to_pylist()
                        ids_with_curves = ids  # old runs files of ok/diverged runs always had curves
                        meta = {"inal.status": status, "inal.curve_rows": "0"}
                        prefix = "failed" if status == "failed" else "part"
                        if status == "ok":
                            meta["inal.curve_rows"] = str(_migrated_curve_rows(store, fs, target, ids_with_curves))
                        new, _ = store._with_footer("runs", part, meta)
                        store._put(new, store.file_path("runs", target, f"{prefix}-{_digest(ids)}"))
                else:
                    new, ids = store._with_footer(kind, table, {})
                    store._put(new, store.file_path(kind, target, f"part-{_digest(ids)}"))
                for p in chunk:
                    fs.delete_file(p)
    _pair_migrated_curves(store)
    counts.update(carry_identities(store))
    return counts


# --------------------------------------------------------------------------- identities carried forward


def _parse_resolved(text: str) -> Dict[str, Any]:
    """``k=2,subset=first,subset_seed=0`` (the ``target_params`` column) as typed values."""
    import yaml

    out: Dict[str, Any] = {}
    for part in filter(None, (text or "").split(",")):
        key, _, raw = part.partition("=")
        value = yaml.safe_load(raw) if raw not in ("", "None") else None
        out[key] = value
    return out


def _row_config(row: Mapping[str, Any], target: str, defaults: Mapping[str, Any], store: "ResultsStore",
                kind: str) -> Dict[str, Any]:
    """The config a stored row was computed from, read back from its columns (``sweeps.settings``:
    each stored setting's column; settings not stored take today's defaults, which decide no identity
    but the memory budget's choice of method); the target's inputs from ``target_params``."""
    import copy
    import json

    from inal_core.targets import FAMILIES

    from .settings import SETTINGS

    cfg = copy.deepcopy(dict(defaults))
    cfg["study"], cfg["results_dir"] = store.study, store.results_dir
    for s in SETTINGS:
        if not s.path or not s.column or s.column not in row:
            continue
        # inal rows store the setting's own columns, and the counts it ran with (requested = used but
        # n_inputs of exact enumeration, which the caller resets); their `seed` is the INAL seed
        if kind not in s.stored_in and not (kind == "inal" and s.flat in ("n_inits", "n_inputs")):
            continue
        value = row[s.column]
        if value is None:
            continue  # a column added later (null): the setting's default, already in cfg
        if s.to_column is not None:
            value = json.loads(value)
        if s.read is not None and s.read.null is not None and value == s.read.null:
            value = None
        group, _, key = s.path.rpartition(".")
        (cfg.setdefault(group, {}) if group else cfg)[key] = value
    family = FAMILIES[target]
    resolved = _parse_resolved(row.get("target_params") or "")
    cfg["target"] = {"name": target, **{k: v for k, v in resolved.items() if k in family.param_names
                                        and not (family.c_rule == "degree" and k == "k")}}
    return cfg


def carry_identities(store: "ResultsStore") -> Dict[str, int]:
    """Recompute each stored row's identities (``run_id``, ``inal_id``, ``config_id``) from its config
    columns with today's validation, and rewrite the files whose ids changed (a study written before
    the typed spec, whose hashes differ): a rerun of the same command then finds every cell
    complete. Rows of another engine version (their numbers would differ today) are superseded:
    moved to ``<study>/_superseded/`` (kept, never read beside the new rows; their cells are
    recomputed). Rows whose config cannot be read back, or that today's validation refuses, are
    left exactly as they are (counted as ``rows_unreadable``). Idempotent; returns counts of rows."""
    import inal_core
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from .validation import ConfigError, validate_job

    with initialize_config_module("sweeps.conf", version_base="1.3"):
        defaults = OmegaConf.to_container(compose("config"), resolve=True)
    engine = int(inal_core.ENGINE_VERSION)
    counts = {"rows_reidentified": 0, "rows_superseded": 0, "rows_unreadable": 0}
    inal_map: Dict[str, Tuple[str, str, int]] = {}  # old inal_id -> (new inal_id, inal config_id, inal seed)
    run_map: Dict[str, Optional[str]] = {}  # old run_id -> new run_id (None: superseded)
    cache: Dict[Tuple, Any] = {}

    def job_of(row, target, kind):
        """The row's job today, or None where its config cannot be read back or is refused today
        (such rows are left exactly as they are: nothing is lost or guessed)."""
        try:
            cfg = _row_config(row, target, defaults, store, kind)
            key = repr(cfg)
            if key not in cache:
                cache[key] = validate_job(cfg)
        except (ConfigError, KeyError, TypeError, ValueError):  # JSONDecodeError is a ValueError
            return None
        return cache[key]

    def rewrite(kind: str, entry: "FileEntry", table: pa.Table, superseded: pa.Table | None) -> None:
        if superseded is not None and superseded.num_rows:
            dest = posixpath.join(store.root, "_superseded", kind, posixpath.basename(posixpath.dirname(entry.path)))
            store.fs.create_dir(dest, recursive=True)
            pq.write_table(superseded, posixpath.join(dest, posixpath.basename(entry.path)), filesystem=store.fs)
        if table.num_rows == 0:
            store.fs.delete_file(entry.path)
            return
        meta = {k: v for k, v in entry.meta.items() if k in ("inal.status", "inal.curve_rows")}
        if kind == "runs" and "inal.curve_rows" in meta:
            meta["inal.curve_rows"] = str(curve_rows.get(posixpath.basename(entry.path), meta["inal.curve_rows"]))
        new, _ = store._with_footer(kind, table.replace_schema_metadata(None), meta)
        store._put(new, entry.path)

    curve_rows: Dict[str, int] = {}
    runs_entries = store.scan("runs")
    plans = []
    for entry in runs_entries:
        table = pq.read_table(entry.path, filesystem=store.fs).replace_schema_metadata(None)
        rows = table.to_pylist()
        keep, new_ids = [], {"run_id": [], "inal_id": [], "config_id": []}
        for row in rows:
            job = job_of(row, entry.target, "runs")
            if job is None:  # kept as it is
                counts["rows_unreadable"] += 1
                run_map[row["run_id"]] = row["run_id"]
                keep.append(True)
                for col in new_ids:
                    new_ids[col].append(row[col])
                continue
            if row.get("engine_version") != engine:  # its numbers would differ today: superseded
                run_map[row["run_id"]] = None
                keep.append(False)
                continue
            run_map[row["run_id"]] = job.run_id
            inal_map.setdefault(row["inal_id"], (job.inal_id, job.inal_config_id, job.inal_seed))
            keep.append(True)
            new_ids["run_id"].append(job.run_id)
            new_ids["inal_id"].append(job.inal_id)
            new_ids["config_id"].append(job.config_id)
        plans.append((entry, table, keep, new_ids))
    # curves first (a runs file names the curve rows it has): the same mapping of run ids
    for entry in store.scan("curves"):
        table = pq.read_table(entry.path, filesystem=store.fs).replace_schema_metadata(None)
        old = table.column("run_id").to_pylist()
        if all(run_map.get(r, r) == r for r in old):
            continue
        mask = pa.array([run_map.get(r, r) is not None for r in old])
        kept = table.filter(mask)
        kept = kept.set_column(kept.column_names.index("run_id"), "run_id",
                               pa.array([run_map.get(r, r) for r in kept.column("run_id").to_pylist()], pa.string()))
        curve_rows[posixpath.basename(entry.path)] = kept.num_rows
        rewrite("curves", entry, kept, table.filter(pc.invert(mask)))
    for entry, table, keep, new_ids in plans:
        old_ids = table.column("run_id").to_pylist()
        changed = [o for o, k in zip(old_ids, keep) if k and run_map[o] != o]
        if not changed and all(keep) and new_ids["config_id"] == table.column("config_id").to_pylist():
            continue
        mask = pa.array(keep)
        kept = table.filter(mask)
        for col, values in new_ids.items():
            kept = kept.set_column(kept.column_names.index(col), col, pa.array(values, pa.string()))
        counts["rows_reidentified"] += kept.num_rows
        counts["rows_superseded"] += table.num_rows - kept.num_rows
        rewrite("runs", entry, kept, table.filter(pc.invert(mask)))
    for entry in store.scan("inal"):
        table = pq.read_table(entry.path, filesystem=store.fs).replace_schema_metadata(None)
        rows = table.to_pylist()
        keep, ids, cids, seeds = [], [], [], []
        for row in rows:
            hit = inal_map.get(row["inal_id"])
            if hit is None:  # no run names it (an INAL-only study): read its config back from the row
                cfg_row = dict(row, n_inputs=row["n_inputs"] if row.get("method") != "exact" else None)
                job = job_of(cfg_row, entry.target, "inal")
                if job is None:  # kept as it is
                    counts["rows_unreadable"] += 1
                    hit = (row["inal_id"], row["config_id"], row["seed"])
                else:
                    hit = (job.inal_id, job.inal_config_id, job.inal_seed)
            ok = row.get("engine_version") == engine or hit[0] == row["inal_id"]
            keep.append(ok)
            if ok:
                ids.append(hit[0])
                cids.append(hit[1])
                seeds.append(hit[2])
        if all(keep) and ids == table.column("inal_id").to_pylist() and cids == table.column("config_id").to_pylist():
            continue
        mask = pa.array(keep)
        kept = table.filter(mask)
        for col, values, typ in (("inal_id", ids, pa.string()), ("config_id", cids, pa.string()),
                                 ("seed", seeds, pa.int64())):
            kept = kept.set_column(kept.column_names.index(col), col, pa.array(values, typ))
        counts["rows_reidentified"] += kept.num_rows
        counts["rows_superseded"] += table.num_rows - kept.num_rows
        rewrite("inal", entry, kept, table.filter(pc.invert(mask)))
    return counts


def _migrated_curve_rows(store: ResultsStore, fs: pafs.FileSystem, target: str, ids: List[str]) -> int:
    """Curves rows of ``ids`` among the old per-run curves files (counted from their footers)."""
    rows = 0
    for rid in ids:
        path = store.file_path("curves", target, rid)
        try:
            rows += pq.read_metadata(path, filesystem=fs).num_rows
        except (FileNotFoundError, OSError):
            pass
    return rows


def _pair_migrated_curves(store: ResultsStore) -> None:
    """Give each migrated runs file a curves file of the same name holding its runs' curves."""
    runs = [e for e in store.scan("runs") if e.name.startswith("part-") and int(e.meta.get("inal.curve_rows", "0"))]
    curves = store.scan("curves")
    if not runs or not curves:
        return
    table = pa.concat_tables([pq.read_table(e.path, filesystem=store.fs).replace_schema_metadata(None) for e in curves])
    import pyarrow.compute as pc

    for e in runs:
        part = table.filter(pc.is_in(table.column("run_id"), pa.array(e.ids)))
        if part.num_rows:
            new, _ = store._table("curves", part.to_pydict(), {})
            store._put(new, store.file_path("curves", e.target, e.name))
    for e in curves:
        if not any(e.name == r.name and e.target == r.target for r in runs):
            store.fs.delete_file(e.path)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sweeps.store migrate <study dir>`` and ``python -m sweeps.store compact <study dir>``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sweeps.store", description="Maintain a study's results store.")
    parser.add_argument("command", choices=("migrate", "compact"))
    parser.add_argument("study_dir", help="<results_dir>/<study>: a path or a pyarrow.fs URI with its query "
                                          "(e.g. 's3://bkt/inal/default?endpoint_override=host:9000&scheme=http')")
    args = parser.parse_args(argv)
    try:
        location = Location(args.study_dir)
        if location.fs.get_file_info(location.path).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"{args.study_dir!r} is not a study directory (expected <results_dir>/<study>)")
        if args.command == "migrate":
            counts = migrate_study(args.study_dir)
            print(f"migrated {counts} old files of {location}")
        else:
            results_dir, study = location.split()
            store = ResultsStore(results_dir, study)
            print(f"compacted {location}: removed {store.compact(min_files=2)} small files")
    except (OSError, ValueError, pa.ArrowInvalid, LegacyLayoutError) as err:
        print(f"python -m sweeps.store {args.command}: {err}", file=sys.stderr)
        return 2 if isinstance(err, (FileNotFoundError, ValueError, pa.ArrowInvalid)) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
