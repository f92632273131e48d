"""Noisy GD engine against independent references: autograd on torch.nn models, direct sums, statistics."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from inal_core.networks import NetworkSpec, ReluStack, init_relu_stack
from inal_core.ngd import NGDConfig, ngd_flops_per_step, stack_gradient, train_noisy_gd
from inal_core.targets import extend, make_target, resolve_extension
from inal_core.streams import gaussians, mix64_reference, rademacher_rows, random_words, step_keys, stream_keys

F64 = torch.float64


class SubsetParity:
    """chi_S on n bits, defined here so the tests do not depend on the target registry."""

    def __init__(self, n: int, bits):
        self.n, self.bits = n, tuple(bits)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., list(self.bits)].prod(-1)


def all_inputs(n: int) -> torch.Tensor:
    """Every point of {-1,+1}^n (order irrelevant for population means), float64, by itertools."""
    return torch.tensor(list(itertools.product([1.0, -1.0], repeat=n)), dtype=F64)


def to_sequential(stack: ReluStack, r: int) -> torch.nn.Sequential:
    """Run r of a stack as an ordinary torch.nn model (Linear/ReLU) in float64 with the same weights."""
    layers: list[torch.nn.Module] = []
    for l, (w, b) in enumerate(zip(stack.weights, stack.biases)):
        lin = torch.nn.Linear(w.shape[1], w.shape[2], bias=b is not None).double()
        with torch.no_grad():
            lin.weight.copy_(w[r].T)
            if b is not None:
                lin.bias.copy_(b[r])
        layers.append(lin)
        if l < len(stack.weights) - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def sequential_params(model: torch.nn.Sequential) -> list[torch.Tensor]:
    """Parameters in ReluStack order (W as (d_in, d_out), then b)."""
    out = []
    for m in model:
        if isinstance(m, torch.nn.Linear):
            out.append(m.weight.T)
            if m.bias is not None:
                out.append(m.bias)
    return out


REF_LOSSES = {
    "squared": lambda yhat, y: (yhat - y) ** 2,
    "correlation": lambda yhat, y: -y * yhat,
    "hinge": lambda yhat, y: torch.clamp(1 - y * yhat, min=0),
}


def reference_gradient(model, x, y, loss):
    """Autograd gradient of the mean loss, in ReluStack layout (W transposed to (d_in, d_out))."""
    model.zero_grad()
    REF_LOSSES[loss](model(x).squeeze(-1), y).mean().backward()
    return [p.grad.T if p.dim() == 2 else p.grad for p in model.parameters()]


@pytest.mark.parametrize("loss", ["squared", "correlation", "hinge"])
@pytest.mark.parametrize("bias", [True, False])
def test_stack_gradient_matches_autograd(loss, bias):
    spec = NetworkSpec(5, 6, 2, bias=bias)
    stack = init_relu_stack(spec, [3, 4], dtype=F64)
    stack.weights[-1].mul_(25.0)  # large outputs so the hinge is active on some inputs and not on others
    x = all_inputs(5)
    target = SubsetParity(5, [0, 2])
    y = target(x)
    grads, mean_loss = stack_gradient(stack, x, y, loss)
    for r in range(2):
        model = to_sequential(stack, r)
        if loss == "hinge":
            margin = y * model(x).squeeze(-1)
            assert (margin < 1).any() and (margin > 1).any()
        ref = reference_gradient(model, x, y, loss)
        for g, gr in zip(grads, ref):
            torch.testing.assert_close(g[r], gr, rtol=1e-10, atol=1e-12)
        ref_loss = REF_LOSSES[loss](model(x).squeeze(-1), y).mean()
        assert abs(mean_loss[r].item() - ref_loss.item()) < 1e-10


@pytest.mark.parametrize("precision,A", [("clip", 0.02), ("round", 50.0), ("clip", 1e9)])
@pytest.mark.parametrize("schedule", ["constant", "inverse_sqrt"])
def test_noiseless_steps_match_autograd(precision, A, schedule):
    """T steps, sigma = 0, exact gradient, float64: the update theta - gamma_t [g]_A of an nn.Sequential."""
    N, T, seeds, gammas = 4, 3, [11, 12], [0.3, 0.7]
    spec = NetworkSpec(N, 5, 2)
    target = SubsetParity(N, [1])
    cfg = NGDConfig(T=T, gamma=gammas, sigma=0.0, A=A, precision=precision, gamma_schedule=schedule, checkpoints=1, n_eval=16)
    res = train_noisy_gd(target, spec, cfg, seeds, dtype=F64)
    assert list(res.batch_used) == [0, 0]
    x = all_inputs(N)
    y = target(x)
    init = init_relu_stack(spec, seeds, dtype=F64)
    saw_clip = False
    for r, gamma in enumerate(gammas):
        model = to_sequential(init, r)
        for t in range(1, T + 1):
            ref = reference_gradient(model, x, y, "squared")
            if precision == "clip":
                saw_clip |= any((g.abs() > A).any().item() for g in ref)
                ref = [g.clamp(-A, A) for g in ref]
            else:
                ref = [torch.round(g * A) / A for g in ref]
            step = gamma / math.sqrt(t) if schedule == "inverse_sqrt" else gamma
            with torch.no_grad():
                for p, g in zip(sequential_params(model), ref):
                    p.sub_(step * g)
        for p_engine, p_ref in zip(res.params.parameters(), sequential_params(model)):
            torch.testing.assert_close(p_engine[r], p_ref.detach(), rtol=1e-9, atol=1e-12)
    if precision == "clip" and A < 1:
        assert saw_clip  # the clipping branch was exercised


def test_noise_variance_is_sigma_squared_not_scaled_by_gamma():
    spec = NetworkSpec(16, 32, 2)  # E = 16*32+32+32*32+32+33 = 1633
    sigma, T = 0.1, 2
    cfg = NGDConfig(T=T, gamma=1e-12, sigma=sigma, checkpoints=1, n_eval=16, batch=8)
    res = train_noisy_gd(SubsetParity(16, [0]), spec, cfg, [5, 6], dtype=F64)
    init = init_relu_stack(spec, [5, 6], dtype=F64)
    inc = torch.cat([(p - q).reshape(2, -1) for p, q in zip(res.params.parameters(), init.parameters())], 1)  # (2, E)
    E = inc.shape[1]
    assert E == spec.num_parameters
    var_expected = T * sigma**2  # two i.i.d. N(0, sigma^2 I) increments; gamma * grad is ~1e-12
    for r in range(2):
        v = inc[r].var().item()
        assert abs(v / var_expected - 1) < 5 * math.sqrt(2 / E)
        assert abs(inc[r].mean().item()) < 5 * math.sqrt(var_expected / E)
        within_1sd = (inc[r].abs() < math.sqrt(var_expected)).double().mean().item()
        assert abs(within_1sd - 0.6827) < 5 * math.sqrt(0.6827 * 0.3173 / E)
    # different seeds draw independent noise
    rho = torch.corrcoef(inc)[0, 1].item()
    assert abs(rho) < 5 / math.sqrt(E)


def test_random_words_bit_exact_against_python_splitmix64():
    """The int64 tensor arithmetic (wrap-around, logical shifts) equals unsigned 64-bit Python arithmetic."""
    keys = stream_keys([0, 123456789], "noise")
    words = random_words(keys, 7, 1000, 16)
    for r in range(2):
        key = int(step_keys(keys, 7)[r]) & (2**64 - 1)
        expected = [mix64_reference(key + (i + 1) * 0x9E3779B97F4A7C15) for i in range(1000, 1016)]
        assert [int(w) & (2**64 - 1) for w in words[r]] == expected
    # the per-step key itself: mix64(k XOR mix64(step * G + C))
    k0 = int(keys[1]) & (2**64 - 1)
    s = mix64_reference(7 * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019)
    assert int(step_keys(keys, 7)[1]) & (2**64 - 1) == mix64_reference(k0 ^ s)


def test_gaussian_stream_statistics():
    z = gaussians(stream_keys([1, 2], "noise"), step=3, count=200_001, dtype=F64)
    n = z.shape[1]
    assert abs(z.mean().item()) < 5 / math.sqrt(2 * n)
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / (2 * n))
    assert abs((z**4).mean().item() - 3) < 5 * math.sqrt(96 / (2 * n))  # Var(z^4) = 105 - 9
    pairs = z[:, : n - 1]
    assert abs((pairs[:, ::2] * pairs[:, 1::2]).mean().item()) < 5 / math.sqrt(n - 1)  # Box-Muller pair members uncorrelated


def test_rademacher_rows_uniform_and_chunk_consistent():
    keys = stream_keys([7, 8, 9], "batch")
    x = rademacher_rows(keys, 1, 0, 4096, 40, dtype=F64)  # (3, 4096, 40): 2 words per row
    assert set(x.unique().tolist()) == {-1.0, 1.0}
    m = x.shape[0] * x.shape[1]
    assert (x.mean(dim=(0, 1)).abs() < 5 / math.sqrt(m)).all()
    pair = (x[..., :-1] * x[..., 1:]).mean(dim=(0, 1))
    assert (pair.abs() < 5 / math.sqrt(m)).all()
    part = rademacher_rows(keys[1:2], 1, 100, 50, 40, dtype=F64)
    assert torch.equal(part[0], x[1, 100:150])
    assert not torch.equal(rademacher_rows(keys, 2, 0, 4096, 40, dtype=F64), x)  # a fresh batch each step


def test_stack_equals_runs_alone_and_rerun_is_identical():
    spec = NetworkSpec(10, 8, 2)
    target = SubsetParity(10, [0, 3])
    seeds, gammas, sigmas = [21, 22, 23], [0.05, 0.2, 0.1], [0.0, 1e-3, 1e-2]
    for batch in (64, None):  # fresh batches, then the exact population gradient (2^10 inputs)
        cfg = NGDConfig(T=12, gamma=gammas, sigma=sigmas, batch=batch, checkpoints=3, n_eval=256)
        stacked = train_noisy_gd(target, spec, cfg, seeds, dtype=F64)
        for r in range(3):
            cfg1 = NGDConfig(T=12, gamma=gammas[r], sigma=sigmas[r], batch=batch, checkpoints=3, n_eval=256)
            alone = train_noisy_gd(target, spec, cfg1, [seeds[r]], dtype=F64)
            for key in ("corr", "corr_se", "acc", "loss", "param_norm"):
                np.testing.assert_allclose(stacked.curves[key][r], alone.curves[key][0], rtol=1e-9, atol=1e-12)
            for p, q in zip(stacked.params.parameters(), alone.params.parameters()):
                torch.testing.assert_close(p[r], q[0], rtol=1e-9, atol=1e-12)
    cfg = NGDConfig(T=10, gamma=gammas, sigma=sigmas, batch=32, checkpoints=2, n_eval=128)
    a = train_noisy_gd(target, spec, cfg, seeds)
    b = train_noisy_gd(target, spec, cfg, seeds)
    for key in ("step", "corr", "corr_se", "acc", "loss", "param_norm"):
        assert np.array_equal(a.curves[key], b.curves[key])
    for p, q in zip(a.params.parameters(), b.params.parameters()):
        assert torch.equal(p, q)


def test_divergent_run_is_frozen_and_others_go_on():
    spec = NetworkSpec(6, 8, 2)
    target = SubsetParity(6, [0])
    cfg = NGDConfig(T=30, gamma=[0.05, 1e30], sigma=[1e-3, 0.0], checkpoints=4, n_eval=512)
    res = train_noisy_gd(target, spec, cfg, [1, 2])
    assert res.status == ["ok", "diverged"]
    assert res.diverged_step[0] == -1 and 1 <= res.diverged_step[1] <= 30
    assert all(torch.isfinite(p).all() for p in res.params.parameters())  # frozen at the last finite values
    assert np.isnan(res.corr[1]) and np.isfinite(res.corr[0])
    alone = train_noisy_gd(target, spec, NGDConfig(T=30, gamma=0.05, sigma=1e-3, checkpoints=4, n_eval=512), [1])
    np.testing.assert_allclose(res.curves["corr"][0], alone.curves["corr"][0], rtol=1e-5, atol=1e-6)


def test_evaluation_overflow_with_finite_parameters_is_diverged():
    """One huge step: the parameters stay finite (~1e13 < float32's 3.4e38), the network's output
    is ~1e26, so the squared loss on evaluation (~1e52) overflows float32 at step T; reference: the
    loss computed here in float64 from the returned parameters exceeds float32's range."""
    spec = NetworkSpec(6, 8, 1)
    target = SubsetParity(6, [0])
    cfg = NGDConfig(T=1, gamma=[0.05, 1e13], sigma=0.0, checkpoints=1, n_eval=512)
    res = train_noisy_gd(target, spec, cfg, [1, 2])
    assert all(torch.isfinite(p).all() for p in res.params.parameters())  # parameters finite
    w1, b1, w2, b2 = (p[1].double() for p in res.params.parameters())  # run 1: (6, 8), (8,), (8, 1), (1,)
    out = (torch.relu(all_inputs(6) @ w1 + b1) @ w2 + b2).squeeze(-1)  # (64,)
    assert out.abs().max().item() ** 2 > torch.finfo(torch.float32).max  # the evaluation overflows
    assert res.status == ["ok", "diverged"] and res.diverged_step[1] == 1
    assert np.isnan(res.corr[1]) and np.isfinite(res.corr[0])


def test_batch_gradients_average_to_the_exact_gradient():
    N, B, K = 6, 256, 100
    spec = NetworkSpec(N, 6, 1)
    stack = init_relu_stack(spec, [9], dtype=F64)
    target = SubsetParity(N, [0, 1])
    x_all = all_inputs(N)
    exact, _ = stack_gradient(stack, x_all, target(x_all))
    exact = torch.cat([g.reshape(-1) for g in exact])
    keys = stream_keys([9], "batch")
    samples = []
    for t in range(1, K + 1):  # the engine's batches: one fresh batch per step
        x = rademacher_rows(keys, t, 0, B, N, dtype=F64)
        g, _ = stack_gradient(stack, x, target(x))
        samples.append(torch.cat([gi.reshape(-1) for gi in g]))
    samples = torch.stack(samples)  # (K, E)
    se = samples.std(0) / math.sqrt(K)
    assert ((samples.mean(0) - exact).abs() <= 5 * se + 1e-12).all()
    assert (samples.std(0) > 0).any()


def test_observables_match_direct_computation():
    N, n_eval, seed = 7, 1000, 4
    spec = NetworkSpec(N, 8, 2)
    target = SubsetParity(N, [2])
    cfg = NGDConfig(T=0, gamma=0.1, sigma=0.1, checkpoints=1, n_eval=n_eval, loss="hinge")
    res = train_noisy_gd(target, spec, cfg, [seed], dtype=F64)
    init = init_relu_stack(spec, [seed], dtype=F64)
    model = to_sequential(init, 0)
    x = rademacher_rows(stream_keys([seed], "eval"), 0, 0, n_eval, N, dtype=F64)[0]
    y = target(x)
    out = model(x).squeeze(-1).detach()
    prod = (y * out).numpy()
    assert res.curves["step"].tolist() == [[0]]
    assert res.corr[0] == pytest.approx(prod.mean(), rel=1e-12, abs=1e-14)
    assert res.corr_se[0] == pytest.approx(prod.std(ddof=1) / math.sqrt(n_eval), rel=1e-10)
    assert res.acc[0] == pytest.approx(float(np.mean(np.sign(out.numpy()) == y.numpy())))
    assert res.loss[0] == pytest.approx(float(np.maximum(0, 1 - prod).mean()), rel=1e-12)
    norm = math.sqrt(sum(float((p**2).sum()) for p in init.parameters()))
    assert res.param_norm[0] == pytest.approx(norm, rel=1e-12)


def test_low_degree_parity_is_learned_and_full_parity_is_not():
    # k = 1 parity of the registry on n = 3, extended to N = n^2 = 9 bits, exact gradient:
    # learned within 150 steps (corr ~0.99 seen)
    target = extend(make_target("parity", 3, c=1), resolve_extension("n^2", 3))
    spec = NetworkSpec(9, 16, 1)
    res = train_noisy_gd(target, spec, NGDConfig(T=150, gamma=0.05, sigma=1e-4, checkpoints=2, n_eval=2048), [1, 2])
    assert (res.corr > 0.8).all() and (res.acc > 0.95).all()
    # degree-25 parity on N = 25 bits, fresh batches of 256: stays at chance
    spec = NetworkSpec(25, 16, 1)
    full = make_target("full_parity", 25)
    res = train_noisy_gd(full, spec, NGDConfig(T=200, gamma=0.05, sigma=1e-4, batch=256, checkpoints=2, n_eval=4096), [1, 2])
    assert list(res.batch_used) == [256, 256]
    assert (np.abs(res.corr) < 5 * res.corr_se + 0.02).all()


def test_checkpoints_and_T0():
    assert NGDConfig(T=10, gamma=1, sigma=0, checkpoints=3).checkpoint_steps() == [0, 5, 10]
    assert NGDConfig(T=10, gamma=1, sigma=0, checkpoints=1).checkpoint_steps() == [10]
    assert NGDConfig(T=10, gamma=1, sigma=0, checkpoints=[3, 1]).checkpoint_steps() == [1, 3, 10]
    assert NGDConfig(T=0, gamma=1, sigma=0, checkpoints=5).checkpoint_steps() == [0]
    res = train_noisy_gd(SubsetParity(4, [0]), NetworkSpec(4, 3, 1), NGDConfig(T=0, gamma=1, sigma=1, n_eval=64), [0, 1])
    assert res.curves["corr"].shape == (2, 1) and res.status == ["ok", "ok"]
    seen = []
    cfg = NGDConfig(T=4, gamma=0.1, sigma=0.0, checkpoints=[2], n_eval=64)
    res = train_noisy_gd(SubsetParity(4, [0]), NetworkSpec(4, 3, 1), cfg, [0], progress=lambda t, T: seen.append((t, T)))
    assert seen == [(2, 4), (4, 4)] and res.curves["step"].tolist() == [[2, 4]]


def test_exact_gradient_only_when_the_cube_is_small_enough():
    spec, target = NetworkSpec(10, 3, 1), SubsetParity(10, [0])
    small = train_noisy_gd(target, spec, NGDConfig(T=1, gamma=0.1, sigma=0, n_eval=64, exact_max_inputs=1024), [0])
    large = train_noisy_gd(target, spec, NGDConfig(T=1, gamma=0.1, sigma=0, n_eval=64, exact_max_inputs=512), [0])
    given = train_noisy_gd(target, spec, NGDConfig(T=1, gamma=0.1, sigma=0, n_eval=64, batch=32), [0])
    assert small.batch_used.tolist() == [0] and large.batch_used.tolist() == [4096] and given.batch_used.tolist() == [32]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(T=-1), "T"),
        (dict(T=2.5), "T"),
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=[0.1, -1]), "gamma"),
        (dict(sigma=-0.1), "sigma"),
        (dict(sigma=float("nan")), "sigma"),
        (dict(A=0), "A"),
        (dict(precision="float16"), "precision"),
        (dict(loss="mse"), "loss"),
        (dict(batch=-3), "batch"),
        (dict(checkpoints=0), "checkpoints"),
        (dict(checkpoints=[11]), "checkpoints"),
        (dict(n_eval=1), "n_eval"),
        (dict(gamma_schedule="cosine"), "gamma_schedule"),
    ],
)
def test_config_validation_names_the_field(kwargs, field):
    base = dict(T=10, gamma=0.1, sigma=0.01)
    base.update(kwargs)
    with pytest.raises(ValueError, match=rf"NGDConfig\.{field} .*got"):
        NGDConfig(**base)


def test_call_validation():
    spec = NetworkSpec(4, 3, 1)
    with pytest.raises(ValueError, match="gamma has 2 values but there are 3 seeds"):
        train_noisy_gd(SubsetParity(4, [0]), spec, NGDConfig(T=1, gamma=[0.1, 0.2], sigma=0), [1, 2, 3])
    with pytest.raises(ValueError, match="n=5 bits but spec.input_dim=4"):
        train_noisy_gd(SubsetParity(5, [0]), spec, NGDConfig(T=1, gamma=0.1, sigma=0), [1])
    with pytest.raises(ValueError, match="seeds"):
        train_noisy_gd(SubsetParity(4, [0]), spec, NGDConfig(T=1, gamma=0.1, sigma=0), [])


def test_flop_model():
    spec = NetworkSpec(256, 256, 2)
    # forward 2B(256*256 + 256*256 + 256); weight grads the same; input grads skip the first layer
    B = 4096
    assert ngd_flops_per_step(spec, B) == 2 * B * (256 * 256 + 256 * 256 + 256) * 2 + 2 * B * (256 * 256 + 256)
