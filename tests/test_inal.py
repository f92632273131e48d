"""INAL estimators against brute force with plain loops, unbiasedness over many seeds, budgets and errors."""

import math

import numpy as np
import pytest
import torch

from inal_core.cube import sample_cube
from inal_core.inal import _init_seeds, check_inal_request, estimate_inal, exact_memory_bytes
from inal_core.networks import NetworkSpec, init_relu_stack
from inal_core.rng import make_generator
from inal_core.targets import make_target


def brute_force_inal(target, spec, n_inits, seed=0):
    """Per-layer INAL by loops over inits, inputs and neurons (python floats, float64 weights)."""
    stack = init_relu_stack(spec, _init_seeds(seed, n_inits), dtype=torch.float64)
    n = target.n
    Ws = [w.tolist() for w in stack.weights]
    bs = [None if b is None else b.tolist() for b in stack.biases]
    per_layer = [0.0] * spec.num_layers
    for r in range(n_inits):
        corr = [[0.0] * size for size in spec.layer_sizes[1:]]
        for j in range(2**n):
            x = [1 - 2 * ((j >> i) & 1) for i in range(n)]
            fx = float(target(torch.tensor([x], dtype=torch.float64))[0])
            h = [float(v) for v in x]
            for l in range(spec.num_layers):
                W, d_out = Ws[l][r], spec.layer_sizes[l + 1]
                z = [sum(h[i] * W[i][o] for i in range(len(h))) + (bs[l][r][o] if bs[l] else 0.0) for o in range(d_out)]
                h = z if l == spec.num_layers - 1 else [max(v, 0.0) for v in z]
                for o in range(d_out):
                    corr[l][o] += fx * h[o] / 2**n
        for l in range(spec.num_layers):
            per_layer[l] += sum(c * c for c in corr[l]) / len(corr[l]) / n_inits
    return np.array(per_layer)


BRUTE_CASES = [
    ("parity", 2, 5, 1, True, "normal"),
    ("parity", 3, 6, 2, True, "normal"),
    ("majority", None, 5, 1, True, "rademacher"),
    ("staircase", None, 6, 2, False, "normal"),
    ("planted", 2.0, 6, 1, True, "normal_bias1"),
    ("full_parity", None, 4, 1, True, "normal"),
]


@pytest.mark.parametrize("name,c,n,depth,bias,init", BRUTE_CASES)
@pytest.mark.parametrize("engine", ["auto", "plain"])
def test_exact_equals_brute_force(name, c, n, depth, bias, init, engine):
    target = make_target(name, n, c=c)
    spec = NetworkSpec(n, 3, depth, bias=bias, init=init)
    expected = brute_force_inal(target, spec, n_inits=3)
    res = estimate_inal(target, spec, n_inits=3, method="exact", dtype=torch.float64, engine=engine)
    assert res.method == "exact" and res.n_inputs == 2**n and res.n_inits == 3
    np.testing.assert_allclose(res.per_layer, expected, rtol=1e-10, atol=1e-15)
    assert res.value == pytest.approx(expected.max()) and res.argmax_layer == int(np.argmax(expected)) + 1
    # standard error over inits: each init's per-layer neuron mean is one sample
    assert res.per_init.shape == (3, depth + 1)
    np.testing.assert_allclose(res.per_layer_se, res.per_init.std(0, ddof=1) / math.sqrt(3))


@pytest.mark.parametrize("name,c", [("majority", None), ("parity", 3), ("planted", 2.0)])
def test_sorted_split_engine_equals_brute_force_at_n10(name, c):
    # n = 10 puts 2^5 = 32 > 16 low assignments in the split engine: the sort/search path
    target = make_target(name, 10, c=c)
    spec = NetworkSpec(10, 2, 1)
    expected = brute_force_inal(target, spec, n_inits=2, seed=5)
    res = estimate_inal(target, spec, n_inits=2, seed=5, method="exact", dtype=torch.float64)
    np.testing.assert_allclose(res.per_layer, expected, rtol=1e-10)


def test_float32_exact_close_to_float64():
    target, spec = make_target("majority", 11), NetworkSpec(11, 8, 1)
    a = estimate_inal(target, spec, n_inits=2, method="exact", dtype=torch.float32)
    b = estimate_inal(target, spec, n_inits=2, method="exact", dtype=torch.float64)
    np.testing.assert_allclose(a.per_layer, b.per_layer, rtol=1e-5)


def test_no_bias_gives_zero_first_layer_alignment_with_odd_parity():
    target = make_target("parity", 6, c=3, subset="random", subset_seed=2)
    without = estimate_inal(target, NetworkSpec(6, 8, 1, bias=False), n_inits=4, method="exact", dtype=torch.float64)
    with_bias = estimate_inal(target, NetworkSpec(6, 8, 1, bias=True), n_inits=4, method="exact", dtype=torch.float64)
    assert without.per_layer[0] < 1e-28
    assert with_bias.per_layer[0] > 1e-6


def _plain_square_estimate(target, spec, seeds, m, input_seed):
    """The biased estimator (mean of f v over m inputs)^2, first layer, computed here independently."""
    stack = init_relu_stack(spec, seeds, dtype=torch.float64)
    x = sample_cube(m, target.n, make_generator(input_seed, "biased"), dtype=torch.float64)
    h = stack.layer_outputs(x)[0]  # (R, m, w)
    corr = (target(x)[None, :, None] * h).mean(1)
    return corr.square().mean().item()


@pytest.mark.parametrize("method", ["mc", "junta"])
def test_sampled_estimators_are_unbiased(method):
    target, spec = make_target("parity", 8, c=2), NetworkSpec(8, 4, 1)
    exact = estimate_inal(target, spec, n_inits=2, method="exact", dtype=torch.float64).per_layer
    m, reps = 64, 200
    vals = np.array([
        estimate_inal(target, spec, n_inits=2, method=method, n_inputs=m, input_seed=s, dtype=torch.float64).per_layer
        for s in range(reps)
    ])
    z = (vals.mean(0) - exact) / (vals.std(0, ddof=1) / math.sqrt(reps))
    assert np.all(np.abs(z) < 4), z
    if method == "mc":
        # the plain square of the sample mean fails the same test: bias Var(fv)/m ~ 0.5/64 >> INAL
        seeds = _init_seeds(0, 2)
        biased = np.array([_plain_square_estimate(target, spec, seeds, m, s) for s in range(reps)])
        zb = (biased.mean() - exact[0]) / (biased.std(ddof=1) / math.sqrt(reps))
        assert zb > 8, zb


def test_junta_reduces_variance_and_matches_plain_forward():
    target, spec = make_target("parity", 10, c=2), NetworkSpec(10, 4, 1)
    kw = dict(n_inits=2, n_inputs=256, dtype=torch.float64)
    mc = np.array([estimate_inal(target, spec, method="mc", input_seed=s, **kw).per_layer[0] for s in range(60)])
    junta = np.array([estimate_inal(target, spec, method="junta", input_seed=s, **kw).per_layer[0] for s in range(60)])
    # the same inputs per init: variance over input seeds only (inits fixed by seed=0)
    ratio = mc.var(ddof=1) / junta.var(ddof=1)
    assert ratio > 30, ratio
    # split (first-layer broadcast) engine equals the explicit forward pass on the same samples
    a = estimate_inal(target, spec, method="junta", input_seed=3, **kw)
    b = estimate_inal(target, spec, method="junta", input_seed=3, engine="plain", **kw)
    assert a.n_inputs == b.n_inputs == 256
    np.testing.assert_allclose(a.per_init, b.per_init, rtol=1e-9, atol=1e-16)


def test_junta_with_all_bits_relevant_is_exact():
    target, spec = make_target("full_parity", 5), NetworkSpec(5, 3, 2)
    a = estimate_inal(target, spec, n_inits=2, method="junta", dtype=torch.float64)
    b = estimate_inal(target, spec, n_inits=2, method="exact", dtype=torch.float64)
    assert a.method == "exact"
    np.testing.assert_allclose(a.per_layer, b.per_layer)


@pytest.mark.parametrize("method,depth", [("exact", 1), ("exact", 2), ("mc", 1), ("junta", 1), ("junta", 2)])
def test_tiny_memory_budget_gives_the_same_answer(method, depth):
    target, spec = make_target("parity", 9, c=2), NetworkSpec(9, 8, depth)
    kw = dict(n_inits=5, method=method, n_inputs=1000, dtype=torch.float64)
    big = estimate_inal(target, spec, **kw)
    small = estimate_inal(target, spec, memory_budget_bytes=300_000, **kw)
    np.testing.assert_allclose(small.per_init, big.per_init, rtol=1e-9, atol=1e-15)
    with pytest.raises(ValueError, match="memory_budget_bytes=100 is too small"):
        estimate_inal(target, spec, memory_budget_bytes=100, **kw)


def test_inits_prefix_and_seed_dependence():
    target, spec = make_target("majority", 7), NetworkSpec(7, 4, 1)
    four = estimate_inal(target, spec, n_inits=4, method="exact", dtype=torch.float64)
    two = estimate_inal(target, spec, n_inits=2, method="exact", dtype=torch.float64)
    other = estimate_inal(target, spec, n_inits=2, seed=1, method="exact", dtype=torch.float64)
    np.testing.assert_allclose(four.per_init[:2], two.per_init)
    assert not np.allclose(other.per_init, two.per_init)
    calls = []
    estimate_inal(target, spec, n_inits=3, method="mc", n_inputs=300, memory_budget_bytes=60_000,
                  progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (3, 3) and len(calls) >= 2 and all(a < b for (a, _), (b, _) in zip(calls, calls[1:]))


def test_validation_errors_and_memory_helpers():
    target, spec = make_target("parity", 6, c=2), NetworkSpec(6, 4, 1)
    with pytest.raises(ValueError, match="method must be one of"):
        estimate_inal(target, spec, n_inits=2, method="sgd")
    with pytest.raises(ValueError, match="n_inits must be a positive integer, got 0"):
        estimate_inal(target, spec, n_inits=0)
    with pytest.raises(ValueError, match="spec.input_dim=7 must equal the target's n=6"):
        estimate_inal(target, NetworkSpec(7, 4, 1), n_inits=2)
    with pytest.raises(ValueError, match="n_inputs must be None or an integer >= 2"):
        estimate_inal(target, spec, n_inits=2, method="mc", n_inputs=1)
    with pytest.raises(ValueError, match="n=40 exceeds"):
        check_inal_request(make_target("majority", 40), NetworkSpec(40, 4, 1), n_inits=1, method="exact")
    assert check_inal_request(make_target("parity", 30, c=2), NetworkSpec(30, 4, 2), n_inits=1) == "junta"
    assert check_inal_request(make_target("majority", 30), NetworkSpec(30, 4, 2), n_inits=1) == "mc"
    assert check_inal_request(target, spec, n_inits=1) == "exact"
    small, wide = exact_memory_bytes(10, NetworkSpec(10, 4, 1)), exact_memory_bytes(10, NetworkSpec(10, 400, 3))
    assert 0 < small < wide


@pytest.mark.gpu
def test_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("CUDA not available")
    target, spec = make_target("majority", 11), NetworkSpec(11, 8, 1)
    for method in ("exact", "mc", "junta"):
        a = estimate_inal(target, spec, n_inits=3, method=method, n_inputs=2048, dtype=torch.float64)
        b = estimate_inal(target, spec, n_inits=3, method=method, n_inputs=2048, dtype=torch.float64, device="cuda")
        np.testing.assert_allclose(a.per_init, b.per_init, rtol=1e-9, atol=1e-15)


@pytest.mark.slow  # exact INAL at n = 14: every one of 2^14 inputs through 16 width-64 networks
@pytest.mark.parametrize("k", [1, 2])
def test_parity_first_layer_inal_order_of_magnitude(k):
    # SCIENCE.md §7: roughly 0.1-0.25 n^-k (a sanity band, not an oracle)
    n = 14
    res = estimate_inal(make_target("parity", n, c=k), NetworkSpec(n, 64, 1), n_inits=16, method="exact")
    scaled = res.per_layer[0] * n**k
    assert 0.05 < scaled < 0.5, scaled
