"""CPU and CUDA give the same noisy-GD numbers (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inal_core.networks import NetworkSpec
from inal_core.ngd import NGDConfig, train_noisy_gd
from inal_core.streams import gaussians, rademacher_rows, random_words, stream_keys
from inal_core.targets import extend, make_target

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available"),
]


def test_random_streams_are_bit_identical_on_cuda():
    keys = stream_keys([3, 4, 5], "batch")
    assert torch.equal(random_words(keys, 9, 17, 1000), random_words(keys.cuda(), 9, 17, 1000).cpu())
    assert torch.equal(rademacher_rows(keys, 2, 5, 300, 130), rademacher_rows(keys.cuda(), 2, 5, 300, 130).cpu())
    z_cpu = gaussians(keys, 4, 10001, dtype=torch.float64)
    z_gpu = gaussians(keys.cuda(), 4, 10001, dtype=torch.float64).cpu()
    torch.testing.assert_close(z_cpu, z_gpu, rtol=1e-12, atol=1e-12)  # same uniforms; libm vs CUDA math ulps


@pytest.mark.parametrize("batch", [None, 128])
def test_training_on_cpu_and_cuda_agree(batch):
    target = extend(make_target("parity", 3, c=2), 9)
    spec = NetworkSpec(9, 16, 2)
    cfg = NGDConfig(T=25, gamma=[0.05, 0.1, 0.2], sigma=[0.0, 1e-3, 1e-2], batch=batch, checkpoints=3, n_eval=512)
    cpu = train_noisy_gd(target, spec, cfg, [1, 2, 3], dtype=torch.float64)
    gpu = train_noisy_gd(target, spec, cfg, [1, 2, 3], dtype=torch.float64, device="cuda")
    for key in ("corr", "corr_se", "acc", "loss", "param_norm"):
        np.testing.assert_allclose(cpu.curves[key], gpu.curves[key], rtol=1e-8, atol=1e-10)
    for p, q in zip(cpu.params.parameters(), gpu.params.parameters()):
        torch.testing.assert_close(p, q.cpu(), rtol=1e-8, atol=1e-10)
    assert cpu.status == gpu.status


def test_float32_stack_on_cuda_matches_runs_alone():
    target = extend(make_target("parity", 4, c=1), 16)
    spec = NetworkSpec(16, 32, 2)
    gammas, sigmas, seeds = [0.05, 0.1], [1e-3, 0.0], [7, 8]
    cfg = NGDConfig(T=20, gamma=gammas, sigma=sigmas, batch=256, checkpoints=2, n_eval=1024)
    stacked = train_noisy_gd(target, spec, cfg, seeds, device="cuda")
    for r in range(2):
        alone = train_noisy_gd(
            target, spec, NGDConfig(T=20, gamma=gammas[r], sigma=sigmas[r], batch=256, checkpoints=2, n_eval=1024), [seeds[r]], device="cuda"
        )
        np.testing.assert_allclose(stacked.curves["corr"][r], alone.curves["corr"][0], rtol=1e-4, atol=1e-5)
