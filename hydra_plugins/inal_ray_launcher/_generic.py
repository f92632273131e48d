"""The launcher's generic path: any Hydra task function, one Ray task per job.

Each job's config is composed in the driver (Hydra's ``load_sweep_config``) and run on a worker
by Hydra's own ``run_job``, with the driver's Hydra singletons and working directory, so a job's
``JobReturn``, output directory, ``.hydra/`` files and log are those of Hydra's basic launcher.
The Ray plumbing (connecting, task options, the ``ray.wait`` loop) is :mod:`._ray`'s.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from hydra_plugins.inal_ray_launcher._ray import drain, ensure_ray, task_options
from hydra_plugins.inal_ray_launcher.progress import ProgressBar

log = logging.getLogger(__name__)


def _portable_exception(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError carrying its text."""
    import ray.cloudpickle as cloudpickle

    try:
        cloudpickle.loads(cloudpickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def run_hydra_job(
    sweep_config: DictConfig,
    hydra_context: HydraContext,
    task_function: TaskFunction,
    singleton_state: Dict[Any, Any],
    driver_cwd: str,
) -> JobReturn:
    """Body of a generic-path Ray task: Hydra's ``run_job`` with the driver's Hydra state.

    The worker adopts the driver's singletons (config store, resolvers, job runtime) and working
    directory (when it exists on this node), so the job sees what it would see in-process.
    """
    setup_globals()
    Singleton.set_state(singleton_state)
    HydraConfig.instance().set_config(sweep_config)
    worker_cwd = os.getcwd()
    if driver_cwd and os.path.isdir(driver_cwd):
        os.chdir(driver_cwd)
    try:
        ret = run_job(
            hydra_context=hydra_context,
            task_function=task_function,
            config=sweep_config,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )
    finally:
        os.chdir(worker_cwd)
    if ret.status == JobStatus.FAILED:
        ret.return_value = _portable_exception(ret._return_value)
    return ret


@functools.lru_cache(maxsize=None)
def _run_hydra_job_remote() -> Any:
    """:func:`run_hydra_job` as a Ray remote function (Ray is imported when jobs are launched)."""
    import ray

    return ray.remote(run_hydra_job)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    """Compose each job's config in the driver, run it as a Ray task, return JobReturns in order."""
    ensure_ray(launcher)
    config, hydra_context = launcher.config, launcher.hydra_context
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info("inal_ray launcher: %d jobs on Ray, sweep output dir %s", len(job_overrides), sweep_dir)

    import ray

    singleton_ref = ray.put(Singleton.get_state())
    context_ref = ray.put(hydra_context)
    task_ref = ray.put(launcher.task_function)
    refs: Dict[Any, int] = {}  # task reference -> the job's offset in job_overrides
    for offset, overrides in enumerate(job_overrides):
        idx = initial_job_idx + offset
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        ref = _run_hydra_job_remote().options(**task_options(launcher, f"hydra job {idx}")).remote(
            sweep_config, context_ref, task_ref, singleton_ref, os.getcwd()
        )
        refs[ref] = offset

    results: List[Optional[JobReturn]] = [None] * len(job_overrides)

    progress = ProgressBar(len(job_overrides), unit="jobs", enabled=launcher.progress)

    def on_result(offset: int, value: Any, error: Optional[BaseException]) -> None:
        if error is not None:
            value = JobReturn(overrides=list(job_overrides[offset]), status=JobStatus.FAILED, _return_value=error)
        results[offset] = value
        progress.update(1, failed=int(value.status != JobStatus.COMPLETED))

    with progress:
        drain(refs, on_result)
    return [r for r in results if r is not None]
