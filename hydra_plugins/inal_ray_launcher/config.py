"""The launcher's structured config, registered as ``hydra/launcher=inal_ray``.

Every field can be set on the command line, e.g.::

    inal-sweep -m n=8,12 hydra.launcher.address=auto hydra.launcher.num_gpus=0.25
    inal-sweep -m n=8,12 hydra.launcher.max_pack=1          # packing off: one task per job
    inal-sweep -m n=8,12 '+hydra.launcher.ray_init={runtime_env: {env_vars: {OMP_NUM_THREADS: "1"}}}'
"""

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class InalRayLauncherConf:
    """Settings of :class:`~hydra_plugins.inal_ray_launcher.ray_launcher.InalRayLauncher`.

    Attributes
    ----------
    address
        ``None``: Ray's convention, the cluster named by ``$RAY_ADDRESS`` (set inside
        ``ray job submit``), else a new local Ray on loopback (stopped when the program exits);
        ``"local"``: a new local Ray even when ``$RAY_ADDRESS`` is set; ``"auto"``: join the
        cluster this machine belongs to; ``"host:port"``: join that cluster's GCS. A Ray already
        initialized in the calling process is reused as it is.
    local_cpus, local_gpus
        CPUs / GPUs of a local Ray started by the launcher (``None``: what Ray detects). Ignored
        when joining a cluster.
    num_cpus, num_gpus
        Resources reserved by each Ray task (one job, or one pack of jobs). ``num_gpus`` may be
        fractional (0.25: four tasks share a GPU).
    max_pack
        Largest number of jobs trained as one stack in one task (fast path only). ``1`` turns
        packing off: one task per job.
    max_retries
        Ray retries of a task whose worker process or node died (system failures). Application
        errors are not retried: they become ``failed`` rows.
    ray_init
        Extra keyword arguments for ``ray.init`` (``runtime_env``, ``namespace``, ...); checked
        against ``ray.init``'s own signature before anything runs (``address`` is not one: use
        ``address`` above).
    dashboard
        Start Ray's dashboard with a local Ray.
    report
        After the study, run ``inal-report <results_dir>/<study>`` (``python -m analysis.report``)
        in a subprocess.
    progress
        Progress bar on stderr (done/total, rate, ETA; plain lines when stderr is not a TTY).
    verbose
        Ray's start-up lines and the launcher's connection messages (quiet by default: Ray logs
        warnings and errors only).
    dry_run
        Plan only: print cells, already complete, to run, packs and an estimated time from the
        cost model, then stop (no Ray, nothing written). ``inal-sweep -m ... hydra.launcher.dry_run=true``.
    max_cells
        Largest grid accepted (cells before deduplication); a larger one is refused before any
        work, naming its size. The driver keeps about 150 bytes a cell (dedupe set and status
        arrays): 0.3 GB at the default, well inside the 1.5 GB budget of a 10^6-cell dry run, and
        twice the largest studies of the field (10^6 cells). ``inal-submit`` applies the same limit.
    max_in_flight
        Most Ray tasks submitted and not yet collected at once (the driver's memory follows it).
    max_pack_gpu, gpu_memory_gb, gpu_tflops
        With ``num_gpus > 0`` a pack's size comes from the cost model (``sweeps.plan.gpu_pack_size``:
        parameters and evaluation rows against ``gpu_memory_gb`` x ``num_gpus`` of memory, about a
        minute of work at ``gpu_tflops`` x ``num_gpus``), at most ``max_pack_gpu``; ``gpu_memory_gb``
        null: the driver's GPU 0, else 16.
    slots
        Task slots the plan is made for: the dry run's estimate, the packs' sizes (no pack above
        the fair share task-seconds / slots) and the progress ETA. ``null``: this machine's CPUs
        (``local_cpus``) / ``num_cpus`` for a local Ray, the cluster's when joining one; set it to
        plan a cluster from here (``slots=64 dry_run=true``).
    max_cell_hours
        Longest estimated time of one cell (its INAL task, or one run trained alone) on one slot,
        from the measured cost model (``sweeps.throughput``); a cell above it is refused before any
        work, with its estimate in the message.
    worker_memory_gb
        Memory of a worker, against which each cell's INAL chunk and training are checked before
        any work (``null``: this machine's physical memory; with ``num_gpus > 0`` the GPU's share,
        ``gpu_memory_gb`` x ``num_gpus``, is checked instead).
    """

    _target_: str = "hydra_plugins.inal_ray_launcher.ray_launcher.InalRayLauncher"
    address: Optional[str] = None
    local_cpus: Optional[int] = None
    local_gpus: Optional[int] = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    max_pack: int = 64
    max_retries: int = 3
    ray_init: Dict[str, Any] = field(default_factory=dict)
    dashboard: bool = False
    report: bool = True
    progress: bool = True
    verbose: bool = False
    dry_run: bool = False
    max_cells: int = 2_000_000
    max_in_flight: int = 256
    max_pack_gpu: int = 4096
    gpu_memory_gb: Optional[float] = None
    gpu_tflops: float = 20.0
    slots: Optional[float] = None
    max_cell_hours: float = 24.0
    worker_memory_gb: Optional[float] = None


ConfigStore.instance().store(group="hydra/launcher", name="inal_ray", node=InalRayLauncherConf, provider="inal_ray_launcher")
