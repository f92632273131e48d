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
"""

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


class InalSweeper(BasicSweeper):
    """``BasicSweeper`` whose jobs are composed and validated by the ``inal_ray`` launcher."""

    def _fast_launcher(self) -> Optional[Any]:
        launcher = getattr(self, "launcher", None)
        if launcher is not None and callable(getattr(launcher, "prepare", None)) and launcher.uses_fast_path():
            return launcher
        return None

    def sweep(self, arguments: List[str]) -> Any:
        launcher = self._fast_launcher()
        if launcher is None:
            return super().sweep(arguments)
        assert self.hydra_context is not None and self.config is not None
        from hydra_plugins.inal_ray_launcher import _fast_path
        from sweeps.plan import GridSource, grid_axes

        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides(self._parse_config() + list(arguments))
        composer = _fast_path._composer(launcher)
        # the axes of BasicSweeper.split_arguments, iterated lazily (never a list of every job)
        source = GridSource(grid_axes(overrides, composer.is_group_override))
        grid = _fast_path.prepare_grid(launcher, source)  # max_cells, validation: raises before any write
        if not launcher.dry_run:
            sweep_dir = Path(self.config.hydra.sweep.dir)
            sweep_dir.mkdir(parents=True, exist_ok=True)
            OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        return [_fast_path.launch_grid(launcher, grid)]

    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        if self._fast_launcher() is None:
            super().validate_batch_is_legal(batch)
