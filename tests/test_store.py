"""The Parquet results store: pack layout, types, atomic writes, corrupt-file detection, transient
errors, concurrent scans, compaction, migration of the previous layout, four readers.

Reference values are the rows the test itself writes; nothing here depends on the engines.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import sweeps.store as store_mod
from sweeps.store import INAL_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION, LegacyLayoutError, ResultsStore, StoreReadError

_DUMMY = {pa.string(): "x", pa.int64(): 3, pa.float64(): 0.25, pa.bool_(): True}


def run_row(run_id: str, status: str = "ok", **over) -> dict:
    row = {}
    for f in RUNS_SCHEMA:
        row[f.name] = datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type) else _DUMMY[f.type]
    row.update(study="s", run_id=run_id, status=status, n=8, gamma=0.05, correlation=0.125)
    row.update(over)
    return row


def curves(run_id: str, steps=(0, 5, 10)) -> dict:
    k = len(steps)
    return {"study": ["s"] * k, "run_id": [run_id] * k, "step": list(steps), "correlation": [0.1 * i for i in range(k)],
            "correlation_se": [0.01] * k, "acc": [0.5] * k, "loss": [1.0] * k, "param_norm": [2.0] * k}


def inal_rows(inal_id: str, depth: int = 2) -> dict:
    L = depth + 1
    rows = {}
    for f in INAL_SCHEMA:
        v = datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type) else _DUMMY[f.type]
        rows[f.name] = [v] * L
    rows.update(study=["s"] * L, inal_id=[inal_id] * L, layer=list(range(1, L + 1)),
                inal=[1e-3 * (i + 1) for i in range(L)], is_max=[i == L - 1 for i in range(L)])
    return rows


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    return ResultsStore(str(tmp_path / "results"), "s")


def pack_curves(*parts: dict) -> dict:
    return {k: [v for p in parts for v in p[k]] for k in parts[0]}


def fill(store: ResultsStore) -> None:
    """r1, r2: one task (a pack of two); r3: a task of one; two INAL tasks."""
    store.write_runs("parity", [run_row("r1"), run_row("r2", correlation=-0.5)],
                     pack_curves(curves("r1"), curves("r2", steps=(0, 10))))
    store.write_run("majority", run_row("r3", status="diverged", correlation=math.nan), curves("r3"))
    store.write_inal("parity", "i1", inal_rows("i1"))
    store.write_inal("majority", "i2", inal_rows("i2", depth=1))


def files(root: Path) -> list:
    return sorted(p for p in root.rglob("*.parquet"))


def test_layout_metadata_and_completion(store, tmp_path):
    fill(store)
    root = tmp_path / "results" / "s"
    runs = sorted((root / "runs" / "target=parity").glob("*.parquet"))
    assert [p.name[:5] for p in runs] == ["pack-"]  # one file for the task of two runs
    assert (root / "curves" / "target=parity" / runs[0].name).is_file()  # its curves, same name
    assert len(list((root / "inal" / "target=parity").glob("i1.parquet"))) == 1
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temp files left
    assert not list((root / "_tmp").iterdir())  # temporaries live outside the datasets, and are gone
    md = pq.read_metadata(runs[0]).metadata
    assert md[b"inal.schema_version"] == SCHEMA_VERSION.encode()
    assert md[b"inal.ids"] == b"r1,r2" and md[b"inal.rows"] == b"2" and md[b"inal.curve_rows"] == b"5"
    schema = pq.read_schema(runs[0])
    assert "target" not in schema.names  # only in the path
    assert store.completed_run_ids() == {"r1", "r2", "r3"}  # diverged is a result
    assert store.completed_inal_ids() == {"i1", "i2"}
    assert store.has_run("r3", "majority") and store.has_run("r1", "parity")
    assert not store.has_run("r9", "parity")
    assert store.has_inal("i2", "majority")


def test_failed_runs_are_retried_and_replaced(store):
    store.write_runs("parity", [run_row("r1", status="failed", error="boom"), run_row("r2", status="failed")], None)
    assert store.completed_run_ids() == set()
    store.write_run("parity", run_row("r1"), curves("r1"))  # a retry of r1 alone
    assert store.completed_run_ids() == {"r1"}  # the scan drops r1's failed row
    rows = store.read("runs").to_pandas().set_index("run_id")["status"].to_dict()
    assert rows == {"r1": "ok", "r2": "failed"}  # each run once
    store.write_run("parity", run_row("r2"), curves("r2"))
    assert store.completed_run_ids() == {"r1", "r2"}
    assert sorted(store.read("runs").column("status").to_pylist()) == ["ok", "ok"]


def test_rows_of_another_id_are_refused(store):
    with pytest.raises(ValueError, match="would hold rows"):
        store.write_inal("parity", "i1", inal_rows("other"))


def test_four_readers_read_the_datasets(store):
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    fill(store)
    # a writer killed mid-write leaves its temporary in <study>/_tmp, outside every dataset
    Path(store.tmp_dir, "deadbeef.parquet").write_bytes(b"half a file")
    runs_dir = store.dataset_path("runs")
    # pandas
    df = pd.read_parquet(runs_dir)
    assert sorted(df["run_id"]) == ["r1", "r2", "r3"]
    assert dict(zip(df["run_id"], df["target"].astype(str))) == {"r1": "parity", "r2": "parity", "r3": "majority"}
    assert str(df["n"].dtype) == "int64" and str(df["correlation"].dtype) == "float64" and str(df["bias"].dtype) == "bool"
    # pyarrow.dataset
    table = ds.dataset(store.dataset_path("curves"), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3 + 2 + 3
    assert table.schema.field("step").type == pa.int64()
    assert set(table.column("target").to_pylist()) == {"parity", "majority"}
    # DuckDB
    con = duckdb.connect()
    got = con.execute(
        f"select target, count(*), max(layer) from read_parquet('{store.dataset_path('inal')}/**/*.parquet', "
        "hive_partitioning=true) group by target order by target").fetchall()
    assert got == [("majority", 2, 2), ("parity", 3, 3)]
    # polars
    lf = pl.scan_parquet(runs_dir, hive_partitioning=True)
    pdf = lf.select("run_id", "target", "correlation", "n").sort("run_id").collect()
    assert pdf["target"].to_list() == ["parity", "parity", "majority"]
    assert pdf["correlation"][1] == -0.5 and pdf["n"].dtype == pl.Int64


def _rewrite_keeping_footer(path: Path, change) -> None:
    """Rewrite a file with its store footer kept but its columns changed (issue 9's damage)."""
    table = pq.read_table(path)
    meta = table.schema.metadata
    pq.write_table(change(table).replace_schema_metadata(meta), path)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "foreign_parquet", "other_ids",
                                    "n_float", "corr_float32", "dropped_column"])
def test_corrupt_files_are_detected_and_quarantined(store, tmp_path, damage):
    fill(store)
    path = next(Path(store.dataset_path("runs"), "target=parity").glob("pack-*.parquet"))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "other_ids":  # the footer says r1,r2 but the rows are another run's
        _rewrite_keeping_footer(path, lambda t: t.set_column(1, "run_id", pa.array(["r7", "r7"])))
    elif damage == "n_float":
        _rewrite_keeping_footer(path, lambda t: t.set_column(3, "n", t.column("n").cast(pa.float64())))
    elif damage == "corr_float32":
        i = RUNS_SCHEMA.get_field_index("correlation")
        _rewrite_keeping_footer(path, lambda t: t.set_column(i, "correlation", t.column(i).cast(pa.float32())))
    elif damage == "dropped_column":
        _rewrite_keeping_footer(path, lambda t: t.drop_columns(["correlation_se"]))
    else:  # valid Parquet without the store's metadata
        pq.write_table(pa.table({"run_id": ["r1"]}), path)
    assert store.completed_run_ids() == {"r3"}
    assert not path.exists()
    quarantined = list((tmp_path / "results" / "s" / "_quarantine").iterdir())
    assert any(p.name.startswith(f"runs__target=parity__{path.name}") and not p.name.endswith(".txt")
               for p in quarantined)
    reasons = [p.read_text() for p in quarantined if p.name.endswith(".reason.txt")]
    if damage in ("n_float", "corr_float32", "dropped_column"):
        assert "schema" in reasons[0]
    # readers never see it, and the cells can be written again
    assert sorted(store.read("runs").column("run_id").to_pylist()) == ["r3"]
    store.write_runs("parity", [run_row("r1"), run_row("r2")], pack_curves(curves("r1"), curves("r2")))
    assert store.completed_run_ids() == {"r1", "r2", "r3"}


def test_corrupt_curves_make_their_runs_incomplete(store):
    fill(store)
    victim = next(Path(store.dataset_path("curves"), "target=parity").glob("pack-*.parquet"))
    victim.write_bytes(b"PAR1 not really")
    assert store.completed_run_ids() == {"r3"}


def test_corrupt_inal_file_is_quarantined(store):
    fill(store)
    path = Path(store.file_path("inal", "parity", "i1"))
    path.write_bytes(path.read_bytes()[:-10])
    assert not store.has_inal("i1", "parity")
    assert store.completed_inal_ids() == {"i2"}


def test_transient_read_errors_retry_then_stop_without_quarantine(store, monkeypatch):
    """A flaky file system must not cost results: PermissionError is retried, then reported."""
    fill(store)
    monkeypatch.setattr(store_mod, "_RETRY_SLEEP_S", 0.0)
    real_open = type(store.fs).open_input_file
    failures = {"left": 2}

    def flaky(fs, path, *a, **kw):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise PermissionError(13, "Permission denied", path)
        return real_open(fs, path, *a, **kw)

    class Flaky(type(store.fs)):
        open_input_file = flaky

    store.fs = Flaky()
    assert store.completed_run_ids() == {"r1", "r2", "r3"}  # two failures, retried
    failures["left"] = 10**6  # never recovers
    with pytest.raises(StoreReadError, match="after 3 attempts"):
        store.completed_run_ids()
    assert not (Path(store.root) / "_quarantine").exists()  # nothing moved aside
    failures["left"] = 0
    assert store.completed_run_ids() == {"r1", "r2", "r3"}


def test_two_scans_at_once_do_not_race_on_quarantine(tmp_path):
    import threading

    for trial in range(3):
        store = ResultsStore(str(tmp_path / f"t{trial}"), "s")
        fill(store)
        for i in range(6):
            bad = Path(store.dataset_path("inal"), "target=parity", f"bad{i}.parquet")
            bad.write_bytes(b"PAR1 garbage PAR1")
        errors, results = [], []

        def scan():
            try:
                results.append(ResultsStore(store.results_dir, "s").completed_inal_ids())
            except Exception as err:  # noqa: BLE001 - the test reports any
                errors.append(err)

        threads = [threading.Thread(target=scan) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and results == [{"i1", "i2"}] * 2
        assert len(list((Path(store.root) / "_quarantine").glob("*.reason.txt"))) == 6


def test_a_write_that_dies_leaves_no_result(store, monkeypatch):
    """A writer killed mid-file leaves at most a temporary under _tmp, which no scan or reader takes."""
    real_write = pq.write_table

    def dying_write(table, where, **kw):
        real_write(table.slice(0, 0), where, **kw)  # something is on disk under the temp name ...
        raise KeyboardInterrupt("killed mid-write")  # ... when the process dies

    monkeypatch.setattr(pq, "write_table", dying_write)
    with pytest.raises(KeyboardInterrupt):
        store.write_inal("parity", "i1", inal_rows("i1"))
    monkeypatch.setattr(pq, "write_table", real_write)
    assert not Path(store.dataset_path("inal")).exists() or not files(Path(store.dataset_path("inal")))
    assert not list(Path(store.tmp_dir).iterdir())  # the temp file was cleaned up
    # a temp file left by a hard kill (no cleanup) is ignored by scans and readers
    Path(store.tmp_dir, "deadbeef.parquet").write_bytes(b"half a file")
    store.write_inal("parity", "i2", inal_rows("i2"))
    assert store.completed_inal_ids() == {"i2"}
    assert store.read("inal").column("inal_id").unique().to_pylist() == ["i2"]


def test_compaction_keeps_every_cell_once(store):
    import duckdb
    import pandas as pd
    import polars as pl

    ids = [f"r{i:03d}" for i in range(40)]
    for k in range(0, 40, 4):  # ten tasks of four runs
        chunk = ids[k:k + 4]
        store.write_runs("parity", [run_row(r) for r in chunk], pack_curves(*[curves(r) for r in chunk]))
    for i in range(10):
        store.write_inal("parity", f"i{i}", inal_rows(f"i{i}"))
    store.write_runs("parity", [run_row("rf", status="failed")], None)
    before = store.completed_run_ids()
    removed = store.compact(min_files=8)
    assert removed == {"runs": 10, "curves": 10, "inal": 10}
    names = sorted(p.name[:5] for p in Path(store.dataset_path("runs")).rglob("*.parquet"))
    assert names == ["faile", "part-"]  # failed runs stay apart, to be retried
    assert store.completed_run_ids() == before == set(ids)
    runs_dir = store.dataset_path("runs")
    assert sorted(pd.read_parquet(runs_dir)["run_id"]) == sorted(ids + ["rf"])
    assert duckdb.connect().execute(
        f"select count(*), count(distinct run_id) from read_parquet('{store.dataset_path('curves')}/**/*.parquet')"
    ).fetchone() == (120, 40)
    assert pl.scan_parquet(store.dataset_path("inal"), hive_partitioning=True).collect().height == 30


def test_a_compaction_killed_half_way_is_finished_by_the_next_scan(store):
    import pandas as pd

    ids = [f"r{i}" for i in range(8)]
    for r in ids:
        store.write_run("parity", run_row(r), curves(r))
    small = files(Path(store.dataset_path("runs")))
    local = type(store.fs)
    calls = {"n": 0}

    class Killed(Exception):
        pass

    class DiesMidCompaction(local):
        def delete_file(self, path):  # the process dies after three of the small files are gone
            calls["n"] += 1
            if calls["n"] > 3:
                raise Killed()
            local.delete_file(self, path)

    store.fs = DiesMidCompaction()
    with pytest.raises(Killed):
        store.compact(min_files=2)
    store.fs = local()
    assert len(pd.read_parquet(store.dataset_path("runs"))) > 8  # a reader now sees duplicates
    assert ResultsStore(store.results_dir, "s").completed_run_ids() == set(ids)  # ... which a scan removes
    assert sorted(pd.read_parquet(store.dataset_path("runs"))["run_id"]) == ids
    assert len(small) == 8


def _old_store_module(tmp_path):
    """The writer of the previous layout, from git history (one file per run, schema version 1)."""
    import importlib.util
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    text = subprocess.run(["git", "show", "0767b9c:sweeps/store.py"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout
    path = tmp_path / "old_store.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("old_store", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_studies_of_the_previous_layout_are_migrated(tmp_path, capsys):
    import pandas as pd

    old = _old_store_module(tmp_path)
    store = old.ResultsStore(str(tmp_path / "results"), "s")

    def old_row(run_id, status="ok", corr=0.5):
        row = {}
        for f in old.RUNS_SCHEMA:
            row[f.name] = datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type) \
                else _DUMMY[f.type]
        row.update(study="s", run_id=run_id, status=status, corr=corr, T=7)
        return row

    def old_curves(run_id):
        return {"study": ["s"] * 2, "run_id": [run_id] * 2, "step": [0, 7], "corr": [0.0, 0.5],
                "corr_se": [0.1, 0.1], "acc": [0.5] * 2, "loss": [1.0] * 2, "param_norm": [1.0] * 2}

    for i in range(5):
        store.write_run("parity", old_row(f"r{i}", corr=0.1 * i), old_curves(f"r{i}"))
    store.write_run("parity", old_row("rf", status="failed"), None)
    rows = {}
    for f in old.INAL_SCHEMA:
        rows[f.name] = [datetime(2026, 1, 1, tzinfo=timezone.utc) if pa.types.is_timestamp(f.type)
                        else _DUMMY[f.type]] * 2
    rows.update(study=["s"] * 2, inal_id=["i1"] * 2, layer=[1, 2])
    store.write_inal("parity", "i1", rows)
    root = str(tmp_path / "results" / "s")
    new = ResultsStore(str(tmp_path / "results"), "s")
    with pytest.raises(LegacyLayoutError, match="python -m sweeps.store migrate"):
        new.completed_run_ids()
    assert not (tmp_path / "results" / "s" / "_quarantine").exists()  # refused, not quarantined
    assert store_mod.main(["migrate", root]) == 0
    assert new.completed_run_ids() == {f"r{i}" for i in range(5)}
    assert new.completed_inal_ids() == {"i1"}
    runs = pd.read_parquet(new.dataset_path("runs")).set_index("run_id")
    assert sorted(runs.index) == ["r0", "r1", "r2", "r3", "r4", "rf"]
    assert runs.loc["r3", "correlation"] == pytest.approx(0.3) and runs.loc["r3", "n_steps"] == 7
    curves_df = pd.read_parquet(new.dataset_path("curves"))
    assert len(curves_df) == 10 and "correlation" in curves_df.columns
    assert store_mod.main(["migrate", root]) == 0  # idempotent
    assert len(pd.read_parquet(new.dataset_path("runs"))) == 6


def test_file_uri(tmp_path):
    store = ResultsStore((tmp_path / "r").as_uri(), "s")  # file:///...
    assert store.fs.type_name == "local" and store.dataset_uri("runs") == str(tmp_path / "r" / "s" / "runs")
    fill(store)
    assert len(files(tmp_path / "r" / "s" / "runs")) == 2
    assert store.completed_run_ids() == {"r1", "r2", "r3"}
    assert sorted(store.read("runs").column("run_id").to_pylist()) == ["r1", "r2", "r3"]


def test_study_deleted_while_the_store_lives(store, tmp_path):
    import shutil

    fill(store)
    shutil.rmtree(tmp_path / "results")
    store.write_run("parity", run_row("r9"), curves("r9"))  # directories are made again
    assert store.completed_run_ids() == {"r9"}


def _two_writers(store: ResultsStore) -> list:
    """What two drivers on overlapping grids leave: writer A packs r00-r03, r04-r07; writer B packs
    r04-r09, r10-r11 (each pack file its own name); each writer marks its rows (``host``) and its
    curves (``loss``), so a test can tell which copy a file kept."""
    ids = [f"r{i:02d}" for i in range(12)]
    for who, loss, packs in (("A", 1.0, [ids[0:4], ids[4:8]]), ("B", 2.0, [ids[4:10], ids[10:12]])):
        for pack in packs:
            cs = [dict(curves(r), loss=[loss] * 3) for r in pack]
            store.write_runs("parity", [run_row(r, host=who) for r in pack], pack_curves(*cs))
    return ids


def _counts_by_every_reader(dataset_dir: str, key: str) -> dict:
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    frame = pd.read_parquet(dataset_dir)
    arrow = ds.dataset(dataset_dir, format="parquet", partitioning="hive").to_table()
    duck = duckdb.connect().execute(f"select count(*) from read_parquet('{dataset_dir}/**/*.parquet')").fetchone()[0]
    polars = pl.scan_parquet(dataset_dir, hive_partitioning=True).collect().height
    assert not frame.duplicated([key] if key == "run_id" else ["run_id", "step"]).any()
    return {"pandas": len(frame), "pyarrow": arrow.num_rows, "duckdb": duck, "polars": polars}


def test_cells_two_drivers_both_wrote_are_once_in_the_files_after_compact(store):
    ids = _two_writers(store)
    assert store.completed_run_ids() == set(ids) and store.maintenance_due  # 16 rows on disk for 12 cells
    store.compact()  # whatever min_files: cells held twice are merged
    assert not store.maintenance_due
    runs_dir, curves_dir = store.dataset_path("runs"), store.dataset_path("curves")
    assert set(_counts_by_every_reader(runs_dir, "run_id").values()) == {12}
    assert set(_counts_by_every_reader(curves_dir, "step").values()) == {12 * 3}
    import pandas as pd

    runs, cur = pd.read_parquet(runs_dir), pd.read_parquet(curves_dir)
    # each run's curves come from the same writer as its row (1.0 for A's copy, 2.0 for B's)
    marks = cur.groupby("run_id")["loss"].agg(set).to_dict()
    assert all(marks[r] == {1.0 if h == "A" else 2.0} for r, h in zip(runs.run_id, runs.host))
    assert not (Path(store.root) / "_quarantine").exists()
    assert ResultsStore(store.results_dir, "s").completed_run_ids() == set(ids)
    assert store.compact() == {"runs": 0, "curves": 0, "inal": 0}  # converged: nothing more to do


def test_orphan_curves_of_a_killed_compaction_are_removed_by_the_next(store, monkeypatch):
    """A compaction killed after deleting the small runs files, before their curves files, leaves
    curves files without runs files (raw curves rows > cells x checkpoints); the next compaction
    removes them, keeps an orphan that a writer may still be completing, and removes one older
    than an hour (a writer that died)."""
    ids = [f"r{i}" for i in range(8)]
    for r in ids:
        store.write_run("parity", run_row(r), curves(r))

    class Killed(BaseException):
        pass

    real_delete = ResultsStore._delete

    def dies_at_the_first_curves_delete(self, path):
        if "/curves/" in path:
            raise Killed()
        return real_delete(self, path)

    monkeypatch.setattr(ResultsStore, "_delete", dies_at_the_first_curves_delete)
    with pytest.raises(Killed):
        store.compact(min_files=2)
    monkeypatch.setattr(ResultsStore, "_delete", real_delete)
    curves_dir = Path(store.dataset_path("curves"))
    assert len(files(curves_dir)) == 9  # the compacted file and 8 orphans: 48 rows for 24
    store.write_inal("parity", "i1", inal_rows("i1"))
    fresh = ResultsStore(store.results_dir, "s")
    in_flight = fresh._write("curves", "parity", "pack-inflight", curves("r9"))  # its runs file comes next
    dead = fresh._write("curves", "parity", "pack-dead", curves("r10"))
    os.utime(dead, (1e9, 1e9))
    assert fresh.completed_run_ids() == set(ids) and fresh.maintenance_due
    fresh.compact()
    assert sorted(p.name for p in files(curves_dir)) == sorted([Path(in_flight).name] + [
        p.name for p in files(Path(store.dataset_path("runs")))])
    import pandas as pd

    assert len(pd.read_parquet(store.dataset_path("curves")).query("run_id in @ids")) == 8 * 3
    assert not (Path(store.root) / "_quarantine").exists()


def test_a_lease_left_by_a_dead_process_is_taken_over(store):
    import subprocess
    import sys

    fill(store)
    lease = Path(store.root, "_lease", "maintenance")
    lease.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lease.write_text(f"{__import__('socket').gethostname()} pid {dead.pid} at 0")
    with store.maintenance_lease(wait=False) as held:
        assert not held  # the first look removes the dead holder's lease ...
    with store.maintenance_lease(wait=False) as held:
        assert held and lease.read_text().split()[2] == str(os.getpid())  # ... the next takes it
        with ResultsStore(store.results_dir, "s").maintenance_lease(wait=False) as other:
            assert not other  # held by a live process: nobody else
    assert not lease.exists()
