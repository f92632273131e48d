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


# ------------------------------------------------------------------ bounded memory at scale


def test_column_projection_reads_only_the_named_columns(results):
    runs = load_runs(results / "train", columns=["n", "correlation"], target="parity")
    assert list(runs.columns) == ["n", "correlation", "run_id"]  # the id column comes along
    assert len(runs) == 3 * 3
    full = load_runs(results / "train", target="parity").set_index("run_id").sort_index()
    got = runs.set_index("run_id").sort_index()
    np.testing.assert_array_equal(got["correlation"].to_numpy(), full["correlation"].to_numpy())
    with pytest.raises(ValueError, match="widht"):
        load_runs(results / "train", columns=["widht"])


def test_curves_are_read_on_first_access(results, monkeypatch):
    import analysis.load as load_mod

    calls = []
    real = load_mod.load_curves
    monkeypatch.setattr(load_mod, "load_curves", lambda *a, **k: calls.append(1) or real(*a, **k))
    study = load_study(results / "train", n=12, columns={"runs": ["run_id", "n", "correlation"]})
    assert calls == [] and not study.curves_loaded
    assert set(study.curves["run_id"]) == set(study.runs["run_id"]) and len(study.curves) > 0
    assert calls == [1] and study.curves_loaded
    study.curves  # noqa: B018 - read once only
    assert calls == [1]


def test_a_cell_seen_twice_is_loaded_once(tmp_path):
    """During a compaction (or a retry of a failed run) a reader can list a cell twice."""
    import shutil

    study = write_synthetic_study(tmp_path, "s", TARGETS[:1], n_values=(8,), seeds=range(2), rng_seed=0)
    part = os.path.join(study, "runs", "target=parity")
    first = sorted(os.listdir(part))[0]
    shutil.copy(os.path.join(part, first), os.path.join(part, "part-copy.parquet"))
    runs = load_runs(study)
    assert len(runs) == 2 and runs["run_id"].is_unique


def test_a_study_of_the_previous_layout_loads(tmp_path):
    """Files written by the store before 02909a3 (columns corr, corr_se, T) load with today's names."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    code = subprocess.run(["git", "show", "0767b9c:sweeps/store.py"], cwd=repo, capture_output=True, text=True,
                          check=True).stdout
    (tmp_path / "old_store.py").write_text(code)
    sys.path.insert(0, str(tmp_path))
    try:
        import old_store
    finally:
        sys.path.remove(str(tmp_path))
    store = old_store.ResultsStore(str(tmp_path / "res"), "old")
    for i in range(3):
        row = {f.name: _value({}, f.name, f.type) for f in old_store.RUNS_SCHEMA}
        row.update(study="old", run_id=f"r{i}", status="ok", corr=0.1 * i, corr_se=0.01, T=5, n=8)
        store.write_run("parity", row, {"study": ["old"] * 2, "run_id": [f"r{i}"] * 2, "step": [0, 5],
                                        "corr": [0.0, 0.1 * i], "corr_se": [0.01] * 2, "acc": [0.5] * 2,
                                        "loss": [1.0] * 2, "param_norm": [1.0] * 2})
    study = load_study(tmp_path / "res" / "old")
    runs = study.runs.set_index("run_id").sort_index()
    np.testing.assert_allclose(runs["correlation"].to_numpy(), [0.0, 0.1, 0.2])
    assert set(runs["n_steps"]) == {5} and "corr" not in runs.columns and "T" not in runs.columns
    assert len(study.curves) == 6 and "correlation" in study.curves.columns


@pytest.mark.parametrize("layer", ["selected", "max", 1])
def test_runs_with_inal_is_one_row_per_run_without_suffixed_columns(results, layer):
    study = load_study(results / "train")
    joined = study.runs_with_inal(layer)
    assert len(joined) == len(study.runs) and list(joined.columns[: len(study.runs.columns)]) == list(study.runs.columns)
    assert not [c for c in joined.columns if c.endswith(("_x", "_y"))]
    # the reference: for each run, look its setting up by hand in the inal frame
    inal = study.inal
    for _, run in joined.iterrows():
        rows = inal[inal["inal_id"] == run["inal_id"]]
        if layer == "selected":
            want = rows["selected_inal"].iloc[0]
        elif layer == "max":
            want = rows.loc[rows["is_max"].astype(bool), "inal"].iloc[0]
        else:
            want = rows.loc[rows["layer"] == layer, "inal"].iloc[0]
        assert run["inal"] == pytest.approx(want, rel=0, abs=0)
    assert (joined["inal_layer"] == str(layer)).all()
    assert joined.correlation.notna().all()  # attribute access works: no column shadows a DataFrame attribute


def test_no_stored_column_shadows_a_dataframe_attribute():
    from sweeps.columns import columns_of

    attributes = set(dir(pd.DataFrame))
    for kind in ("runs", "curves", "inal"):
        assert not [c for c in (*columns_of(kind), "target") if c in attributes], kind
