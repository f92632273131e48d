"""Fourier–Walsh analysis on ``{-1,+1}^n``: fast Walsh–Hadamard transform, coefficients, degree weights.

Every ``f : {-1,+1}^n -> R`` is ``f = sum_S fhat(S) chi_S`` with ``chi_S(x) = prod_{i in S} x_i`` and
``fhat(S) = E_x[f(x) chi_S(x)] = 2^{-n} sum_j f(x(j)) (-1)^{popcount(S & j)}``, because with the
enumeration of ``cube.py`` (``x_i = 1 - 2 bit_i(j)``) ``chi_S(x(j)) = (-1)^{popcount(S & j)}``.
A subset ``S`` is a bitmask: bit ``i`` set <=> ``x_i in S``. That sum is the (Sylvester-ordered)
Walsh–Hadamard transform, computed in ``O(n 2^n)`` by ``n`` butterfly passes.

Degree weights ``W^{=k}[f] = sum_{|S|=k} fhat(S)^2``; for ``f`` with values ±1 Parseval gives
``sum_k W^{=k} = E[f^2] = 1`` (O'Donnell, *Analysis of Boolean Functions*, §1.4).

Cost: ``fwht`` on ``(..., 2^n)`` does ``n 2^n`` additions per row and keeps two buffers of the input's
size; in float64 at ``n = 24`` that is 2 x 128 MiB.

>>> fourier_coefficients(torch.tensor([1., -1., 1., -1.])).tolist()  # f = x_1 (bit 0)
[0.0, 1.0, 0.0, 0.0]
"""

from __future__ import annotations

import torch

__all__ = ["fwht", "fourier_coefficients", "degree_weights", "cumulative_weights", "popcounts"]


def _log2_exact(size: int, what: str) -> int:
    n = size.bit_length() - 1
    if size < 1 or (1 << n) != size:
        raise ValueError(f"{what} must have a last dimension of size 2^n, got {size}")
    return n


def fwht(v: torch.Tensor) -> torch.Tensor:
    """Unnormalized Walsh–Hadamard transform along the last dimension (size ``2^n``).

    ``fwht(v)[..., S] = sum_j v[..., j] (-1)^{popcount(S & j)}``. Applying it twice gives ``2^n v``.
    Integer inputs are promoted to float64.
    """
    n = _log2_exact(v.shape[-1], "fwht input")
    out = v.to(torch.float64) if not v.is_floating_point() else v.clone()
    lead = out.shape[:-1]
    size = out.shape[-1]
    for i in range(n):
        # pair index j (bit i = 0) with j + 2^i: view as (..., blocks, 2, 2^i)
        pairs = out.reshape(*lead, size >> (i + 1), 2, 1 << i)
        a, b = pairs[..., 0, :], pairs[..., 1, :]
        out = torch.stack((a + b, a - b), dim=-2).reshape(*lead, size)
    return out


def fourier_coefficients(f_values: torch.Tensor) -> torch.Tensor:
    """``fhat(S)`` for every subset bitmask ``S``: ``fwht(f_values) / 2^n`` in float64.

    ``f_values[..., j] = f(x(j))`` in the enumeration order of ``cube.enumerate_cube``.
    """
    v = torch.as_tensor(f_values).to(torch.float64)
    return fwht(v) / v.shape[-1]


def popcounts(n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """``|S|`` for every bitmask ``0 <= S < 2^n``: int64 tensor of shape ``(2^n,)``."""
    masks = torch.arange(1 << n, dtype=torch.int64, device=device)
    counts = torch.zeros_like(masks)
    for i in range(n):
        counts += (masks >> i) & 1
    return counts


def degree_weights(f_values: torch.Tensor) -> torch.Tensor:
    """``W^{=k}[f]`` for ``k = 0..n``: float64 tensor of shape ``(n+1,)``.

    ``W^{=k} = sum_{|S| = k} fhat(S)^2``; a ±1-valued ``f`` has ``sum_k W^{=k} = 1``.
    """
    v = torch.as_tensor(f_values)
    if v.dim() != 1:
        raise ValueError(f"f_values must be one truth table of shape (2^n,), got {tuple(v.shape)}")
    n = _log2_exact(v.shape[0], "f_values")
    coeffs = fourier_coefficients(v)
    return torch.bincount(popcounts(n, device=coeffs.device), weights=coeffs.square(), minlength=n + 1)


def cumulative_weights(f_values: torch.Tensor) -> torch.Tensor:
    """``W^{<=k}[f] = sum_{j<=k} W^{=j}[f]`` for ``k = 0..n``: float64 tensor of shape ``(n+1,)``."""
    return torch.cumsum(degree_weights(f_values), dim=0)
