"""The launcher's Ray plumbing, shared by its two paths (the bottom of the launcher's imports).

- :func:`resolve_address` and :func:`ensure_ray`: where Ray is, and connecting to it (a local Ray
  on loopback, or a cluster), with the user's own target families shipped to the workers
  (:func:`user_code_runtime_env`);
- :func:`task_options`: the options of every Ray task the launcher submits;
- :func:`drain`: the one ``ray.wait`` loop, handing each task's result (or the error of a task Ray
  gave up on) to a callback as soon as it is ready.

It imports nothing of the launcher's other modules: the generic path (:mod:`._generic`) and the
fast path (:mod:`._fast_path`) both build on it, and neither imports the other.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, MutableMapping, Optional

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
    since 2.52, kept) stay quiet unless ``launcher.verbose``. A Python SIGTERM handler the program
    installed is kept: ``ray.init`` replaces it with one that aborts the process.
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
    verbose = launcher.verbose
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




def drain(
    pending: MutableMapping[Any, Any],
    on_result: Callable[[Any, Any, Optional[BaseException]], None],
    until: Optional[Callable[[], bool]] = None,
    timeout: Optional[float] = None,
    on_idle: Optional[Callable[[], None]] = None,
    rounds: Optional[int] = None,
) -> None:
    """Collect the results of the tasks in ``pending`` (task reference -> the caller's key for it,
    any value) as they finish.

    Each round waits (``ray.wait``) for one result, at most ``timeout`` seconds (``None``: as long
    as it takes), then takes every other result already there; each finished reference leaves
    ``pending`` and ``on_result(key, value, error)`` is called with it, ``error`` the exception when
    Ray could not produce the value (an application error, or a worker or node lost more than
    ``max_retries`` times; ``value`` is then ``None``). A round in which nothing finished calls
    ``on_idle()`` (e.g. to renew this driver's claims while a long task runs).

    Rounds go on while ``pending`` holds tasks, ``until()`` (asked before each round) is false and
    fewer than ``rounds`` rounds were made. ``pending`` may be the caller's own dict of tasks in
    flight: tasks submitted between calls are collected by the next one.
    """
    import ray

    made = 0
    while pending and not (until is not None and until()) and (rounds is None or made < rounds):
        made += 1
        ready, rest = ray.wait(list(pending), num_returns=1, timeout=timeout)
        if not ready:
            if on_idle is not None:
                on_idle()
            continue
        if rest:  # take everything else that is ready too, without waiting
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready = list(ready) + list(more)
        for ref in ready:
            key = pending.pop(ref)
            try:
                value, error = ray.get(ref), None
            except Exception as exc:  # RayTaskError, WorkerCrashedError, NodeDiedError, ...
                value, error = None, exc
            on_result(key, value, error)
