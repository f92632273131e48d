"""Results to an experiment tracker: a Hydra callback per cell, MLflow built in (optional extra).

Hydra users hook into jobs with ``hydra.callbacks``; the ``inal_ray`` launcher calls
``on_job_end`` for every job of a study (on its fast path too, once the batch is done), with the
job's config and a ``JobReturn`` whose ``return_value`` names the cell (``run_id``, ``inal_id``,
``status``, ``results``). :class:`MLflowCallback` logs each cell as one MLflow run:

- params: every setting of the cell (the job's config, flattened: ``n``, ``train.seed``, ...);
- metrics: the run's final ``correlation``, ``correlation_se``, ``acc``, ``final_loss``,
  ``param_norm`` (INAL-only cells: the INAL of the selected layer) and its curve, the same
  columns of ``curves`` as metric histories by step;
- tags: ``inal.run_id``, ``inal.inal_id``, ``inal.status``, ``inal.results``.

A cell already logged (same ``inal.run_id`` tag in the experiment) is not logged twice, so a rerun
(every cell ``skipped``) adds nothing, and a study tracked late is filled in by a rerun.

    pip install -e ".[mlflow]"
    inal-sweep -m n=6,8 +tracking=mlflow                      # ./mlruns, experiment = study
    inal-sweep -m n=6,8 +tracking=mlflow hydra.callbacks.mlflow.tracking_uri=file:///data/mlruns
    mlflow ui --backend-store-uri ./mlruns

Any other tracker: a class with ``on_job_end(self, config, job_return, **kwargs)`` named by
``+hydra.callbacks.<name>._target_=my_module.MyCallback``; :func:`cell_results` reads a cell's rows.
"""

from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Mapping, Optional, Tuple

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

__all__ = ["cell_results", "MLflowCallback", "RUN_METRICS", "CURVE_METRICS"]

#: Columns of ``runs`` logged as final metrics, and of ``curves`` logged as histories by step.
RUN_METRICS = ("correlation", "correlation_se", "acc", "final_loss", "param_norm")
CURVE_METRICS = ("correlation", "correlation_se", "acc", "loss", "param_norm")


class _StudyReader:
    """The rows of the studies seen so far, read once per study and again when a cell is missing."""

    def __init__(self) -> None:
        self._tables: Dict[Tuple[str, str, str], Any] = {}

    def rows(self, results_dir: str, study: str, kind: str, key: str, value: str) -> List[Dict[str, Any]]:
        import pyarrow.compute as pc

        from .store import ResultsStore

        cache_key = (results_dir, study, kind)
        for attempt in range(2):
            table = self._tables.get(cache_key)
            if table is None or attempt == 1:
                table = self._tables[cache_key] = ResultsStore(results_dir, study).read(kind)
            if table.num_rows:
                found = table.filter(pc.equal(table[key], value))
                if found.num_rows:
                    return found.to_pylist()
        return []


_READER = _StudyReader()


def cell_results(config: DictConfig, result: Mapping[str, Any]) -> Dict[str, List[Dict[str, Any]]]:
    """The stored rows of one cell: ``{"runs": [...], "curves": [...], "inal": [...]}`` (dicts)."""
    results_dir, study = str(config.results_dir), str(config.study)
    return {
        "runs": _READER.rows(results_dir, study, "runs", "run_id", result["run_id"]),
        "curves": sorted(_READER.rows(results_dir, study, "curves", "run_id", result["run_id"]),
                         key=lambda r: r["step"]),
        "inal": _READER.rows(results_dir, study, "inal", "inal_id", result["inal_id"]),
    }


def _flat_params(config: DictConfig) -> Dict[str, str]:
    container = OmegaConf.to_container(config, resolve=True)
    flat: Dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = str(value)

    walk("", {k: v for k, v in container.items() if k != "hydra"})  # type: ignore[union-attr]
    return flat


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class MLflowCallback(Callback):
    """Log every cell of a study as an MLflow run (see the module docstring).

    Parameters
    ----------
    tracking_uri
        MLflow tracking URI; ``None``: ``$MLFLOW_TRACKING_URI``, else ``file:./mlruns`` (a local
        file store: no server, no database). MLflow 3 keeps its file store in maintenance mode and
        refuses it unless ``MLFLOW_ALLOW_FILE_STORE=true``; for a ``file:`` URI this callback sets
        that (unless set otherwise). ``sqlite:///mlflow.db`` or an ``http(s)://`` server are
        MLflow's recommended backends and are used as given.
    experiment
        Experiment name; ``None``: the study's name.
    log_curves
        Also log the curve (metric history by step).
    """

    def __init__(self, tracking_uri: Optional[str] = None, experiment: Optional[str] = None,
                 log_curves: bool = True) -> None:
        try:
            import mlflow  # noqa: F401
        except ImportError as err:  # one clear line, before any job runs
            raise ImportError("the mlflow callback needs MLflow: pip install 'inal-sweeps[mlflow]' "
                              "(or mlflow-skinny)") from err
        import os

        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "file:./mlruns"
        if self.tracking_uri.startswith("file:") or "://" not in self.tracking_uri:
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store, asked for
        self.experiment = experiment
        self.log_curves = bool(log_curves)
        self._client: Any = None
        self._experiment_ids: Dict[str, str] = {}

    def _client_and_experiment(self, name: str) -> Tuple[Any, str]:
        from mlflow.tracking import MlflowClient

        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        if name not in self._experiment_ids:
            found = self._client.get_experiment_by_name(name)
            self._experiment_ids[name] = found.experiment_id if found else self._client.create_experiment(name)
        return self._client, self._experiment_ids[name]

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        from mlflow.entities import Metric, Param, RunTag

        result = job_return.return_value if job_return.status.name == "COMPLETED" else None
        if not isinstance(result, Mapping) or "run_id" not in result:
            return  # not a cell of inal-sweep (or the job itself failed): nothing to log
        client, experiment_id = self._client_and_experiment(self.experiment or str(config.study))
        logged = client.search_runs([experiment_id], filter_string=f"tags.`inal.run_id` = '{result['run_id']}'",
                                    max_results=1)
        if logged:
            return
        rows = cell_results(config, result)
        status = rows["runs"][0]["status"] if rows["runs"] else str(result["status"])
        tags = {"inal.run_id": result["run_id"], "inal.inal_id": result["inal_id"], "inal.status": status,
                "inal.results": str(result["results"]), "mlflow.runName": f"{config.target.name} n={config.n} "
                f"c={config.c} seed={config.train.seed}"}
        now = int(time.time() * 1000)
        metrics: List[Any] = []
        if rows["runs"]:
            run = rows["runs"][0]
            metrics += [Metric(k, float(run[k]), now, 0) for k in RUN_METRICS if _finite(run.get(k))]
        for row in rows["inal"]:
            if row.get("is_max") and _finite(row.get("inal")):
                metrics.append(Metric("inal", float(row["inal"]), now, 0))
        if self.log_curves:
            metrics += [Metric(f"curve.{k}", float(r[k]), now, int(r["step"]))
                        for r in rows["curves"] for k in CURVE_METRICS if _finite(r.get(k))]
        run_info = client.create_run(experiment_id, tags=tags)
        params = [Param(k, v[:6000]) for k, v in _flat_params(config).items()]
        run_id = run_info.info.run_id
        for i in range(0, max(len(params), len(metrics), 1), 100):  # MLflow's batch limits
            client.log_batch(run_id, metrics=metrics[i:i + 100], params=params[i:i + 100],
                             tags=[RunTag(k, v) for k, v in tags.items()] if i == 0 else [])
        client.set_terminated(run_id, status="FAILED" if status == "failed" else "FINISHED")
