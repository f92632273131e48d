"""The launcher's configuration error.

Hydra's plugin discovery re-executes every public module of ``hydra_plugins`` (``ray_launcher``,
``config``, ``sweeper``) when it scans, which would make a class defined there a new object at each
scan (an ``except`` holding the old one then misses it). Modules whose names start with ``_`` are
not scanned, so the class lives here.
"""

from __future__ import annotations

from typing import Any


class LauncherConfigError(ValueError):
    """A ``hydra.launcher`` setting that is not allowed: one line naming the key, the value and
    what is allowed (``inal-sweep`` prints it and exits 2, before Ray starts)."""

    def __init__(self, key: str, value: Any, allowed: str) -> None:
        self.key, self.value, self.allowed = f"hydra.launcher.{key}", value, allowed
        super().__init__(f"invalid hydra.launcher.{key}={value!r} (allowed: {allowed})")
