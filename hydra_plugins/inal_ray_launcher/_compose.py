"""Compose many sweep jobs while paying Hydra's full composition once per set of group choices.

Hydra composes each job of a multirun from scratch (``ConfigLoader.load_sweep_config``: defaults
tree, config files, merges; about 40 ms here). In a grid most jobs differ only in scalar
values (``n=8``, ``gamma=0.1``, ``train.seed=3``) and share their config-group choices
(``target=parity``, ``+experiment=default``). Hydra itself applies such value overrides
*after* composing the defaults tree, with ``ConfigLoaderImpl._apply_overrides_to_config``, in
command-line order. So for a job with overrides ``G + V`` (G: group overrides, V: value
overrides, each in their original order)::

    load_sweep_config(master, G + V)  ==  apply(V, load_sweep_config(master, G))

up to the bookkeeping under ``hydra.overrides`` / ``hydra.job.override_dirname``, which
:meth:`GroupwiseComposer.compose` recomputes. The split follows Hydra's own rule
(``hydra._internal.defaults_list.Overrides``): an override is a group override when its key is
a config group of the repository and its value is not a dict; ``hydra.*`` overrides and
package-qualified ones are kept with the groups (they go through full composition).
"""

from __future__ import annotations

import copy
from typing import Dict, List, Sequence, Tuple

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf, open_dict, read_write


class GroupwiseComposer:
    """Job configs of one multirun, composed once per distinct tuple of group overrides.

    Parameters
    ----------
    config_loader
        The sweep's ``hydra_context.config_loader`` (a ``ConfigLoaderImpl``).
    master_config
        The multirun's config (what the launcher's ``setup`` receives).

    Attributes
    ----------
    full_compositions
        How many times Hydra's full composition ran (one per distinct group tuple).
    """

    def __init__(self, config_loader: ConfigLoaderImpl, master_config: DictConfig) -> None:
        self.config_loader = config_loader
        self.master_config = master_config
        self.repository = config_loader.repository
        self.parser = OverridesParser.create(config_loader=config_loader)
        self._parsed: Dict[str, Override] = {}
        self._bases: Dict[Tuple[str, ...], DictConfig] = {}
        self._task_bases: Dict[Tuple[str, ...], DictConfig] = {}
        self.full_compositions = 0

    # -------------------------------------------------------------------------------- parsing

    def parse(self, line: str) -> Override:
        """The parsed override of one command-line item (cached: grids repeat items a lot)."""
        override = self._parsed.get(line)
        if override is None:
            (override,) = self.parser.parse_overrides([line])
            self._parsed[line] = override
        return override

    def is_group_override(self, override: Override) -> bool:
        """Hydra's rule: a config group key with a non-dict value (plus hydra.* and key@package)."""
        if override.is_hydra_override() or override.package is not None:
            return True
        if isinstance(override.value(), dict):
            return False
        return bool(self.repository.group_exists(override.key_or_group))

    def split(self, overrides: Sequence[str]) -> Tuple[Tuple[str, ...], List[Override]]:
        """``(group override lines, parsed value overrides)``, each in command-line order."""
        groups: List[str] = []
        values: List[Override] = []
        for line in overrides:
            override = self.parse(line)
            if self.is_group_override(override):
                groups.append(line)
            else:
                values.append(override)
        return tuple(groups), values

    # ---------------------------------------------------------------------------- composing

    def base(self, groups: Tuple[str, ...]) -> DictConfig:
        """The full config (``hydra`` node included) for these group choices; composed once."""
        cfg = self._bases.get(groups)
        if cfg is None:
            cfg = self.config_loader.load_sweep_config(self.master_config, list(groups))
            self.full_compositions += 1
            self._bases[groups] = cfg
        return cfg

    def task_base(self, groups: Tuple[str, ...]) -> DictConfig:
        """:meth:`base` without its ``hydra`` node (what a task function receives)."""
        cfg = self._task_bases.get(groups)
        if cfg is None:
            cfg = copy.deepcopy(self.base(groups))
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
            self._task_bases[groups] = cfg
        return cfg

    def compose_task(self, overrides: Sequence[str]) -> DictConfig:
        """The job's task config (no ``hydra`` node), equal to Hydra's composition minus ``hydra``.

        Raises Hydra's ``ConfigCompositionException`` for an override Hydra would reject
        (unknown key without ``+``, ...), like a full composition does.
        """
        groups, values = self.split(overrides)
        cfg = copy.deepcopy(self.task_base(groups))
        if values:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        return cfg

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's full config, equal to ``config_loader.load_sweep_config(master, overrides)``."""
        groups, values = self.split(overrides)
        cfg = copy.deepcopy(self.base(groups))
        if values:
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        parsed = [self.parse(line) for line in overrides]
        app_overrides = [o for o in parsed if not o.is_hydra_override()]
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.overrides.task = [o.input_line for o in app_overrides]
            dirname_cfg = cfg.hydra.job.config.override_dirname
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=app_overrides,
                kv_sep=dirname_cfg.kv_sep,
                item_sep=dirname_cfg.item_sep,
                exclude_keys=dirname_cfg.exclude_keys,
            )
        return cfg


def task_view(full_config: DictConfig) -> DictConfig:
    """A copy of ``full_config`` without its ``hydra`` node."""
    cfg = copy.deepcopy(full_config)
    with read_write(cfg), open_dict(cfg):
        del cfg["hydra"]
    return cfg


def configs_equal(a: DictConfig, b: DictConfig) -> bool:
    """Equality of two configs as containers, interpolations left unresolved."""
    return OmegaConf.to_container(a, resolve=False) == OmegaConf.to_container(b, resolve=False)
