"""Hydra launcher plugin ``hydra/launcher=inal_ray``: Hydra multiruns as Ray tasks.

Two paths, each built on one module of Ray plumbing (:mod:`._ray`: address, ``ray.init``, task
options, the one ``ray.wait`` loop ``drain``), neither importing the other; ``InalRayLauncher.launch``
(``ray_launcher.py``) picks one:

- generic (:mod:`._generic`): any Hydra task function; one Ray task per job runs Hydra's
  ``run_job`` on the job's composed config and returns a proper ``JobReturn`` (output dir,
  ``.hydra/``, log);
- fast path (:mod:`._fast_path`), for the project's own task function (``task.__inal_sweep__ =
  True``, see ``sweeps/run.py``): compose once per distinct set of config-group choices, validate
  every job before anything is scheduled, skip jobs whose results are already in the store, dedupe,
  pack jobs that differ only in seed / gamma / sigma into one stacked training task, stream
  results back with a progress bar and print a summary (:mod:`._summary`).

``config.py`` and ``ray_launcher.py`` are imported by Hydra's plugin discovery and stay light;
everything that imports Ray lives in modules whose names start with ``_`` (Hydra skips them).
"""

__version__ = "0.1.0"
