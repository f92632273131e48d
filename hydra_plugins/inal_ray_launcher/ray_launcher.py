"""The thin launcher class Hydra instantiates from :class:`~.config.InalRayLauncherConf`.

Ray and the project's sweep machinery are imported only when a sweep is launched (``_generic`` or
``_fast_path``, both on ``_ray``), so Hydra's plugin discovery stays fast.
"""

from __future__ import annotations

import inspect
import logging
import re
from typing import Any, Dict, List, Optional, Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

# Imported so that the config is registered whenever Hydra discovers this plugin.
from hydra_plugins.inal_ray_launcher.config import InalRayLauncherConf

# The launcher's defaults are the config dataclass's, written once there (read, not restated, below).
_DEFAULT = InalRayLauncherConf()

# Defined in a module Hydra's plugin scan does not re-execute (its name starts with _), so that the
# class stays one object however often Hydra rescans this module.
from hydra_plugins.inal_ray_launcher._errors import LauncherConfigError  # noqa: E402

log = logging.getLogger(__name__)


def _bad(key: str, value: Any, allowed: str) -> LauncherConfigError:
    return LauncherConfigError(key, value, allowed)


def ray_init_keywords() -> List[str]:
    """The keyword arguments ``ray.init`` accepts, read from Ray itself (its signature, plus the
    private ``_name`` options it pops from ``**kwargs``); ``address`` is the launcher's own setting."""
    import ray

    init = inspect.unwrap(ray.init)
    names = [p.name for p in inspect.signature(init).parameters.values()
             if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "address"]
    try:
        names += sorted(set(re.findall(r'kwargs\.pop\(\s*"(_\w+)"', inspect.getsource(init))))
    except (OSError, TypeError):  # no source: private options are then left to Ray to check
        pass
    return names


def check_ray_init(ray_init: Dict[str, Any]) -> None:
    """Reject ``hydra.launcher.ray_init`` keys ``ray.init`` would refuse after the study started."""
    if not isinstance(ray_init, dict):
        raise _bad("ray_init", ray_init, "a mapping of ray.init keyword arguments")
    if "address" in ray_init:
        raise _bad("ray_init.address", ray_init["address"],
                   "no address here: set hydra.launcher.address (auto, host:port or local)")
    if not ray_init:  # nothing to check: Ray is not imported (a complete study's rerun never needs it)
        return
    known = ray_init_keywords()
    for key in ray_init:
        if key not in known:
            raise _bad(f"ray_init.{key}", ray_init[key], "a keyword argument of ray.init: " + ", ".join(
                k for k in known if not k.startswith("_")))


def check_settings(**settings: Any) -> None:
    """Reject launcher settings Ray would choke on later, naming the key, the value and what is allowed."""
    for key in ("num_cpus", "num_gpus"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise _bad(key, value, "a finite number >= 0 (fractions allowed)")
    for key, minimum in (("max_pack", 1), ("max_retries", 0), ("local_cpus", 1), ("local_gpus", 0),
                         ("max_cells", 1), ("max_in_flight", 1), ("max_pack_gpu", 1)):
        value = settings[key]
        if value is None and key.startswith("local_"):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            extra = " or null (what Ray detects)" if key.startswith("local_") else ""
            raise _bad(key, value, f"an integer >= {minimum}{extra}")
    address = settings.get("address")
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise _bad("address", address, "null (RAY_ADDRESS, else a local Ray), local, auto, host:port or ray://host:port")
    if "ray_init" in settings:
        check_ray_init(settings["ray_init"])


class InalRayLauncher(Launcher):
    """Hydra launcher running each job (or each pack of jobs) as a Ray task.

    Parameters are the fields of :class:`~.config.InalRayLauncherConf`, with its defaults.
    """

    def __init__(
        self,
        address: Optional[str] = _DEFAULT.address,
        local_cpus: Optional[int] = _DEFAULT.local_cpus,
        local_gpus: Optional[int] = _DEFAULT.local_gpus,
        num_cpus: float = _DEFAULT.num_cpus,
        num_gpus: float = _DEFAULT.num_gpus,
        max_pack: int = _DEFAULT.max_pack,
        max_retries: int = _DEFAULT.max_retries,
        ray_init: Optional[Dict[str, Any]] = _DEFAULT.ray_init,
        dashboard: bool = _DEFAULT.dashboard,
        report: bool = _DEFAULT.report,
        progress: bool = _DEFAULT.progress,
        verbose: bool = _DEFAULT.verbose,
        dry_run: bool = _DEFAULT.dry_run,
        max_cells: int = _DEFAULT.max_cells,
        max_in_flight: int = _DEFAULT.max_in_flight,
        max_pack_gpu: int = _DEFAULT.max_pack_gpu,
        gpu_memory_gb: Optional[float] = _DEFAULT.gpu_memory_gb,
        gpu_tflops: float = _DEFAULT.gpu_tflops,
        slots: Optional[float] = _DEFAULT.slots,
        max_cell_hours: float = _DEFAULT.max_cell_hours,
        worker_memory_gb: Optional[float] = _DEFAULT.worker_memory_gb,
    ) -> None:
        if isinstance(ray_init, DictConfig):
            ray_init = OmegaConf.to_container(ray_init, resolve=True)  # type: ignore[assignment]
        check_settings(num_cpus=num_cpus, num_gpus=num_gpus, max_pack=max_pack, max_retries=max_retries,
                       local_cpus=local_cpus, local_gpus=local_gpus, address=address, ray_init=ray_init or {},
                       max_cells=max_cells, max_in_flight=max_in_flight, max_pack_gpu=max_pack_gpu)
        self.address = address
        self.local_cpus = local_cpus
        self.local_gpus = local_gpus
        self.num_cpus = float(num_cpus)
        self.num_gpus = float(num_gpus)
        self.max_pack = int(max_pack)
        self.max_retries = int(max_retries)
        self.ray_init: Dict[str, Any] = dict(ray_init or {})
        self.dashboard = bool(dashboard)
        self.report = bool(report)
        self.progress = bool(progress)
        self.verbose = bool(verbose)
        self.dry_run = bool(dry_run)
        self.max_cells = int(max_cells)
        self.max_in_flight = int(max_in_flight)
        self.max_pack_gpu = int(max_pack_gpu)
        for key, value in (("gpu_memory_gb", gpu_memory_gb), ("gpu_tflops", gpu_tflops)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
                raise _bad(key, value, "a number > 0" + (" or null (the driver's GPU 0, else 16)" if key == "gpu_memory_gb" else ""))
        self.gpu_memory_gb = None if gpu_memory_gb is None else float(gpu_memory_gb)
        self.gpu_tflops = float(gpu_tflops)
        for key, value, none in (("slots", slots, " or null (this machine's CPUs / num_cpus)"),
                                 ("max_cell_hours", max_cell_hours, ""),
                                 ("worker_memory_gb", worker_memory_gb, " or null (this machine's memory)")):
            if (value is None and none) or (not isinstance(value, bool) and isinstance(value, (int, float))
                                            and 0 < value < float("inf")):
                continue
            raise _bad(key, value, "a finite number > 0" + none)
        self.slots = None if slots is None else float(slots)
        self.max_cell_hours = float(max_cell_hours)
        self.worker_memory_gb = None if worker_memory_gb is None else float(worker_memory_gb)
        self.config: Optional[DictConfig] = None
        self.task_function: Optional[TaskFunction] = None
        self.hydra_context: Optional[HydraContext] = None
        self._fast_state: Any = None  # the fast path's GroupwiseComposer, built on first use

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def uses_fast_path(self) -> bool:
        """Whether the task function is the project's (``sweeps.run.task``, ``__inal_sweep__``)."""
        return bool(getattr(self.task_function, "__inal_sweep__", False))

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """Run the jobs; return one ``JobReturn`` per entry of ``job_overrides``, in order: the fast
        path for the project's task function, else the generic path (one Ray task per job)."""
        from hydra.core.utils import configure_log, setup_globals

        setup_globals()
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        if self.uses_fast_path():
            from hydra_plugins.inal_ray_launcher import _fast_path as path
        else:
            from hydra_plugins.inal_ray_launcher import _generic as path  # type: ignore[no-redef]
        return path.launch(self, job_overrides, initial_job_idx)
