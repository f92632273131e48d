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
:meth:`GroupwiseComposer.compose` recomputes. Two further savings, both exact:

- value overrides common to every job of the batch (``set_batch``: the non-swept part of the
  command line) are applied once to the base, when their keys are disjoint from the job's own
  (no key equal to, or a dotted prefix of, another), since OmegaConf updates of disjoint paths
  commute;
- a job's copy of its base is ``pickle.loads`` of the base pickled once (about 8x cheaper than
  ``copy.deepcopy`` of a ``DictConfig``; flags and metadata survive).
 The split follows Hydra's own rule
(``hydra._internal.defaults_list.Overrides``): an override is a group override when its key is
a config group of the repository and its value is not a dict; ``hydra.*`` overrides and
package-qualified ones are kept with the groups (they go through full composition).
"""

from __future__ import annotations

import copy
import pickle
from typing import Dict, FrozenSet, List, Sequence, Tuple

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
        self._parsed: Dict[str, Tuple[Override, bool]] = {}
        self._bases: Dict[Tuple[str, ...], DictConfig] = {}
        self._pickled: Dict[Tuple[bool, Tuple[str, ...], Tuple[str, ...]], bytes] = {}
        self._shared: FrozenSet[str] = frozenset()
        self.full_compositions = 0

    # -------------------------------------------------------------------------------- parsing

    def parse(self, line: str) -> Override:
        """The parsed override of one command-line item (cached: grids repeat items a lot)."""
        return self._classified(line)[0]

    def _classified(self, line: str) -> Tuple[Override, bool]:
        entry = self._parsed.get(line)
        if entry is None:
            (override,) = self.parser.parse_overrides([line])
            entry = self._parsed[line] = (override, self.is_group_override(override))
        return entry

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
            override, is_group = self._classified(line)
            if is_group:
                groups.append(line)
            else:
                values.append(override)
        return tuple(groups), values

    def set_batch(self, job_overrides: Sequence[Sequence[str]]) -> None:
        """Remember which override lines every job of the coming batch shares (see the module doc)."""
        lines = [set(o) for o in job_overrides]
        self._shared = frozenset(set.intersection(*lines)) if lines else frozenset()

    def set_shared(self, lines: Sequence[str]) -> None:
        """Like :meth:`set_batch` when the shared lines are known (a grid's single-valued axes)."""
        self._shared = frozenset(lines)

    def _hoistable(self, values: List[Override]) -> Tuple[List[Override], List[Override]]:
        """``(shared, own)`` value overrides if the shared ones can be applied first, else ``([], values)``."""
        shared = [o for o in values if o.input_line in self._shared]
        own = [o for o in values if o.input_line not in self._shared]
        if not shared or not own:
            return shared, own
        own_keys = [o.key_or_group for o in own]
        for key in (o.key_or_group for o in shared):
            for other in own_keys:
                if key == other or key.startswith(other + ".") or other.startswith(key + "."):
                    return [], values
        return shared, own

    def _copy_of(self, full: bool, groups: Tuple[str, ...], shared: List[Override]) -> DictConfig:
        """A private copy of the base (with or without ``hydra``) with ``shared`` applied."""
        key = (full, groups, tuple(o.input_line for o in shared))
        data = self._pickled.get(key)
        if data is None:
            cfg = copy.deepcopy(self.base(groups)) if full else self.task_base(groups)
            if shared:
                ConfigLoaderImpl._apply_overrides_to_config(shared, cfg)
            data = self._pickled[key] = pickle.dumps(cfg)
        return pickle.loads(data)

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
        """A copy of :meth:`base` without its ``hydra`` node (what a task function receives)."""
        return task_view(self.base(groups))

    def compose_task(self, overrides: Sequence[str]) -> DictConfig:
        """The job's task config (no ``hydra`` node), equal to Hydra's composition minus ``hydra``.

        Raises Hydra's ``ConfigCompositionException`` for an override Hydra would reject
        (unknown key without ``+``, ...), like a full composition does.
        """
        groups, values = self.split(overrides)
        shared, own = self._hoistable(values)
        cfg = self._copy_of(False, groups, shared)
        if own:
            ConfigLoaderImpl._apply_overrides_to_config(own, cfg)
        return cfg

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """The job's full config, equal to ``config_loader.load_sweep_config(master, overrides)``."""
        groups, values = self.split(overrides)
        shared, own = self._hoistable(values)
        cfg = self._copy_of(True, groups, shared)
        if own:
            ConfigLoaderImpl._apply_overrides_to_config(own, cfg)
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
