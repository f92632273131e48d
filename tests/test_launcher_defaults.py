"""The launcher's defaults are written once (the config dataclass); the README's settings table
and the launcher class agree with it."""

import dataclasses
import inspect
import re
from pathlib import Path

import yaml

from hydra_plugins.inal_ray_launcher.config import InalRayLauncherConf
from hydra_plugins.inal_ray_launcher.ray_launcher import InalRayLauncher

README = Path(__file__).resolve().parents[1] / "hydra_plugins" / "inal_ray_launcher" / "README.md"
FIELDS = {f.name: f for f in dataclasses.fields(InalRayLauncherConf) if f.name != "_target_"}


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _table() -> dict:
    """setting -> default, from the README's `| setting | default | meaning |` rows."""
    table = {}
    for line in README.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([^`]+)`", cells[0])
        values = re.findall(r"`([^`]+)`", cells[1])
        if len(values) == 1 and len(names) > 1:  # one default shared by all names of the row
            values = values * len(names)
        assert len(names) == len(values), line
        for name, value in zip(names, values):
            table[name] = yaml.safe_load(value)
    return table


def test_readme_table_documents_every_setting_with_the_dataclass_default():
    table = _table()
    assert set(table) == set(FIELDS), (set(table) ^ set(FIELDS))
    for name, f in FIELDS.items():
        assert table[name] == _default(f), (name, table[name], _default(f))


def test_launcher_class_defaults_are_the_dataclass_defaults():
    params = inspect.signature(InalRayLauncher.__init__).parameters
    assert set(params) - {"self"} == set(FIELDS)
    for name, f in FIELDS.items():
        assert params[name].default == _default(f), name
