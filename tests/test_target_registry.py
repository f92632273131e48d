"""The family registry (inal_core.targets.FAMILIES): each family's inputs checked once, in one place,
canonicalized, and every family reachable from the config tree."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from inal_core.targets import FAMILIES, TARGETS, TargetConfigError, make_target

CONF = Path(__file__).resolve().parent.parent / "sweeps" / "conf" / "target"


def test_every_family_has_a_config_group_and_no_more():
    assert set(FAMILIES) == set(TARGETS) == {p.stem for p in CONF.glob("*.yaml")}
    for name, family in FAMILIES.items():
        cfg = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        assert cfg["name"] == name
        assert set(cfg) - {"name"} <= set(family.param_names), name  # the group sets only family parameters


@pytest.mark.parametrize("name,n,c,params,expected_c,expected", [
    ("parity", 8, 2.0, {"subset": "random", "subset_seed": 3.0}, 2.0, {"subset": "random", "subset_seed": 3}),
    ("parity", 8, None, {"k": 3}, 3.0, {"subset": "first", "subset_seed": 0}),
    ("majority", 7, 5.0, {}, 1.0, {}),
    ("full_parity", 7, 2.0, {}, math.inf, {}),
    ("staircase", 9, 3.0, {}, 1.0, {"k": None}),
    ("staircase", 9, 1.0, {"k": 4.0}, 1.0, {"k": 4}),
    ("planted", 12, 2, {}, 2.0, {"parity_degree": None, "resolution_bits": 2}),
])
def test_validate_gives_canonical_inputs(name, n, c, params, expected_c, expected):
    nominal_c, checked = FAMILIES[name].validate(n, c, params)
    assert nominal_c == expected_c and checked == expected
    assert all(type(v) is type(expected[k]) for k, v in checked.items())


@pytest.mark.parametrize("name,n,c,params,param,allowed", [
    ("parity", 8, 9, {}, "c", "k = c in 1..n (n=8)"),
    ("parity", 8, 1.5, {}, "c", "integer >= 1"),
    ("parity", 8, 2, {"k": 3}, "k", "equal to c"),
    ("parity", 8, 2, {"subset": "middle"}, "subset", "one of first, random"),
    ("parity", 8, 2, {"subset_seed": -1}, "subset_seed", "integer >= 0"),
    ("parity", 8, 2, {"subset_seed": True}, "subset_seed", "integer >= 0"),
    ("parity", 8, 2, {"kk": 1}, "kk", "k, subset, subset_seed"),
    ("staircase", 4, 1, {"k": 5}, "k", "[1, 4]"),
    ("majority", 5, 1, {"bits": 3}, "bits", "none"),
    ("planted", 12, 0.5, {}, "c", "finite real >= 1"),
    ("planted", 12, 1.5, {"resolution_bits": 17}, "resolution_bits", "[0, 16]"),
])
def test_errors_name_the_input_and_what_is_allowed(name, n, c, params, param, allowed):
    with pytest.raises(TargetConfigError) as info:
        FAMILIES[name].validate(n, c, params)
    assert info.value.param == param and allowed in info.value.allowed
    with pytest.raises(ValueError):  # make_target goes through the same validator
        make_target(name, n, c=c, **params)


def test_build_equals_make_target():
    for name, n, c, params in [("parity", 9, 3, {"subset": "random", "subset_seed": 5}), ("staircase", 9, 1, {}),
                               ("planted", 12, 1.5, {"resolution_bits": 3}), ("majority", 6, 1, {})]:
        family = FAMILIES[name]
        built = family.build(n, *family.validate(n, c, params))
        reference = make_target(name, n, c=c, **params)
        assert built.relevant_bits == reference.relevant_bits and built.params == reference.params
