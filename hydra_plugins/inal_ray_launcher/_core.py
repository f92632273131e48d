"""Ray plumbing of the launcher and its generic path (any Hydra task function).

- :func:`ensure_ray` starts a local Ray on loopback or joins a cluster (``address``);
- :func:`stream` waits on task references with ``ray.wait`` and hands each result (or the
  error of a task Ray gave up on) to a callback as soon as it is ready, driving the progress bar;
- :func:`launch` is what :class:`~.ray_launcher.InalRayLauncher` calls: the fast path for the
  project's own task function (``__inal_sweep__``), else one Ray task per job running Hydra's
  ``run_job`` on the job's composed config, like Hydra's basic launcher does in-process.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict

from hydra_plugins.inal_ray_launcher.progress import ProgressBar

log = logging.getLogger(__name__)

#: The logger of Ray's token-authentication set-up (``ray/_private/authentication/``).
RAY_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def resolve_address(address: Optional[str]) -> Optional[str]:
    """Where the launcher's Ray is: ``None`` for a new local Ray, else the address to join.

    Ray's convention: an explicit ``hydra.launcher.address`` wins (``local`` forces a new local
    Ray); left unset, ``$RAY_ADDRESS`` names the cluster (as inside ``ray job submit``); with
    neither, a local Ray on loopback.
    """
    if address == "local":
        return None
    if address not in (None, ""):
        return str(address)
    return os.environ.get("RAY_ADDRESS") or None


def ensure_ray(launcher: Any) -> bool:
    """Make sure this process is connected to Ray; return ``True`` if it started a local one.

    A Ray already initialized in the process is reused as it is. Otherwise the address comes from
    :func:`resolve_address`; ``launcher.ray_init`` adds keyword arguments of ``ray.init``. Ray's
    start-up lines and its notice that a new local Ray uses token authentication (Ray's default
    since 2.52, kept) stay quiet unless ``launcher.verbose``. A Python SIGTERM handler the program installed is kept: ``ray.init``
    replaces it with one that aborts the process.
    """
    import ray

    if ray.is_initialized():
        log.info("Ray is already initialized in this process: reusing it")
        if user_code_runtime_env():
            log.info("the study's own target families (%s) reach the workers only if this Ray's runtime_env "
                     "or their environment provides them", ", ".join(user_code_runtime_env()["py_modules"]))
        return False
    kwargs: Dict[str, Any] = _with_user_code(dict(launcher.ray_init))
    kwargs.setdefault("log_to_driver", True)
    verbose = bool(getattr(launcher, "verbose", False))
    kwargs.setdefault("logging_level", logging.INFO if verbose else logging.WARNING)
    # Ray's notices (token authentication on/off, a token generated) come from this logger.
    logging.getLogger(RAY_AUTH_LOGGER).setLevel(logging.NOTSET if verbose else logging.ERROR)
    address = resolve_address(launcher.address)
    previous_sigterm = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    try:
        if address is None:
            if launcher.local_cpus is not None:
                kwargs.setdefault("num_cpus", int(launcher.local_cpus))
            if launcher.local_gpus is not None:
                kwargs.setdefault("num_gpus", int(launcher.local_gpus))
            kwargs.setdefault("include_dashboard", launcher.dashboard)
            kwargs.setdefault("_node_ip_address", "127.0.0.1")
            log.log(logging.INFO if verbose else logging.DEBUG, "Starting a local Ray (%s)",
                    ", ".join(f"{k}={v}" for k, v in kwargs.items()))
            ray.init(address="local", **kwargs)
            return True
        log.log(logging.INFO if verbose else logging.DEBUG, "Joining the Ray cluster at %s", address)
        ray.init(address=address, **kwargs)
        return False
    finally:
        if callable(previous_sigterm):
            signal.signal(signal.SIGTERM, previous_sigterm)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def task_options(launcher: Any, name: str) -> Dict[str, Any]:
    """Options of every Ray task the launcher submits: resources, retries, a readable name.

    ``max_retries`` covers system failures (worker process or node died); application errors
    are not retried (``retry_exceptions=False``): they are results (``failed`` rows).
    """
    options = {
        "num_cpus": launcher.num_cpus,
        "num_gpus": launcher.num_gpus,
        "max_retries": launcher.max_retries,
        "retry_exceptions": False,
        "name": name,
    }
    return options


def user_code_runtime_env() -> Dict[str, Any]:
    """Ray's ``runtime_env`` that ships the user's own target families to the workers.

    A family named by an import path (``target.name: mymodule:MyFamily``) is imported by the
    driver while it validates the grid (before :func:`ensure_ray`); a worker imports it again to
    build the target. A module that is not installed (its file lies outside every
    ``site-packages``) is sent as ``py_modules`` (its file, or its top-level package's directory):
    on a cluster the workers do not have the user's directory. Installed modules are left to the
    workers' environment. Ray uploads local paths only for a job (``ray.init``), not per task.
    """
    from inal_core.targets import user_family_modules

    paths = []
    for name in user_family_modules():
        path = _module_source(name)
        if path is not None and path not in paths:
            paths.append(path)
    return {"py_modules": paths} if paths else {}


def _with_user_code(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """``ray.init`` keyword arguments with :func:`user_code_runtime_env`'s ``py_modules`` added to
    any ``runtime_env`` the launcher's ``ray_init`` gives."""
    shipped = user_code_runtime_env().get("py_modules")
    if shipped:
        runtime_env = dict(kwargs.get("runtime_env") or {})
        runtime_env["py_modules"] = list(runtime_env.get("py_modules") or []) + shipped
        kwargs["runtime_env"] = runtime_env
    return kwargs


def _module_source(module_name: str) -> Optional[str]:
    """The file (a plain module) or directory (a package) of ``module_name``'s top-level module, or
    None when it is installed (under site-packages/dist-packages) or has no file."""
    import sys

    top = sys.modules.get(module_name.partition(".")[0])
    file = getattr(top, "__file__", None)
    if file is None:
        return None
    path = Path(file).resolve()
    if any(part in ("site-packages", "dist-packages") for part in path.parts):
        return None
    return str(path.parent if path.name == "__init__.py" else path)


def stream(
    refs: Dict[Any, Hashable],
    on_result: Callable[[Hashable, Any, Optional[BaseException]], Tuple[int, int]],
    progress: ProgressBar,
) -> None:
    """Collect task results as they finish.

    ``on_result(key, value, error)`` is called once per reference, with ``error`` the exception
    when Ray could not produce the value (application error, or a worker/node lost more than
    ``max_retries`` times); it returns ``(units completed, of which failed)`` for the progress bar.
    """
    import ray

    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        if pending:  # take everything else that is ready too, without waiting
            more, pending = ray.wait(pending, num_returns=len(pending), timeout=0)
            ready += more
        for ref in ready:
            try:
                value, error = ray.get(ref), None
            except Exception as exc:  # RayTaskError, WorkerCrashedError, NodeDiedError, ...
                value, error = None, exc
            done, failed = on_result(refs[ref], value, error)
            progress.update(done, failed=failed)


# ---------------------------------------------------------------------------------------------
# Generic path: one Ray task per job, Hydra's run_job on the worker.


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


def launch_generic(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> List[JobReturn]:
    """Compose each job's config in the driver, run it as a Ray task, return JobReturns in order."""
    config, hydra_context = launcher.config, launcher.hydra_context
    sweep_dir = Path(str(config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    log.info("inal_ray launcher: %d jobs on Ray, sweep output dir %s", len(job_overrides), sweep_dir)

    import ray

    singleton_ref = ray.put(Singleton.get_state())
    context_ref = ray.put(hydra_context)
    task_ref = ray.put(launcher.task_function)
    refs: Dict[Any, Hashable] = {}
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

    def on_result(offset: Hashable, value: Any, error: Optional[BaseException]) -> Tuple[int, int]:
        assert isinstance(offset, int)
        if error is not None:
            value = JobReturn(overrides=list(job_overrides[offset]), status=JobStatus.FAILED, _return_value=error)
        results[offset] = value
        return 1, int(value.status != JobStatus.COMPLETED)

    progress = ProgressBar(len(job_overrides), unit="jobs", enabled=launcher.progress)
    with progress:
        stream(refs, on_result, progress)
    return [r for r in results if r is not None]


def write_sweep_dir(config: DictConfig) -> Path:
    """The multirun's ``.hydra/`` in the sweep directory, as Hydra writes it for a job:
    ``config.yaml`` (the study's composed config, without ``hydra``), ``hydra.yaml`` and
    ``overrides.yaml`` (the command line's overrides)."""
    sweep_dir = Path(str(config.hydra.sweep.dir))
    hydra_dir = sweep_dir / str(config.hydra.output_subdir or ".hydra")
    hydra_dir.mkdir(parents=True, exist_ok=True)
    task_cfg = OmegaConf.masked_copy(config, [k for k in config.keys() if k != "hydra"])
    OmegaConf.save(task_cfg, hydra_dir / "config.yaml", resolve=False)
    OmegaConf.save(OmegaConf.create({"hydra": config.hydra}), hydra_dir / "hydra.yaml", resolve=False)
    OmegaConf.save(OmegaConf.create(list(config.hydra.overrides.task)), hydra_dir / "overrides.yaml")
    return sweep_dir


def attach_log_file(config: DictConfig, sweep_dir: Path) -> logging.Handler:
    """Log to ``<sweep dir>/<job name>.log`` (``run.log`` for ``inal-sweep``), as Hydra's job
    logging does for a job; what reaches the terminal is unchanged."""
    handler = logging.FileHandler(sweep_dir / f"{config.hydra.job.name}.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    return handler


def launch_grid_with_callbacks(launcher: Any, grid: Any) -> Sequence[JobReturn]:
    """Run a prepared grid (``_fast_path.prepare_grid``) with what Hydra gives each job around it.

    Hydra's ``run_job`` calls ``on_job_start``/``on_job_end`` of the ``hydra.callbacks`` around
    each job; the fast path runs a grid as packs, not job by job, so every job's
    ``on_job_start`` comes before any task starts and its ``on_job_end`` after the grid, with the
    job's composed task config (no ``hydra`` node: ``HydraConfig.get()`` is the multirun's;
    composed again here, one at a time, and only when callbacks are configured) and a
    ``JobReturn`` whose ``return_value`` is ``{"run_id", "inal_id", "status", "error", "results"}``
    (``status``: ``ok``/``diverged``/``failed``/``skipped``). The sweep directory gets the
    multirun's ``.hydra/``, a ``results.yaml`` naming where the results are, and the log.
    """
    from hydra_plugins.inal_ray_launcher import _fast_path

    config = launcher.config
    sweep_dir = write_sweep_dir(config)
    handler = attach_log_file(config, sweep_dir)
    try:
        callbacks = launcher.hydra_context.callbacks
        per_job = bool(getattr(callbacks, "callbacks", None))
        composer = _fast_path._composer(launcher)
        if per_job:
            for overrides in grid.source:
                callbacks.on_job_start(config=composer.compose_task(tuple(overrides)),
                                       task_function=launcher.task_function)
        returns = _fast_path.launch_grid(launcher, grid)
        roots = [str(r) for r in getattr(returns, "roots", [])]
        OmegaConf.save(OmegaConf.create({"results": roots, "analyse": [f"inal-report {r}" for r in roots]}),
                       sweep_dir / "results.yaml")
        if per_job:
            for overrides, ret in zip(grid.source, returns):
                callbacks.on_job_end(config=composer.compose_task(tuple(overrides)), job_return=ret)
        return returns
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def launch_fast_with_callbacks(launcher: Any, job_overrides: Sequence[Sequence[str]],
                               initial_job_idx: int) -> Sequence[JobReturn]:
    """Hydra's ``Launcher.launch`` for the project's jobs (explicit override lists, e.g. Hydra's
    basic sweeper or its launcher test suites): plan them, then :func:`launch_grid_with_callbacks`."""
    from hydra_plugins.inal_ray_launcher import _fast_path
    from sweeps.plan import ListSource

    grid = _fast_path.prepare_grid(launcher, ListSource(job_overrides))
    return launch_grid_with_callbacks(launcher, grid)


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Entry point of :meth:`InalRayLauncher.launch`: pick the path and run the jobs."""
    setup_globals()
    assert launcher.config is not None and launcher.hydra_context is not None and launcher.task_function is not None
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    if getattr(launcher.task_function, "__inal_sweep__", False):
        return launch_fast_with_callbacks(launcher, job_overrides, initial_job_idx)
    ensure_ray(launcher)
    return launch_generic(launcher, job_overrides, initial_job_idx)
