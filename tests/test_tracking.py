"""Tracking: every cell of a real small study in a real MLflow file store (``+tracking=mlflow``).

References: the study's own Parquet files read back with pandas (independent of the callback's
reader), and the grid's arithmetic for the number of runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")

from conftest import TINY, multirun  # noqa: E402


@pytest.mark.ray
def test_mlflow_file_store_holds_every_run_with_params_metrics_and_curve(ray_address: str, tmp_path: Path,
                                                                          hydra_restore_singletons) -> None:
    from mlflow.tracking import MlflowClient

    store_uri = (tmp_path / "mlruns").as_uri()
    results = tmp_path / "results"
    grid = ["n=4,5", "c=1", "train.seed=0,1", *TINY, "+tracking=mlflow",
            f"hydra.callbacks.mlflow.tracking_uri={store_uri}"]
    multirun(grid, results)
    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name("default")  # the study's name
    logged = client.search_runs([experiment.experiment_id], max_results=100)
    runs = pd.read_parquet(results / "default" / "runs").set_index("run_id")
    curves = pd.read_parquet(results / "default" / "curves")
    assert len(logged) == len(runs) == 4
    assert sorted(r.data.tags["inal.run_id"] for r in logged) == sorted(runs.index)
    for run in logged:
        row = runs.loc[run.data.tags["inal.run_id"]]
        assert run.data.params["n"] == str(row.n) and run.data.params["train.seed"] == str(row.seed)
        assert run.data.params["width"] == "8" and run.info.status == "FINISHED"
        assert run.data.metrics["correlation"] == pytest.approx(row.correlation)
        assert run.data.metrics["acc"] == pytest.approx(row.acc)
        history = client.get_metric_history(run.info.run_id, "curve.correlation")
        expected = curves[curves.run_id == row.name].sort_values("step")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(expected.step)
        assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(list(expected.correlation))

    # a rerun (every cell skipped) logs nothing twice
    multirun(grid, results)
    assert len(client.search_runs([experiment.experiment_id], max_results=100)) == 4
