"""Hydra callback that validates a single run's config before Hydra creates any output directory.

Registered in ``sweeps/conf/config.yaml`` under ``hydra.callbacks.validate``. Hydra calls
``on_run_start`` before its run directory and ``.hydra/`` files are written, so a bad value
(``inal-sweep n=0``) stops the program with the :class:`sweeps.schema.ConfigError` message and
nothing on disk. Multiruns are validated job by job by the ``inal_ray`` launcher before any
task starts (and, with Hydra's basic launcher, by ``sweeps.run.task`` at the start of each job).
"""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .schema import validate_job

__all__ = ["ValidateConfig"]


class ValidateConfig(Callback):
    """Raise :class:`sweeps.schema.ConfigError` on a bad single-run config, before any work."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate_job(config)
