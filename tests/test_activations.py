"""Hidden activations (relu, sign, tanh, identity) in every INAL estimator and in noisy GD.

References: INAL by plain per-neuron loops in Python floats (``math`` functions, not torch's), the
U-statistics recomputed by loops on the same samples, the two exact-zero identities of SCIENCE.md §3
(a bias-free sign network is odd, so it has zero correlation with every even parity; a bias-free
ReLU first layer has zero correlation with every odd parity of degree >= 3), central finite
differences of the loss for the backward pass, and autograd of the straight-through rule for sign.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inal_core.activations import ACTIVATIONS, get_activation
from inal_core.inal import _init_seeds, _sample_rows, estimate_inal
from inal_core.losses import loss_value
from inal_core.ngd import NGDConfig, stack_gradient, train_noisy_gd
from inal_core.networks import NetworkSpec, init_relu_stack
from inal_core.specs import check_inal_request, resolve_method
from inal_core.targets import extend, make_target

ACTS = ("relu", "sign", "tanh", "identity")
PHI = {  # plain-Python references, independent of the registry
    "relu": lambda z: max(z, 0.0),
    "sign": lambda z: 1.0 if z > 0 else (-1.0 if z < 0 else 0.0),
    "tanh": math.tanh,
    "identity": lambda z: z,
}


def _neurons(stack, r, x, activation):
    """Every neuron's value at the ±1 input ``x`` (a list), layer by layer, for init ``r``: plain loops."""
    spec, phi = stack.spec, PHI[activation]
    h, layers = [float(v) for v in x], []
    for l in range(spec.num_layers):
        W = stack.weights[l][r].tolist()
        b = None if stack.biases[l] is None else stack.biases[l][r].tolist()
        z = [sum(h[i] * W[i][o] for i in range(len(h))) + (b[o] if b else 0.0) for o in range(spec.layer_sizes[l + 1])]
        h = z if l == spec.num_layers - 1 else [phi(v) for v in z]
        layers.append(h)
    return layers


def _f(target, x):
    return float(target(torch.tensor([x], dtype=torch.float64))[0])


def brute_force_per_init(target, spec, n_inits, seed=0):
    """Each init's neuron-mean of corr_v^2 per layer, corr_v = 2^-n sum_x f(x) v(x), by enumeration."""
    stack = init_relu_stack(spec, _init_seeds(seed, n_inits), dtype=torch.float64)
    n, out = target.n, np.zeros((n_inits, spec.num_layers))
    cube = [[1 - 2 * ((j >> i) & 1) for i in range(n)] for j in range(2**n)]
    fs = [_f(target, x) for x in cube]
    for r in range(n_inits):
        corr = [[0.0] * d for d in spec.layer_sizes[1:]]
        for x, fx in zip(cube, fs):
            for l, h in enumerate(_neurons(stack, r, x, spec.activation)):
                for o, v in enumerate(h):
                    corr[l][o] += fx * v / 2**n
        out[r] = [sum(c * c for c in layer) / len(layer) for layer in corr]
    return out


# n = 5, 6 and majority at 10: the split engine broadcasts (M <= 16); planted at 10: it sorts (M = 32);
# depth 2: the plain engine
EXACT_CASES = [("majority", None, 5, 1, True), ("parity", 2, 6, 2, True), ("planted", 2.0, 10, 1, True),
               ("majority", None, 10, 1, False)]


@pytest.mark.parametrize("name,c,n,depth,bias", EXACT_CASES)
@pytest.mark.parametrize("activation", ACTS)
def test_exact_inal_equals_brute_force(activation, name, c, n, depth, bias):
    target = make_target(name, n, c=c)
    spec = NetworkSpec(n, 3 if n < 10 else 2, depth, bias=bias, activation=activation)
    expected = brute_force_per_init(target, spec, n_inits=2, seed=3)
    for engine in ("auto", "plain"):
        res = estimate_inal(target, spec, n_inits=2, seed=3, method="exact", dtype=torch.float64, engine=engine)
        np.testing.assert_allclose(res.per_init, expected, rtol=1e-10, atol=1e-15, err_msg=engine)


def _u_stat(ys):
    m = len(ys)
    return (sum(ys) ** 2 - sum(y * y for y in ys)) / (m * (m - 1))


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("activation", ACTS)
def test_mc_equals_loop_u_statistic_on_the_same_samples(activation, depth):
    target = make_target("majority", 7)
    spec, m = NetworkSpec(7, 3, depth, activation=activation), 24
    res = estimate_inal(target, spec, n_inits=2, method="mc", n_inputs=m, input_seed=4, dtype=torch.float64)
    stack = init_relu_stack(spec, _init_seeds(0, 2), dtype=torch.float64)
    x = _sample_rows(4, range(2), 0, m, 7, "cpu", torch.float64)  # the estimator's samples
    for r in range(2):
        rows = [[float(v) for v in x[r, i]] for i in range(m)]
        vals = [_neurons(stack, r, row, activation) for row in rows]
        fs = [_f(target, row) for row in rows]
        for l, d in enumerate(spec.layer_sizes[1:]):
            expected = sum(_u_stat([f * v[l][o] for f, v in zip(fs, vals)]) for o in range(d)) / d
            assert res.per_init[r, l] == pytest.approx(expected, rel=1e-9, abs=1e-15)


# parity c=2 on 8 bits: M = 4 (broadcast); c=5: M = 32 (sorted split form, or plain for tanh)
@pytest.mark.parametrize("c,depth", [(2, 1), (5, 1), (2, 2)])
@pytest.mark.parametrize("activation", ACTS)
def test_junta_equals_loop_on_the_same_samples(activation, c, depth):
    n = 8
    target = make_target("parity", n, c=c)
    spec, n_inputs = NetworkSpec(n, 3, depth, activation=activation), 256
    J = list(target.relevant_bits)
    M = 2 ** len(J)
    m = n_inputs // M
    res = estimate_inal(target, spec, n_inits=2, method="junta", n_inputs=n_inputs, input_seed=6, dtype=torch.float64)
    assert res.method == "junta" and res.n_inputs == m * M
    stack = init_relu_stack(spec, _init_seeds(0, 2), dtype=torch.float64)
    x = _sample_rows(6, range(2), 0, m, n, "cpu", torch.float64)
    assignments = [[1 - 2 * ((j >> i) & 1) for i in range(len(J))] for j in range(M)]
    for r in range(2):
        ys = [[[0.0] * d for d in spec.layer_sizes[1:]] for _ in range(m)]  # per sample, layer, neuron
        for s in range(m):
            for a in assignments:
                row = [float(v) for v in x[r, s]]
                for i, bit in zip(J, a):
                    row[i] = float(bit)
                fx = _f(target, row)
                for l, h in enumerate(_neurons(stack, r, row, activation)):
                    for o, v in enumerate(h):
                        ys[s][l][o] += fx * v / M
        for l, d in enumerate(spec.layer_sizes[1:]):
            expected = sum(_u_stat([ys[s][l][o] for s in range(m)]) for o in range(d)) / d
            assert res.per_init[r, l] == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("n,k", [(8, 2), (8, 4), (10, 2), (10, 6)])
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("activation", [name for name, act in ACTIVATIONS.items() if act.odd])
def test_bias_free_odd_network_is_uncorrelated_with_every_even_parity(activation, n, k, depth):
    # sign (and tanh, identity) is odd, so a bias-free network is odd in x (every layer, output
    # included), and an even parity is even: corr = 2^-n sum_x f(x) v(x) pairs x with -x and cancels
    assert activation in ("sign", "tanh", "identity")
    target = make_target("parity", n, c=k, subset="random", subset_seed=k)
    spec = NetworkSpec(n, 5, depth, bias=False, activation=activation)
    for engine in ("auto", "plain"):
        res = estimate_inal(target, spec, n_inits=3, method="exact", dtype=torch.float64, engine=engine)
        if activation == "sign":  # hidden neurons are ±1: sums of ±1, exactly 0 in floating point
            assert np.all(res.per_init[:, :-1] == 0.0), (engine, res.per_init)
        assert np.all(res.per_init < 1e-28), (engine, res.per_init)
    # the control: with biases, or with an odd parity, the same networks do correlate (an identity
    # network is affine: it never sees degree >= 2, so its control is degree 1)
    if activation == "identity":
        degree_1 = estimate_inal(make_target("parity", n, c=1), spec, n_inits=3, method="exact", dtype=torch.float64)
        assert degree_1.per_layer[0] > 1e-3
        return
    with_bias = estimate_inal(target, NetworkSpec(n, 5, depth, activation=activation), n_inits=3, method="exact",
                              dtype=torch.float64)
    odd = estimate_inal(make_target("parity", n, c=k - 1), spec, n_inits=3, method="exact", dtype=torch.float64)
    assert with_bias.per_layer[0] > 1e-8 and odd.per_layer[0] > 1e-8


@pytest.mark.parametrize("n,k", [(7, 3), (10, 3), (10, 5)])
@pytest.mark.parametrize("depth", [1, 2])
def test_bias_free_relu_first_layer_is_uncorrelated_with_odd_parities_of_degree_3_or_more(n, k, depth):
    # relu(z) = (z + |z|) / 2: z = w.x is linear (no weight on degree >= 2) and |w.x| is even in x
    target = make_target("parity", n, c=k, subset="random", subset_seed=1)
    spec = NetworkSpec(n, 6, depth, bias=False)
    for engine in ("auto", "plain"):
        res = estimate_inal(target, spec, n_inits=3, method="exact", dtype=torch.float64, engine=engine)
        assert np.all(res.per_init[:, 0] < 1e-28), (engine, res.per_init)
    degree_1 = estimate_inal(make_target("parity", n, c=1), spec, n_inits=3, method="exact", dtype=torch.float64)
    assert degree_1.per_layer[0] > 1e-3  # the control: degree 1 is not odd >= 3


def test_registry_entries_and_planning():
    assert set(ACTIVATIONS) >= set(ACTS)
    allowed = r"activation must be one of \('relu', 'sign', 'tanh', 'identity'\), got 'gelu'"
    with pytest.raises(ValueError, match=allowed):
        NetworkSpec(4, 2, 1, activation="gelu")
    with pytest.raises(ValueError, match="activation must be one of"):
        get_activation("gelu")
    # auto: exact beyond n = 16 at depth 1 only where the split engine serves the activation
    t = make_target("majority", 19)
    assert resolve_method("auto", t, NetworkSpec(19, 4, 1)) == "exact"
    assert resolve_method("auto", t, NetworkSpec(19, 4, 1, activation="sign")) == "exact"
    assert resolve_method("auto", t, NetworkSpec(19, 4, 1, activation="tanh")) == "mc"
    assert check_inal_request(t, NetworkSpec(19, 4, 1, activation="tanh"), n_inits=1, method="exact") == "exact"


# ----------------------------------------------------------------------------- noisy GD


def _mean_loss(stack, x, y, loss):
    return loss_value(loss, stack(x), y).mean(1)  # (R,)


@pytest.mark.parametrize("activation", ["relu", "tanh", "identity"])
@pytest.mark.parametrize("loss", ["squared", "correlation"])
def test_backward_pass_matches_finite_differences(activation, loss):
    torch.manual_seed(0)
    spec = NetworkSpec(5, 4, 2, activation=activation)
    stack = init_relu_stack(spec, [11, 12], dtype=torch.float64)
    x = torch.randint(0, 2, (40, 5), generator=torch.Generator().manual_seed(1)).double() * 2 - 1
    y = x[:, 0] * x[:, 1]
    if activation == "relu":  # away from the kinks: no pre-activation within 1e-3 of 0
        h, margin = stack._expand_input(x), math.inf
        for l in range(spec.depth):
            z = torch.baddbmm(stack.biases[l].unsqueeze(1), h, stack.weights[l])
            margin, h = min(margin, z.abs().min().item()), z.relu()
        assert margin > 1e-3, margin
    grads, _ = stack_gradient(stack, x, y, loss)
    eps = 1e-6
    for p, g in zip(stack.parameters(), grads):
        flat_p, flat_g = p.view(p.shape[0], -1), g.reshape(g.shape[0], -1)
        for j in range(flat_p.shape[1]):
            old = flat_p[:, j].clone()
            flat_p[:, j] = old + eps
            up = _mean_loss(stack, x, y, loss)
            flat_p[:, j] = old - eps
            down = _mean_loss(stack, x, y, loss)
            flat_p[:, j] = old
            np.testing.assert_allclose(flat_g[:, j], (up - down) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_sign_backward_is_the_straight_through_hardtanh_rule():
    # forward sign(z); backward as if it were hardtanh(z) = clip(z, -1, 1): phi'(z) = 1[|z| <= 1]
    spec = NetworkSpec(6, 5, 2, activation="sign")
    stack = init_relu_stack(spec, [3, 4], dtype=torch.float64)
    x = torch.randint(0, 2, (64, 6), generator=torch.Generator().manual_seed(2)).double() * 2 - 1
    y = x[:, 0] * x[:, 1] * x[:, 2]
    grads, mean_loss = stack_gradient(stack, x, y, "squared")
    params = [p.clone().requires_grad_(True) for p in stack.parameters()]
    h, some_inactive = x.unsqueeze(0).expand(2, -1, -1), False
    for l in range(spec.num_layers):
        z = torch.baddbmm(params[2 * l + 1].unsqueeze(1), h, params[2 * l])
        if l < spec.depth:
            ste = z.clamp(-1, 1)
            some_inactive |= bool((z.abs() > 1).any())
            h = ste + (z.sign() - ste).detach()  # value sign(z), gradient that of clip(z, -1, 1)
        else:
            h = z
    loss = (h.squeeze(-1) - y).square().mean(1)
    reference = torch.autograd.grad(loss.sum(), params)
    assert some_inactive  # the rule's zero branch is exercised
    np.testing.assert_allclose(mean_loss, loss.detach(), rtol=1e-12)
    for g, ref in zip(grads, reference):
        np.testing.assert_allclose(g, ref, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("activation", ACTS)
def test_noisy_gd_runs_with_each_activation(activation):
    # the observables are those of the activation's network: correlation at T = 0 equals the
    # exact E_x[f NN] computed here from the initial parameters
    target = extend(make_target("parity", 3, c=1), 6)
    spec = NetworkSpec(6, 8, 2, activation=activation)
    config = NGDConfig(T=30, gamma=0.05, sigma=0.0, checkpoints=[0, 30], n_eval=4096, batch=0)
    res = train_noisy_gd(target, spec, config, [5, 6], dtype=torch.float64)
    assert res.status == ["ok", "ok"]
    init = init_relu_stack(spec, [5, 6], dtype=torch.float64)
    cube = torch.tensor([[1 - 2 * ((j >> i) & 1) for i in range(6)] for j in range(64)], dtype=torch.float64)
    exact0 = (init(cube) * target(cube)).mean(1).numpy()
    np.testing.assert_allclose(res.curves["corr"][:, 0], exact0, atol=5 * res.curves["corr_se"][:, 0].max() + 1e-12)
    if activation != "sign":  # exact full-batch GD without noise decreases the squared loss here
        assert np.all(res.curves["loss"][:, -1] < res.curves["loss"][:, 0])


# ----------------------------------------------------------------------------- ReLU unchanged

GOLDEN = Path(__file__).parent / "data" / "relu_results_7e41b71.json"


def _relu_results(dtype, **network):
    """The computations whose results commit 7e41b71 (ReLU only, before the registry) stored in GOLDEN."""
    dn, out = str(dtype)[-2:], {}

    def add(name, arr):
        out[f"{name}_{dn}"] = [float(v).hex() for v in np.asarray(arr, dtype=np.float64).ravel()]

    def est(name, n, c, width, depth, method, n_inputs=None, bias=True):
        spec = NetworkSpec(n, width, depth, bias=bias, **network)
        target = make_target(name, n, c=c)
        return estimate_inal(target, spec, n_inits=3, method=method, n_inputs=n_inputs, dtype=dtype).per_init

    add("exact_split", est("majority", 11, None, 8, 1, "exact"))
    add("exact_plain_d2", est("parity", 7, 3, 5, 2, "exact"))
    add("mc", est("majority", 9, None, 6, 2, "mc", 512))
    add("junta_sort", est("parity", 12, 5, 6, 1, "junta", 2048))
    add("junta_bcast", est("parity", 12, 2, 6, 1, "junta", 2048, bias=False))
    for N, batch in ((8, None), (10, 64)):
        config = NGDConfig(T=20, gamma=0.1, sigma=0.01, batch=batch, checkpoints=3, n_eval=256)
        r = train_noisy_gd(extend(make_target("parity", 4, c=2), N), NetworkSpec(N, 6, 2, **network), config, [1, 2],
                           dtype=dtype)
        add(f"ngd_{N}", np.concatenate([r.curves[k].ravel() for k in ("corr", "loss", "param_norm")]))
    return out


# Bits are reproducible on one machine, not across machines: the BLAS kernels torch dispatches to
# (by CPU instruction set) sum in different orders, so GOLDEN (written on the machine of 7e41b71)
# is matched to a few hundred ulps of the dtype's accumulated rounding (seen: 7.7e-6 relative in
# float32 and 7e-15 in float64 between two Xeons), while on this machine the default network and
# an explicit relu must give the very same bits.
_REL = {torch.float32: 1e-4, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_results_match_the_engines_before_the_registry(dtype):
    # every engine path (split broadcast and sort, plain, mc, junta, noisy GD exact and batched):
    # the default network is bit-identical to network.activation=relu here, and both give what the
    # ReLU-only engines of 7e41b71 gave up to the machine's summation order (no ENGINE_VERSION change)
    golden = json.loads(GOLDEN.read_text())
    default, relu = _relu_results(dtype), _relu_results(dtype, activation="relu")
    assert default == relu
    assert sorted(default) == sorted(k for k in golden if k.endswith(str(dtype)[-2:]))
    for key, bits in default.items():
        got = np.array([float.fromhex(b) for b in bits])
        want = np.array([float.fromhex(b) for b in golden[key]])
        np.testing.assert_allclose(got, want, rtol=_REL[dtype], atol=_REL[dtype] * np.abs(want).max(),
                                   err_msg=key)


@pytest.mark.parametrize("activation", ["relu", "sign", "identity"])
def test_split_forms_count_ties_as_the_activation_does(activation):
    # integer weights make p_a + c_h = 0 exactly for many (a, h): sign(0) = 0 must count 0 (the
    # step form reads the prefix sums at both ends of the ties); the sorted path (M = 32 > 16)
    from inal_core.cube import enumerate_cube
    from inal_core.inal_split import SplitFirstLayer

    gen = torch.Generator().manual_seed(7)
    W = (torch.randint(0, 2, (1, 10, 4), generator=gen) * 2 - 1).double()  # (1, n, G) in ±1
    patterns = (torch.randint(0, 2, (2, 32), generator=gen) * 2 - 1).double()  # D = 2 patterns on the low bits
    x_low, x_high = enumerate_cube(5, dtype=torch.float64), enumerate_cube(5, dtype=torch.float64)
    pid = torch.arange(32) % 2
    y = SplitFirstLayer(W, None, list(range(5)), list(range(5, 10)), patterns, activation).hidden(x_high, pid)[0]
    phi = PHI[activation]
    ties = 0
    for v in range(4):
        for h in range(32):
            zs = [float(x_low[a] @ W[0, :5, v] + x_high[h] @ W[0, 5:, v]) for a in range(32)]
            ties += zs.count(0.0)
            expected = sum(patterns[pid[h], a].item() * phi(z) for a, z in enumerate(zs)) / 32
            assert y[v, h].item() == pytest.approx(expected, abs=1e-12)
    assert ties > 1000  # ten ±1 terms sum to 0 for C(10,5)/2^10 ~ 25 % of the inputs
