"""The Parquet results store: layout, types, atomic writes, corrupt-file detection, four readers.

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

from sweeps.store import INAL_SCHEMA, RUNS_SCHEMA, SCHEMA_VERSION, ResultsStore

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


def fill(store: ResultsStore) -> None:
    store.write_run("parity", run_row("r1"), curves("r1"))
    store.write_run("parity", run_row("r2", correlation=-0.5), curves("r2", steps=(0, 10)))
    store.write_run("majority", run_row("r3", status="diverged", correlation=math.nan), curves("r3"))
    store.write_inal("parity", "i1", inal_rows("i1"))
    store.write_inal("majority", "i2", inal_rows("i2", depth=1))


def test_layout_metadata_and_completion(store, tmp_path):
    fill(store)
    root = tmp_path / "results" / "s"
    assert (root / "runs" / "target=parity" / "r1.parquet").is_file()
    assert (root / "curves" / "target=majority" / "r3.parquet").is_file()
    assert (root / "inal" / "target=parity" / "i1.parquet").is_file()
    assert not [p for p in root.rglob("*") if p.name.startswith(".")]  # no temp files left
    md = pq.read_metadata(root / "runs" / "target=parity" / "r1.parquet").metadata
    assert md[b"inal.schema_version"] == SCHEMA_VERSION.encode()
    schema = pq.read_schema(root / "runs" / "target=parity" / "r1.parquet")
    assert "target" not in schema.names  # only in the path
    assert store.completed_run_ids() == {"r1", "r2", "r3"}  # diverged is a result
    assert store.completed_inal_ids() == {"i1", "i2"}
    assert store.has_run("r1", "parity") and not store.has_run("r1", "majority")
    assert store.has_inal("i2", "majority")


def test_failed_runs_are_retried_and_overwritten(store):
    store.write_run("parity", run_row("r1", status="failed", error="boom"), None)
    assert store.completed_run_ids() == set()
    store.write_run("parity", run_row("r1"), curves("r1"))
    assert store.completed_run_ids() == {"r1"}
    assert store.read("runs").num_rows == 1


def test_rows_of_another_id_are_refused(store):
    with pytest.raises(ValueError, match="would hold rows"):
        store.write_inal("parity", "i1", inal_rows("other"))


def test_four_readers_read_the_datasets(store):
    import duckdb
    import pandas as pd
    import polars as pl
    import pyarrow.dataset as ds

    fill(store)
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


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_name", "foreign_parquet"])
def test_corrupt_files_are_detected_and_quarantined(store, tmp_path, damage):
    fill(store)
    path = Path(store.file_path("runs", "parity", "r1"))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "wrong_name":  # a sound file under another job's name
        path.write_bytes(Path(store.file_path("runs", "parity", "r2")).read_bytes())
    else:  # valid Parquet without the store's metadata
        pq.write_table(pa.table({"run_id": ["r1"]}), path)
    assert store.completed_run_ids() == {"r2", "r3"}
    assert not path.exists()
    quarantined = list((tmp_path / "results" / "s" / "_quarantine").iterdir())
    assert any(p.name.startswith("runs__target=parity__r1.parquet") and not p.name.endswith(".txt")
               for p in quarantined)
    assert any(p.name.endswith(".reason.txt") for p in quarantined)
    # readers never see it, and the cell can be written again
    assert sorted(store.read("runs").column("run_id").to_pylist()) == ["r2", "r3"]
    store.write_run("parity", run_row("r1"), curves("r1"))
    assert store.completed_run_ids() == {"r1", "r2", "r3"}


def test_corrupt_curves_make_the_run_incomplete(store):
    fill(store)
    Path(store.file_path("curves", "parity", "r2")).write_bytes(b"PAR1 not really")
    assert store.completed_run_ids() == {"r1", "r3"}
    assert not store.has_run("r2", "parity")


def test_corrupt_inal_file_is_quarantined(store):
    fill(store)
    path = Path(store.file_path("inal", "parity", "i1"))
    path.write_bytes(path.read_bytes()[:-10])
    assert not store.has_inal("i1", "parity")
    assert store.completed_inal_ids() == {"i2"}


def test_a_write_that_dies_leaves_no_result(store, monkeypatch):
    """A writer killed mid-file leaves only a hidden temp file, which no reader or scan takes for a result."""
    real_write = pq.write_table

    def dying_write(table, where, **kw):
        real_write(table.slice(0, 0), where, **kw)  # something is on disk under the temp name ...
        raise KeyboardInterrupt("killed mid-write")  # ... when the process dies

    monkeypatch.setattr(pq, "write_table", dying_write)
    with pytest.raises(KeyboardInterrupt):
        store.write_inal("parity", "i1", inal_rows("i1"))
    monkeypatch.setattr(pq, "write_table", real_write)
    directory = Path(store.dataset_path("inal")) / "target=parity"
    assert not (directory / "i1.parquet").exists()
    assert not list(directory.iterdir())  # the temp file was cleaned up
    # a temp file left by a hard kill (no cleanup) is ignored by scans and readers
    (directory / ".i9.parquet.tmp-deadbeef").write_bytes(b"half a file")
    store.write_inal("parity", "i2", inal_rows("i2"))
    assert store.completed_inal_ids() == {"i2"}
    assert store.read("inal").column("inal_id").unique().to_pylist() == ["i2"]


def test_file_uri(tmp_path):
    store = ResultsStore((tmp_path / "r").as_uri(), "s")  # file:///...
    assert store.fs.type_name == "local" and store.dataset_uri("runs") == str(tmp_path / "r" / "s" / "runs")
    fill(store)
    assert (tmp_path / "r" / "s" / "runs" / "target=parity" / "r1.parquet").is_file()
    assert store.completed_run_ids() == {"r1", "r2", "r3"}
    assert sorted(store.read("runs").column("run_id").to_pylist()) == ["r1", "r2", "r3"]


def test_study_deleted_while_the_store_lives(store, tmp_path):
    import shutil

    fill(store)
    shutil.rmtree(tmp_path / "results")
    store.write_run("parity", run_row("r9"), curves("r9"))  # directories are made again
    assert store.completed_run_ids() == {"r9"}
