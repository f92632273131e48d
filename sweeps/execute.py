"""The job -> engine adapter: turn validated jobs into ``inal_core`` calls and store rows.

- ``plan_packs``: group jobs by ``pack_key`` (they differ only in seed, gamma, sigma) into
  packs of at most ``max_pack``; each pack is trained as ONE stack of R networks.
- ``run_inal_job``: INAL once per ``inal_id`` (skipped when its file is already sound),
  ``inal_core.estimate_inal`` on the target on ``n`` bits, one row per layer.
- ``run_training_pack``: ``inal_core.train_noisy_gd`` on the extension ``fbar`` on ``N`` bits,
  each run with its own gamma, sigma and seed (the seed from its identity, so run alone ==
  run packed); ``E`` and the bound prefactor ``gamma T sqrt(E A) / sigma`` from ``inal_core.bound``.
  An exception becomes ``failed`` rows carrying the error text; non-finite runs are ``diverged``
  rows. The other jobs of a study go on either way.

Imports no Ray: the launcher (``hydra_plugins/inal_ray_launcher``) calls these inside its tasks,
and ``sweeps.run.task`` calls them in-process.
"""

from __future__ import annotations

import functools
import math
import socket
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
import torch

import inal_core
from inal_core.bound import bound_prefactor
from inal_core.inal_summary import BOOTSTRAP_LEVEL, UPPER_TAIL, bootstrap_t_interval, selection_free_max
from inal_core.rng import derive_seed
from inal_core.inal import estimate_inal, output_offset
from inal_core.ngd import NGDConfig, train_noisy_gd
from inal_core.targets import extend

from .columns import columns_of, job_columns
from .jobs import JobSpec, git_commit
from .settings import engine_kwargs, keys_of
from .outcome import JobOutcome  # torch-free: the launcher's driver unpickles it
from .store import ResultsStore

__all__ = ["JobOutcome", "plan_packs", "run_inal_job", "run_training_pack", "write_failed", "resolve_device"]

_MAX_ERROR_CHARS = 4000
# curves column <- the engine's curve name (stored names never shadow DataFrame attributes such as `corr`)
CURVE_COLUMNS_FROM_ENGINE = {"correlation": "corr", "correlation_se": "corr_se", "acc": "acc", "loss": "loss",
                             "param_norm": "param_norm"}


def plan_packs(jobs: Sequence[JobSpec], max_pack: int) -> list[list[JobSpec]]:
    """Group jobs by ``pack_key`` (first-seen order), then cut each group into packs of <= ``max_pack``.

    ``max_pack=1`` turns packing off (one job per pack).
    """
    if int(max_pack) < 1:
        raise ValueError(f"max_pack must be an integer >= 1, got {max_pack!r}")
    from .plan import iter_packs  # the streaming implementation; this is its list form

    return list(iter_packs(jobs, int(max_pack), max_buffered=1 << 62))


@functools.lru_cache(maxsize=64)
def open_store(results_dir: str, study: str) -> ResultsStore:
    """One ``ResultsStore`` per study and process (it remembers the partition directories it made)."""
    return ResultsStore(results_dir, study)


def resolve_device(requested: str | None) -> str:
    """``auto`` -> ``cuda`` when this process sees a GPU, else ``cpu``; other values pass through."""
    if requested in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def _provenance(device: str) -> dict[str, Any]:
    return {
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        "device": device,
        "torch_version": torch.__version__,
        "engine_version": int(inal_core.ENGINE_VERSION),
        "created_at": datetime.now(timezone.utc),
    }


def _network_spec(job: JobSpec, input_dim: int) -> inal_core.NetworkSpec:
    """The network of ``job`` on ``input_dim`` inputs (its keywords from ``sweeps.settings``)."""
    return inal_core.NetworkSpec(input_dim, **engine_kwargs("network", job.values))


# --------------------------------------------------------------------------- INAL


def run_inal_job(job: JobSpec, device: str | None = None) -> dict[str, Any]:
    """Estimate INAL for ``job.inal_id`` and write its rows, unless a sound file is already there.

    Returns ``{"inal_id", "status": "ok"|"skipped"|"failed", "wall_s", "error"}``. A failure
    writes nothing (INAL is retried on the next invocation) and is reported in the dict.
    """
    store = open_store(job.results_dir, job.study)
    if store.has_inal(job.inal_id, job.target):
        return {"inal_id": job.inal_id, "status": "skipped", "wall_s": 0.0, "error": ""}
    v = job.values
    device = resolve_device(device or job.device)
    t0 = time.perf_counter()
    try:
        result = estimate_inal(job.make_target(), _network_spec(job, v["n"]), seed=job.inal_seed, device=device,
                               **engine_kwargs("inal", v))
    except Exception as err:  # reported, not raised: the other jobs go on
        text = "".join(traceback.format_exception(err))[-_MAX_ERROR_CHARS:]
        return {"inal_id": job.inal_id, "status": "failed", "wall_s": time.perf_counter() - t0, "error": text}
    layers = np.arange(1, len(result.per_layer) + 1)  # (depth+1,), output neuron = depth + 1
    L = len(layers)
    boot_seed = derive_seed(job.inal_seed, "inal_bootstrap")
    sf = selection_free_max(result.per_init, level=BOOTSTRAP_LEVEL, seed=boot_seed) if result.n_inits >= 4 else None
    # INAL_out - INAL_{L-1} (inal_core.inal_summary's module docstring): the output neuron's interval
    offset = output_offset(job.make_target(), _network_spec(job, v["n"])) if L >= 2 else math.nan
    if result.n_inits >= 2:
        boot_lo, boot_hi, boot_hi99 = bootstrap_t_interval(result.per_init, level=BOOTSTRAP_LEVEL, seed=boot_seed,
                                                           upper_tail=UPPER_TAIL)
    else:
        boot_lo = boot_hi = boot_hi99 = np.full(L, math.nan)
    measured = {
        "method": [result.method] * L, "layer": layers.tolist(),
        "inal": np.asarray(result.per_layer, dtype=np.float64).tolist(),
        "inal_se": np.asarray(result.per_layer_se, dtype=np.float64).tolist(),
        "is_max": (layers == int(result.argmax_layer)).tolist(),
        "n_inits": [int(result.n_inits)] * L, "n_inputs": [int(result.n_inputs)] * L,
        "selected_inal": [sf.value if sf else math.nan] * L, "selected_inal_se": [sf.se if sf else math.nan] * L,
        "selected_layer_a": [sf.layer_a if sf else -1] * L, "selected_layer_b": [sf.layer_b if sf else -1] * L,
        "inal_boot_lo": np.asarray(boot_lo, dtype=np.float64).tolist(),
        "inal_boot_hi": np.asarray(boot_hi, dtype=np.float64).tolist(),
        "inal_boot_hi99": np.asarray(boot_hi99, dtype=np.float64).tolist(),
        "selected_inal_boot_lo": [sf.boot_lo if sf else math.nan] * L,
        "selected_inal_boot_hi": [sf.boot_hi if sf else math.nan] * L,
        "selected_inal_boot_hi99": [sf.boot_hi99 if sf else math.nan] * L,
        "output_offset": [float(offset)] * L,
        "wall_s": [float(result.wall_s)] * L,
    }
    rows = {**{k: [val] * L for k, val in job_columns("inal", job).items()}, **measured,
            **{k: [val] * L for k, val in _provenance(device).items()}}
    store.write_inal(job.target, job.inal_id, rows)
    return {"inal_id": job.inal_id, "status": "ok", "wall_s": time.perf_counter() - t0, "error": ""}


# --------------------------------------------------------------------------- training


def _run_row(job: JobSpec, device: str, E: int, wall_s: float, **measured: Any) -> dict[str, Any]:
    """One ``runs`` row: the job's columns (``sweeps.columns.job_columns``), the measured values and provenance."""
    tr = job.config.training
    row = job_columns("runs", job)
    row.update({
        "E": int(E), "bound_prefactor": float(bound_prefactor(tr.gamma, tr.T, E, tr.A, tr.sigma)),
        "wall_s": float(wall_s),
        "correlation": math.nan, "correlation_se": math.nan, "acc": math.nan, "final_loss": math.nan,
        "param_norm": math.nan, "batch_used": -1, "status": "failed", "diverged_step": -1, "error": "",
    })
    row.update(measured)
    row.update(_provenance(device))
    return row


def write_failed(jobs: Sequence[JobSpec], error: BaseException | str, device: str = "") -> list[JobOutcome]:
    """Record ``failed`` runs rows (with the error text) for jobs that could not be computed.

    Used by ``run_training_pack`` for an exception inside it, and by the launcher for a pack
    whose Ray task finally failed (worker lost past its retries). T=0 jobs have no runs row.
    """
    if isinstance(error, BaseException):
        error = "".join(traceback.format_exception(error))
    text = str(error)[-_MAX_ERROR_CHARS:] or "unknown error"
    outcomes = []
    rows: dict[str, list[dict[str, Any]]] = {}
    for job in jobs:
        if job.train:
            E = _network_spec(job, job.values["N"]).num_parameters
            rows.setdefault((job.results_dir, job.study, job.target), []).append(
                _run_row(job, device or job.device, E, 0.0, status="failed", error=text))
        outcomes.append(JobOutcome(job.run_id, "failed", 0.0, text))
    for (results_dir, study, target), group in rows.items():  # one file per task and study
        open_store(results_dir, study).write_runs(target, group, None)
    return outcomes


def run_training_pack(jobs: Sequence[JobSpec], device: str | None = None, *,
                      with_inal: bool = True) -> list[JobOutcome]:
    """Train the jobs of one pack (one ``pack_key``) as one stack and write their rows.

    Parameters
    ----------
    jobs
        Jobs sharing ``pack_key``: they differ only in ``train.seed``, ``gamma`` and ``sigma``.
    device
        Overrides ``job.device`` (the launcher passes what Ray assigned); ``auto`` picks CUDA if seen.
    with_inal
        Also compute the pack's INAL (one ``inal_id`` per pack) when it is not in the store yet.

    Returns one :class:`JobOutcome` per job, in order. T=0 jobs train nothing (INAL only).
    """
    jobs = list(jobs)
    if not jobs:
        return []
    if len({j.pack_key for j in jobs}) != 1 or len({(j.results_dir, j.study) for j in jobs}) != 1:
        raise ValueError("run_training_pack needs jobs of one pack_key; group them with plan_packs")
    device = resolve_device(device or jobs[0].device)
    outcomes: list[JobOutcome] = []
    if with_inal:
        inal = run_inal_job(jobs[0], device)
        if inal["status"] == "failed" and not jobs[0].train:
            return [JobOutcome(j.run_id, "failed", inal["wall_s"], inal["error"]) for j in jobs]
    if not jobs[0].train:
        return [JobOutcome(j.run_id, "ok", 0.0) for j in jobs]

    v = jobs[0].values
    t0 = time.perf_counter()
    try:
        target_N = extend(jobs[0].make_target(), v["N"])
        spec = _network_spec(jobs[0], v["N"])
        # the pack's shared settings, and the per-run ones (gamma, sigma) as one value per run
        kwargs = engine_kwargs("ngd", v)
        per_run = [engine_kwargs("ngd", j.values) for j in jobs]
        kwargs.update({s.engine.keyword: [k[s.engine.keyword] for k in per_run]
                       for s in keys_of("vectorized") if s.engine is not None and s.engine.engine == "ngd"})
        config = NGDConfig(**kwargs)
        result = train_noisy_gd(target_N, spec, config, [j.seed for j in jobs], device=device)
    except Exception as err:  # the pack's jobs become failed rows; the study goes on
        return write_failed(jobs, err, device)
    wall_per_run = (time.perf_counter() - t0) / len(jobs)
    E = spec.num_parameters
    batch_used = np.broadcast_to(np.asarray(result.batch_used, dtype=np.int64).reshape(-1), (len(jobs),))  # (R,)
    rows = []
    curves: dict[str, list[Any]] = {k: [] for k in columns_of("curves")}
    for r, job in enumerate(jobs):
        status = str(result.status[r])
        measured = {
            "correlation": float(result.corr[r]), "correlation_se": float(result.corr_se[r]), "acc": float(result.acc[r]),
            "final_loss": float(result.loss[r]), "param_norm": float(result.param_norm[r]),
            "batch_used": int(batch_used[r]),
            "status": status, "diverged_step": int(result.diverged_step[r]),
            "error": "" if status == "ok" else f"non-finite values at step {int(result.diverged_step[r])}",
        }
        steps = np.asarray(result.curves["step"][r], dtype=np.int64)  # (n_ckpt,)
        for col, val in job_columns("curves", job).items():  # study, run_id
            curves[col] += [val] * len(steps)
        curves["step"] += steps.tolist()
        for col, k in CURVE_COLUMNS_FROM_ENGINE.items():
            curves[col] += np.asarray(result.curves[k][r], dtype=np.float64).tolist()
        rows.append(_run_row(job, device, E, wall_per_run, **measured))
        outcomes.append(JobOutcome(job.run_id, status, wall_per_run))
    # one runs file and one curves file for the whole pack (the store's cost grows with tasks)
    open_store(jobs[0].results_dir, jobs[0].study).write_runs(jobs[0].target, rows, curves)
    return outcomes
