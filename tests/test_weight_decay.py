"""train.weight_decay: noisy GD on L + (lambda/2)||theta||^2, against torch autograd on the regularized loss."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from inal_core.networks import NetworkSpec, init_relu_stack
from inal_core.ngd import NGDConfig, train_noisy_gd
from inal_core.targets import make_target
from sweeps.validation import ConfigError, validate_job


def _reference(spec, seeds, target, cfg: NGDConfig):
    """T steps of the update computed independently: autograd of the mean squared loss over the whole
    cube plus (lambda/2) * the squared norm of every weight and bias, clipped to [-A, A], sigma = 0."""
    stack = init_relu_stack(spec, seeds, dtype=torch.float64)
    params = [p.detach().clone().requires_grad_(True) for p in stack.parameters()]
    x = torch.tensor([[1.0 - 2.0 * ((i >> j) & 1) for j in range(spec.input_dim)] for i in range(2 ** spec.input_dim)],
                     dtype=torch.float64)  # (2^N, N), all inputs
    y = target(x).to(torch.float64)  # (2^N,)
    n_layers = spec.depth + 1
    for _ in range(cfg.T):
        h = x.unsqueeze(0).expand(len(seeds), -1, -1)
        ws, bs = params[0::2] if spec.bias else params, params[1::2] if spec.bias else [None] * n_layers
        for layer in range(n_layers):
            h = torch.bmm(h, ws[layer]) + (bs[layer].unsqueeze(1) if bs[layer] is not None else 0.0)
            if layer < n_layers - 1:
                h = torch.relu(h)
        loss = ((h.squeeze(-1) - y) ** 2).mean(1).sum()  # runs are independent: sum their losses
        loss = loss + cfg.weight_decay / 2 * sum((p ** 2).sum() for p in params)
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= cfg.gamma * g.clamp(-cfg.A, cfg.A)
    return [p.detach() for p in params]


@pytest.mark.parametrize("bias", [True, False])
def test_weight_decay_step_matches_autograd_of_the_regularized_loss(bias):
    spec = NetworkSpec(4, 6, 2, bias=bias)
    target = make_target("parity", 4, k=2)
    seeds = [0, 1, 2]
    # A = 0.05 clips some coordinates: the decay term is inside the precision map
    cfg = NGDConfig(T=3, gamma=0.3, sigma=0.0, A=0.05, weight_decay=0.7, checkpoints=1, n_eval=16)
    got = train_noisy_gd(target, spec, cfg, seeds, dtype=torch.float64).params.parameters()
    want = _reference(spec, seeds, target, cfg)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)
    # and the decay made a difference the test can see
    plain = train_noisy_gd(target, spec, NGDConfig(T=3, gamma=0.3, sigma=0.0, A=0.05, checkpoints=1, n_eval=16),
                           seeds, dtype=torch.float64).params.parameters()
    assert any(not torch.allclose(g, p) for g, p in zip(got, plain))


def test_weight_decay_zero_is_bit_identical_to_the_update_without_it():
    spec = NetworkSpec(6, 8, 1)
    target = make_target("parity", 6, k=2)
    base = dict(T=20, gamma=[0.05, 0.1], sigma=[1e-3, 0.0], A=1.0, batch=16, checkpoints=4, n_eval=64)
    without = train_noisy_gd(target, spec, NGDConfig(**base), [3, 4])
    zero = train_noisy_gd(target, spec, NGDConfig(**base, weight_decay=0.0), [3, 4])
    for a, b in zip(without.params.parameters(), zero.params.parameters()):
        assert torch.equal(a, b)
    for key in ("corr", "loss", "param_norm"):
        assert (without.curves[key] == zero.curves[key]).all()


def test_weight_decay_is_validated_hashed_and_omitted_at_its_default(tmp_path, compose_config):
    cfg = OmegaConf.to_container(compose_config([f"results_dir={tmp_path}"]), resolve=True)
    assert cfg["train"]["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match=r"invalid train.weight_decay=-0.1 \(allowed: a finite number >= 0\)"):
        validate_job({**cfg, "train": {**cfg["train"], "weight_decay": -0.1}})
    base = validate_job(cfg)
    old = copy.deepcopy(cfg)
    del old["train"]["weight_decay"]  # a config written before the setting existed
    assert validate_job(old).run_id == base.run_id
    decayed = validate_job({**cfg, "train": {**cfg["train"], "weight_decay": 0.01}})
    assert decayed.run_id != base.run_id and decayed.pack_key != base.pack_key and decayed.inal_id == base.inal_id
    assert decayed.values["weight_decay"] == 0.01
    from sweeps.settings import engine_kwargs

    assert engine_kwargs("ngd", decayed.values)["weight_decay"] == 0.01
