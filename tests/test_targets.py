"""Target families against plain-Python definitions, their spectra and their declared relevant bits."""

import math

import pytest
import torch

from inal_core.cube import enumerate_cube, truth_table
from inal_core.fourier import degree_weights, fourier_coefficients
from inal_core.targets import TARGETS, available_targets, extend, make_target, resolve_extension

FAMILY_CASES = [
    ("parity", 2, {}),
    ("parity", 3, {"subset": "random", "subset_seed": 7}),
    ("majority", None, {}),
    ("staircase", None, {}),
    ("staircase", None, {"k": 4}),
    ("full_parity", None, {}),
    ("planted", 2.0, {}),
]


def python_reference(name, x, target):
    """Each family's definition on one point x (list of ±1), written without torch."""
    p = target.params
    if name == "parity":
        return math.prod(x[i] for i in target.relevant_bits)
    if name == "full_parity":
        return math.prod(x)
    if name == "majority":
        m = len(x) if len(x) % 2 else len(x) - 1
        return 1.0 if sum(x[:m]) > 0 else -1.0
    if name == "staircase":
        s = sum(math.prod(x[: j + 1]) for j in range(p["k"]))
        return 1.0 if s >= 0 else -1.0
    if name == "planted":
        r, m = p["event_bits"], p["parity_degree"]
        u = sum((1 - x[1 + j]) // 2 * 2**j for j in range(r))
        return x[0] if u < p["event_K"] else math.prod(x[1 + r : 1 + r + m])
    raise AssertionError(name)


@pytest.mark.parametrize("name,c,params", FAMILY_CASES)
def test_family_matches_python_definition(name, c, params):
    n = 9
    t = make_target(name, n, c=c, **params)
    x = enumerate_cube(n, dtype=torch.float64)
    values = t(x)
    assert values.dtype == torch.float64 and values.shape == (2**n,)
    expected = [python_reference(name, [int(v) for v in row], t) for row in x.tolist()]
    assert values.tolist() == expected
    # batched leading dimensions and float32
    assert torch.equal(t(x.float().reshape(8, 64, n)), values.float().reshape(8, 64))


@pytest.mark.parametrize("name,c,params", FAMILY_CASES)
def test_relevant_bits_are_exactly_the_support(name, c, params):
    n = 8
    t = make_target(name, n, c=c, **params)
    coeffs = fourier_coefficients(truth_table(t, n))
    support_union = 0
    for S in torch.nonzero(coeffs.abs() > 1e-12).flatten().tolist():
        support_union |= S
    assert support_union == sum(1 << i for i in t.relevant_bits)


def test_parity_degree_and_random_subset():
    t = make_target("parity", 12, c=4, subset="random", subset_seed=3)
    assert len(t.relevant_bits) == 4 and t.nominal_c == 4.0 and t.params["k"] == 4
    assert make_target("parity", 12, c=4, subset="random", subset_seed=3).relevant_bits == t.relevant_bits
    assert make_target("parity", 12, c=4, subset="random", subset_seed=4).relevant_bits != t.relevant_bits
    w = degree_weights(truth_table(t, 12))
    assert w[4].item() == pytest.approx(1.0)
    assert make_target("parity", 12, k=2).relevant_bits == (0, 1)


def test_fixed_exponent_families_ignore_c():
    for name, nominal in [("majority", 1.0), ("staircase", 1.0), ("full_parity", math.inf)]:
        assert make_target(name, 7, c=3).nominal_c == nominal
        assert make_target(name, 7, c=1).params == make_target(name, 7, c=3).params


def test_majority_even_n_uses_first_n_minus_one_bits_and_is_balanced():
    t = make_target("majority", 6)
    assert t.relevant_bits == (0, 1, 2, 3, 4)
    assert truth_table(t, 6).sum().item() == 0


def test_staircase_default_k_and_balance():
    assert make_target("staircase", 10).params["k"] == 5
    assert make_target("staircase", 4).params["k"] == 3
    assert make_target("staircase", 2).params["k"] == 1
    assert truth_table(make_target("staircase", 7), 7).sum().item() == 0  # odd k: balanced
    # even k: ties (probability C(4,2)/16 = 3/8) go to +1, so E f = 3/8
    assert truth_table(make_target("staircase", 6, k=4), 6).mean().item() == pytest.approx(3 / 8)


@pytest.mark.parametrize("n,c", [(10, 2.0), (12, 3.0), (16, 2.5), (9, 1.0)])
def test_planted_level_one_weight_is_p_squared(n, c):
    t = make_target("planted", n, c=c)
    p = t.params["p"]
    wanted = n ** (-(c - 1) / 2)
    # realised p within the resolution of the event: |p - wanted| <= 2^-(r+1)
    assert abs(p - wanted) <= 2.0 ** (-(t.params["event_bits"] + 1)) + 1e-12
    coeffs = fourier_coefficients(truth_table(t, n))
    assert coeffs[1].item() == pytest.approx(p, abs=1e-12)  # fhat({x_1}) = P(E)
    assert degree_weights(truth_table(t, n))[1].item() == pytest.approx(p * p, abs=1e-12)
    assert t.nominal_c == c
    assert t.params["c_effective"] == pytest.approx(1 + 2 * math.log(1 / p) / math.log(n))


def test_planted_c_one_is_the_dictator():
    t = make_target("planted", 8, c=1)
    assert t.relevant_bits == (0,)
    x = enumerate_cube(8)
    assert torch.equal(t(x), x[:, 0])


def test_bad_parameters_raise_named_errors():
    with pytest.raises(ValueError, match="valid targets.*majority"):
        make_target("parityy", 5, c=1)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 5\\], got 6"):
        make_target("parity", 5, c=6)
    with pytest.raises(ValueError, match="c must be an integer"):
        make_target("parity", 5, c=2.5)
    with pytest.raises(ValueError, match="k=3 contradicts c=2"):
        make_target("parity", 5, c=2, k=3)
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 4\\]"):
        make_target("staircase", 4, k=0)
    with pytest.raises(ValueError, match="unknown parameter.*'kk'"):
        make_target("staircase", 4, kk=2)
    with pytest.raises(ValueError, match="c must be a finite real >= 1"):
        make_target("planted", 9, c=0.5)
    with pytest.raises(ValueError, match="event bits"):
        make_target("planted", 8, c=5)
    with pytest.raises(ValueError, match="last dimension n=4"):
        make_target("majority", 4)(torch.ones(3, 5))
    assert available_targets() == sorted(TARGETS) == ["full_parity", "majority", "parity", "planted", "staircase"]


def test_extension_resolution_and_fbar():
    assert resolve_extension("n^2", 7) == 49
    assert resolve_extension("2n", 7) == 14
    assert resolve_extension(20, 7) == 20
    assert resolve_extension("20", 7) == 20
    for bad in (6, "3n", 2.5, True):
        with pytest.raises(ValueError, match="extension N must be"):
            resolve_extension(bad, 7)
    base = make_target("parity", 4, c=2, subset="random", subset_seed=1)
    fbar = extend(base, 9)
    assert fbar.n == 9 and fbar.name == "parity" and fbar.relevant_bits == base.relevant_bits
    assert fbar.nominal_c == base.nominal_c and fbar.params["base_n"] == 4
    x = enumerate_cube(9)
    assert torch.equal(fbar(x), base(x[:, :4]))
    with pytest.raises(ValueError, match="N must be an integer >= n=4"):
        extend(base, 3)
