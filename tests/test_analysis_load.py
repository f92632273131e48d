"""Loading studies: filters, missing datasets, several studies, hidden files, and the four readers."""

import os

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from analysis.load import find_study_dirs, load_curves, load_inal, load_runs, load_study
from analysis.synthetic import SyntheticTarget, synthetic_tables, write_synthetic_study

TARGETS = [SyntheticTarget("parity", c=2, inal_exponent=2.0, r_slope=-0.5),
           SyntheticTarget("majority", c=1, inal_exponent=1.0, r_slope=-0.2)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    write_synthetic_study(root, "train", TARGETS, n_values=(8, 12, 16), seeds=range(3), rng_seed=0)
    write_synthetic_study(root, "inal_only", TARGETS, n_values=(8, 12, 16, 20), T=0, rng_seed=1)
    return root


def test_study_dir_and_results_root(results):
    assert find_study_dirs(results / "train") == [str(results / "train")]
    assert find_study_dirs(results) == [str(results / "inal_only"), str(results / "train")]
    with pytest.raises(FileNotFoundError, match="no study"):
        find_study_dirs(results / "train" / "runs" / "target=parity")


def test_target_comes_from_the_partition_path(results):
    runs = load_runs(results / "train")
    assert len(runs) == 2 * 3 * 3
    assert sorted(runs["target"].unique()) == ["majority", "parity"]
    # the files themselves do not hold the column (hive partitioning only)
    one = next((results / "train" / "runs" / "target=parity").glob("*.parquet"))
    assert "target" not in pd.read_parquet(one).columns


def test_filters_scalars_and_lists(results):
    runs = load_runs(results / "train", target="parity", n=[8, 12])
    assert set(runs["target"]) == {"parity"} and set(runs["n"]) == {8, 12} and len(runs) == 6
    inal = load_inal(results, study="inal_only", is_max=True)
    assert len(inal) == 2 * 4 and inal["is_max"].all()
    assert len(load_inal(results, c=2)) == 3 * 3 + 4 * 3  # 3 layers per setting, both studies


def test_file_uri_paths(results):
    uri = f"file://{results}"
    assert len(load_runs(uri)) == len(load_runs(results)) and len(load_inal(uri, n=8)) > 0


def test_unknown_filter_column_names_it(results):
    with pytest.raises(ValueError, match="widht"):
        load_runs(results / "train", widht=8)


def test_missing_dataset_is_an_empty_frame_with_the_columns(results):
    runs = load_runs(results / "inal_only")
    assert len(runs) == 0 and {"correlation", "n", "target", "status"} <= set(runs.columns)
    study = load_study(results / "inal_only")
    assert not study.has_training and study.has_inal and len(study.curves) == 0


def test_load_study_filters_curves_through_runs(results):
    study = load_study(results / "train", n=12)
    assert set(study.runs["n"]) == {12} and set(study.inal["n"]) == {12}
    assert set(study.curves["run_id"]) == set(study.runs["run_id"]) and len(study.curves) > 0


def test_hidden_and_temporary_files_are_ignored(results, tmp_path):
    study = write_synthetic_study(tmp_path, "s", TARGETS[:1], n_values=(8, 12, 16), seeds=range(2))
    part = os.path.join(study, "runs", "target=parity")
    with open(os.path.join(part, ".abc.parquet.tmp-123"), "wb") as fh:   # a writer's half file
        fh.write(b"PAR1 half written")
    with open(os.path.join(part, "notes.txt"), "w") as fh:
        fh.write("not data")
    os.makedirs(os.path.join(study, "_quarantine"))
    assert len(load_runs(study)) == 6


def test_curves_have_one_row_per_checkpoint(results):
    curves = load_curves(results / "train")
    runs = load_runs(results / "train")
    assert set(curves["run_id"]) == set(runs["run_id"])
    assert curves.groupby("run_id").size().eq(5).all()


def _four_readers(dataset_dir):
    """Row counts and the target column as read by pandas, pyarrow.dataset, DuckDB and polars."""
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    path = str(dataset_dir)
    out = {"pandas": pd.read_parquet(path),
           "pyarrow": ds.dataset(path, format="parquet", partitioning="hive").to_table().to_pandas()}
    con = duckdb.connect()
    out["duckdb"] = con.execute(
        f"SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning=true)").df()
    out["polars"] = pl.scan_parquet(path, hive_partitioning=True).collect().to_pandas()
    return out


def test_four_readers_read_a_synthetic_store(results):
    frames = _four_readers(results / "train" / "runs")
    ref = load_runs(results / "train").sort_values("run_id").reset_index(drop=True)
    for name, frame in frames.items():
        frame = frame.sort_values("run_id").reset_index(drop=True)
        assert len(frame) == len(ref), name
        assert list(frame["target"].astype(str)) == list(ref["target"].astype(str)), name
        np.testing.assert_allclose(frame["correlation"].to_numpy(float), ref["correlation"].to_numpy(float), err_msg=name)


def test_four_readers_and_loader_read_the_real_store(tmp_path):
    """Rows written by sweeps.store.ResultsStore (B1's writer) load the same way."""
    store_mod = pytest.importorskip("sweeps.store")
    tables = synthetic_tables("real", TARGETS, _settings(), np.random.default_rng(0))
    store = store_mod.ResultsStore(str(tmp_path), "real")
    for target, run_id, cols in tables["runs"]:
        row = {f.name: _value(cols, f.name, f.type) for f in store_mod.RUNS_SCHEMA}
        curves = [c for t, rid, c in tables["curves"] if rid == run_id][0]
        store.write_run(target, row, {f.name: curves[f.name] for f in store_mod.CURVES_SCHEMA})
    for target, inal_id, cols in tables["inal"]:
        k = len(cols["layer"])
        store.write_inal(target, inal_id, {f.name: cols[f.name] if f.name in cols else [_value({}, f.name, f.type)] * k
                                           for f in store_mod.INAL_SCHEMA})
    assert len(store.completed_run_ids()) == len(tables["runs"])
    study = load_study(tmp_path / "real")
    assert len(study.runs) == len(tables["runs"]) and len(study.inal) == sum(len(c["layer"]) for _, _, c in tables["inal"])
    assert set(study.runs["target"]) == {"parity", "majority"}
    for kind in ("runs", "curves", "inal"):
        for name, frame in _four_readers(tmp_path / "real" / kind).items():
            assert len(frame) == len(getattr(study, kind)), (kind, name)
            assert set(frame["target"].astype(str)) == {"parity", "majority"}, (kind, name)


def _settings():
    from analysis.synthetic import _Settings
    return _Settings(n_values=(8, 12), seeds=(0, 1), width=8, depth=1, T=10, gamma=0.1, sigma=0.01, A=1.0,
                     N_spec="n^2", init="normal", inal_rel_se=0.05, inal_floor_se=0.0, n_inits=100,
                     corr_seed_scatter=0.1, corr_eval_se=1e-3, n_checkpoints=3)


def _value(cols, name, typ):
    """The synthetic value of a column, or a typed placeholder for columns the synthetic rows lack."""
    import datetime

    import pyarrow as pa
    if name in cols:
        return cols[name][0]
    if pa.types.is_timestamp(typ):
        return datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    if pa.types.is_integer(typ):
        return 0
    if pa.types.is_floating(typ):
        return 0.0
    if pa.types.is_boolean(typ):
        return False
    return ""
