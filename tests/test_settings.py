"""The table of settings: one declaration per setting, from which validation, identity, columns,
the README key table and the engines' keywords are derived; identities never merge two settings
and never move for a cell stored before a setting existed."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from sweeps import settings as S
from sweeps.validation import ConfigError, validate_job

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
IDS = ("run_id", "inal_id", "pack_key", "config_id", "inal_config_id")


@pytest.fixture(scope="module")
def base(compose_config, tmp_path_factory):
    """The default config as plain Python (results_dir a fresh directory)."""
    cfg = OmegaConf.to_container(compose_config(), resolve=True)
    cfg["results_dir"] = str(tmp_path_factory.mktemp("results"))
    return cfg


def _ids(job) -> dict[str, str]:
    return {k: getattr(job, k) for k in IDS}


def _get(cfg: dict, path: str):
    group, _, key = path.rpartition(".")
    src = cfg[group] if group else cfg
    return src.get(key, S.BY_PATH[path].default)


def _set(cfg: dict, path: str, value) -> dict:
    out = copy.deepcopy(cfg)
    if path == "target.name":  # another family: its own parameters (none for majority)
        out["target"] = {"name": value}
        return out
    group, _, key = path.rpartition(".")
    (out[group] if group else out)[key] = value
    return out


def _other(setting: S.Setting, current, tmp_path: Path):
    """A second allowed value of ``setting`` (its reader says what is allowed)."""
    read = setting.read
    if setting.path == "target.name":
        return "majority"
    if setting.path == "c":
        return 2
    if read is None:
        raise AssertionError(f"no value pair for {setting.path}: read by validation's own code; add one here")
    if current is None and read.null is not None:
        return read.kwargs.get("minimum", 0) + 2
    kind = read.kind
    if kind == "int":
        return current + 1
    if kind == "float":
        return current * 2 if current else 0.5
    if kind == "bool":
        return not current
    if kind == "choice":
        return next(c for c in read.kwargs["choices"] if c != current)
    if kind == "extension":
        return "2n" if current != "2n" else "n^2"
    if kind == "checkpoints":
        return current + 1
    if kind == "study":
        return current + "_other"
    if kind == "results_dir":
        return str(tmp_path)
    if kind == "device":
        return "cpu" if current != "cpu" else "auto"
    raise AssertionError(f"no value pair for reader {kind!r} of {setting.path}: add one to this test")


def test_two_settings_that_differ_never_share_an_identity(base, tmp_path):
    """For every setting of the table, two validated configs differing only in it get different
    identities exactly where its roles say (and equal ones elsewhere)."""
    ref = _ids(validate_job(base))
    checked = []
    for s in S.SETTINGS:
        if s.path is None:
            continue  # derived: follows the settings it is derived from
        value = _other(s, _get(base, s.path), tmp_path)
        if s.path == "inal.estimator":
            value = "exact"  # auto resolves to exact at n=8: the request alone changes (another method is inal_method's)
        job = validate_job(_set(base, s.path, value))
        assert job.values[s.flat] != validate_job(base).values[s.flat], s.path
        got = _ids(job)
        want = {"run_id": s.run, "inal_id": s.inal, "pack_key": s.run and not s.vectorized,
                "config_id": s.config, "inal_config_id": s.inal_config}
        for k in IDS:
            assert (got[k] != ref[k]) == want[k], f"{s.path}={value!r}: {k} {'equal' if want[k] else 'differs'}"
        checked.append(s.path)
    assert len(checked) >= 25 and "train.gamma_schedule" in checked


def test_identities_of_cells_written_before_the_table_are_unchanged(compose_config):
    """The identities today's code gives the configs of ``record.py`` are those commit 7e41b71
    (before the table of settings, and before any setting added since) computed and stored."""
    recorded = json.loads((FIXTURES / "identities_7e41b71" / "identities.json").read_text())
    assert len(recorded) >= 9
    for case in recorded:
        job = validate_job(compose_config(case["overrides"] + ["results_dir=/tmp"]))
        assert _ids(job) == {k: case[k] for k in IDS}, case["overrides"]


def test_a_setting_left_out_takes_its_default_and_the_yaml_agrees(base, compose_config):
    cfg = OmegaConf.to_container(compose_config(), resolve=True)
    for path, default in S.DEFAULTS.items():
        assert _get(cfg, path) == default and type(_get(cfg, path)) is type(default), path
        group, _, key = path.rpartition(".")
        left_out = copy.deepcopy(base)
        (left_out[group] if group else left_out).pop(key)
        assert _ids(validate_job(left_out)) == _ids(validate_job(base)), path
    for s in S.SETTINGS:  # every setting with a reader is in the default config (or has a default)
        if s.read is not None:
            assert s.default is not S.REQUIRED or _get(cfg, s.path) is not None or s.read.null is not None, s.path


def test_every_setting_is_read_with_its_reader_and_named_in_errors(base):
    for s in S.SETTINGS:
        if s.read is None or s.read.kind not in ("int", "float", "choice", "bool"):
            continue
        with pytest.raises(ConfigError, match=f"invalid {s.path}="):
            validate_job(_set(base, s.path, "not-a-value" if s.read.kind != "choice" else 3))


def test_engine_keywords_reach_the_engines(base):
    from dataclasses import fields

    from inal_core.ngd import NGDConfig
    from inal_core.specs import NetworkSpec

    job = validate_job(base)
    ngd = S.engine_kwargs("ngd", job.values)
    assert set(ngd) <= {f.name for f in fields(NGDConfig)}
    NGDConfig(**ngd)  # every keyword accepted with its validated value
    NetworkSpec(job.values["n"], **S.engine_kwargs("network", job.values))
    assert S.engine_kwargs("inal", job.values)["memory_budget_bytes"] == int(job.values["memory_budget_gb"] * 2**30)
    assert S.engine_kwargs("ngd", job.values)["batch"] is None  # batch 0: the engine's exact population gradient


def test_readme_key_table_is_generated_from_the_table():
    text = (REPO / "sweeps" / "README.md").read_text()
    assert S.readme_table(text) == S.render_key_table(), \
        "sweeps/README.md is stale: run python -m sweeps.settings --write sweeps/README.md"
    for s in S.SETTINGS:
        if s.path:
            assert f"| `{s.path}` |" in S.render_key_table()


def test_columns_and_analysis_keys_come_from_the_table():
    from analysis.bound_check import BOUND_GROUP_KEYS
    from sweeps.columns import JOB_VALUES, SCHEMAS, columns_of

    for s in S.SETTINGS:
        if s.column:
            for kind in s.stored_in:
                assert s.column in columns_of(kind, "job"), (s.column, kind)
                assert s.column in JOB_VALUES
        if s.trains and s.config:
            assert (s.column or s.flat) in BOUND_GROUP_KEYS, s.path
    assert "n" not in BOUND_GROUP_KEYS and "seed" not in BOUND_GROUP_KEYS
    assert set(BOUND_GROUP_KEYS) - {"target"} <= set(SCHEMAS["runs"].names)
