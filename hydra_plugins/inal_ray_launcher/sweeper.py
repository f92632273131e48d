"""``hydra/sweeper=inal``: Hydra's basic sweeper, planning a study lazily and up front.

Hydra's ``BasicSweeper`` (the ``a,b`` / ``range()`` / ``choice()`` / ``glob()`` grammar and
``hydra.sweeper.params``) builds the list of every job's overrides (``split_arguments``),
composes every job once more only to check that it composes (``validate_batch_is_legal``:
~40 ms a job) and writes ``multirun.yaml`` before its launcher sees any job. With the project's
task function and the ``inal_ray`` launcher this subclass instead parses the same overrides with
Hydra's parser into the same axes (``sweeps.plan.grid_axes``) and hands them to the launcher,
which expands the product lazily, refuses a grid over ``hydra.launcher.max_cells``, validates
every cell (``sweeps.plan``) and only then writes ``multirun.yaml`` and runs, or with
``hydra.launcher.dry_run=true`` prints the plan and stops. The result is one batch whose
``JobReturn`` list is built lazily (``cfg`` None). ``hydra.sweeper.max_batch_size`` does not
apply (the launcher streams the whole grid with bounded memory). Any other task function or
launcher gets ``BasicSweeper``'s behaviour unchanged.

A configuration error (a bad value in the grid, or a bad ``hydra.launcher`` setting) is recorded
in ``sweeps.outcome.TALLY``; under ``inal-sweep`` (``sweeps.run.main``) it is printed as one line
and the program exits 2, before anything is written or Ray is started. Called in-process (tests,
``Hydra.multirun``), the error is raised as it is.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


@dataclass
class InalSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.inal_ray_launcher.sweeper.InalSweeper"


ConfigStore.instance().store(group="hydra/sweeper", name="inal", node=InalSweeperConf, provider="inal_ray_launcher")


def config_error_of(exc: BaseException) -> Optional[BaseException]:
    """The configuration error behind ``exc`` (itself, or the cause of Hydra's wrapping when the
    launcher's settings were refused while Hydra instantiated it), else ``None``."""
    from sweeps.validation import ConfigError
    from sweeps.store import LegacyLayoutError

    from hydra_plugins.inal_ray_launcher._errors import LauncherConfigError

    seen = 0
    while exc is not None and seen < 5:
        # a study of the old layout is a results_dir this version refuses until migrated: exit 2
        if isinstance(exc, (ConfigError, LauncherConfigError, LegacyLayoutError)):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # type: ignore[assignment]
    return None


def stop_on_config_error(exc: BaseException) -> None:
    """Record a configuration error; under ``inal-sweep`` print it as one line and exit 2."""
    from sweeps.outcome import EXIT_CONFIG, TALLY

    err = config_error_of(exc)
    if err is None:
        return
    TALLY.config_error = str(err)
    if TALLY.cli:
        print(f"inal-sweep: {err}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG) from None


def stop_on_storage_error(exc: BaseException) -> None:
    """A full disk, a quota or a read-only results location, or a results location that cannot be
    read after retries (``StoreReadError``: an object store's endpoint unreachable, credentials
    refused): under ``inal-sweep`` one line (what is stored, how to resume) and exit 1 instead of
    a traceback or Hydra's hint."""
    from sweeps.outcome import EXIT_FAILED, TALLY, storage_error_line
    from sweeps.store import StoreReadError

    line = storage_error_line(exc)
    if line is None and isinstance(exc, StoreReadError):
        line = str(exc)
    if line is not None and TALLY.cli:
        print(f"inal-sweep: {line}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_FAILED) from None


class InalSweeper(BasicSweeper):
    """``BasicSweeper`` whose jobs are composed and validated by the ``inal_ray`` launcher."""

    def setup(self, **kwargs: Any) -> None:
        try:
            super().setup(**kwargs)  # instantiates the launcher, which checks its settings
        except Exception as exc:
            stop_on_config_error(exc)
            raise

    def _fast_launcher(self) -> Optional[Any]:
        launcher = getattr(self, "launcher", None)
        if launcher is not None and callable(getattr(launcher, "uses_fast_path", None)) and launcher.uses_fast_path():
            return launcher
        return None

    def sweep(self, arguments: List[str]) -> Any:
        launcher = self._fast_launcher()
        if launcher is None:
            try:
                return super().sweep(arguments)
            except Exception as exc:
                stop_on_storage_error(exc)
                raise
        assert self.hydra_context is not None and self.config is not None
        from hydra_plugins.inal_ray_launcher import _fast_path
        from sweeps.plan import GridSource, grid_axes

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        composer = _fast_path._composer(launcher)
        try:
            # the axes of BasicSweeper.split_arguments, iterated lazily (never a list of every job)
            source = GridSource(grid_axes(overrides, composer.is_group_override))
            grid = _fast_path.prepare_grid(launcher, source)  # max_cells, validation: raises before any write
            if not grid.counts.configs:  # a sweep of no value (glob() matching nothing): nothing to do is a bad setting
                from sweeps.validation import ConfigError

                raise ConfigError("sweep", " ".join(arguments), "overrides whose sweeps each yield at least one value",
                                  "the grid has no cell")
        except Exception as exc:
            stop_on_config_error(exc)
            stop_on_storage_error(exc)
            raise
        if launcher.dry_run:
            return [_fast_path.launch_grid(launcher, grid)]
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        try:
            return [_fast_path.launch_grid_with_callbacks(launcher, grid)]
        except Exception as exc:
            stop_on_storage_error(exc)
            raise

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if self._fast_launcher() is None:
            super().validate_batch_is_legal(batch)
