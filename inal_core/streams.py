"""Counter-based random streams, vectorized over a stack of runs, identical on CPU and CUDA.

Noisy GD needs, at every step and for every run of a stack, fresh ±1 inputs (batches and
evaluation sets) and Gaussian noise for all parameters. Drawing them from one
``torch.Generator`` per run would cost R kernel launches per step and give different numbers
on CPU and CUDA. Instead every random word is a pure function of its coordinates

    word(key, step, i) = mix(mix(i XOR a(key, step)) XOR b(key, step))      (32 bits)

where ``key = derive_seed(seed, stream)`` (two 32-bit halves), ``a``/``b`` are per-(run, step)
32-bit keys, and ``mix`` is Wellons' "lowbias32" integer hash (``x ^= x>>16; x *= 0x21f0aaad;
x ^= x>>15; x *= 0x735a2d97; x ^= x>>15``, a bijection of 32-bit words). Both multipliers
are below 2^31 and the operands are kept below 2^32, so all arithmetic is exact in ``int64``
(no overflow) and gives bit-identical words on every device. A run's numbers therefore
depend only on its seed, the stream name, the step and the element index: the same alone or
inside a stack, rerun or not, on CPU or CUDA.

Derived variates:

- ``rademacher_rows``: row ``j`` of an ``(rows, n)`` ±1 matrix uses words
  ``j*ceil(n/32) .. j*ceil(n/32)+ceil(n/32)-1``; coordinate ``i`` is ``1 - 2*bit_{i mod 32}``
  of word ``i // 32`` (so a batch can be produced in chunks of rows with identical values).
- ``gaussians``: Box–Muller on pairs of words: pair ``p`` uses words ``2p`` and ``2p+1``,
  ``u = (w >> 8 + 1/2) / 2^24`` (24 bits, exact in float32), and gives
  ``sqrt(-2 ln u1) cos(2 pi u2)`` (element ``2p``) and ``... sin(2 pi u2)`` (element ``2p+1``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .rng import derive_seed

__all__ = ["stream_keys", "random_words", "rademacher_rows", "gaussians", "MAX_INDEX"]

_MASK32 = 0xFFFFFFFF
_M1 = 0x21F0AAAD  # lowbias32 multipliers (both < 2**31: products of 32-bit words fit in int64)
_M2 = 0x735A2D97
MAX_INDEX = 1 << 32  # word indices must be below 2**32

# ±1 patterns of every byte: _BYTE_SIGNS[v, j] = 1 - 2 * bit_j(v)   (256, 8)
_BYTE_SIGNS = 1.0 - 2.0 * ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).to(torch.float64)


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on int64 tensors holding values in [0, 2^32) (returns a new tensor)."""
    x = x ^ (x >> 16)
    x = (x * _M1) & _MASK32
    x = x ^ (x >> 15)
    x = (x * _M2) & _MASK32
    return x ^ (x >> 15)


def stream_keys(seeds: Sequence[int], stream: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-run 64-bit stream keys as an ``(R, 2)`` int64 tensor of 32-bit halves.

    Row ``r`` is ``derive_seed(seeds[r], stream)`` split into its low and high 32 bits.
    """
    halves = []
    for s in seeds:
        k = derive_seed(int(s), stream)
        halves.append([k & _MASK32, (k >> 32) & _MASK32])
    return torch.tensor(halves, dtype=torch.int64, device=device)


def _step_keys(keys: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-(run, step) keys ``a``, ``b``, each ``(R, 1)``."""
    if not 0 <= step < MAX_INDEX:
        raise ValueError(f"step must be in [0, 2**32), got {step}")
    k0, k1 = keys[:, 0:1], keys[:, 1:2]  # (R, 1)
    s = _mix32(torch.full_like(k0, step) ^ 0x9E3779B9)
    a = _mix32(k0 ^ _mix32(k1 ^ s))
    b = _mix32(a ^ k1 ^ 0x85EBCA6B)
    return a, b


def random_words(keys: torch.Tensor, step: int, start: int, count: int) -> torch.Tensor:
    """32-bit words ``start .. start+count-1`` of every run at ``step``: ``(R, count)`` int64."""
    if start < 0 or start + count > MAX_INDEX:
        raise ValueError(f"word indices [{start}, {start + count}) outside [0, 2**32)")
    a, b = _step_keys(keys, step)
    idx = torch.arange(start, start + count, dtype=torch.int64, device=keys.device).unsqueeze(0)  # (1, count)
    return _mix32(_mix32(idx ^ a) ^ b)


def rademacher_rows(
    keys: torch.Tensor, step: int, row_start: int, rows: int, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform ±1 inputs: rows ``row_start .. row_start+rows-1`` of each run's ``(·, n)`` matrix.

    Returns ``(R, rows, n)`` in ``dtype``. One 32-bit word gives 32 coordinates (see module doc).
    """
    words_per_row = (n + 31) // 32
    w = random_words(keys, step, row_start * words_per_row, rows * words_per_row)  # (R, rows*wpr)
    R = keys.shape[0]
    bytes_ = (w.unsqueeze(-1) >> torch.tensor([0, 8, 16, 24], device=w.device)) & 255  # (R, rows*wpr, 4)
    table = _BYTE_SIGNS.to(device=w.device, dtype=dtype)
    signs = torch.nn.functional.embedding(bytes_, table)  # (R, rows*wpr, 4, 8)
    signs = signs.view(R, rows, words_per_row * 32)
    return signs if words_per_row * 32 == n else signs[:, :, :n].contiguous()


def gaussians(keys: torch.Tensor, step: int, count: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal variates ``0 .. count-1`` of every run at ``step``: ``(R, count)`` (Box–Muller)."""
    pairs = (count + 1) // 2
    w = random_words(keys, step, 0, 2 * pairs).view(-1, pairs, 2)  # (R, pairs, 2)
    u = ((w >> 8).to(dtype) + 0.5) * (1.0 / (1 << 24))  # (R, pairs, 2) in (0, 1)
    radius = torch.sqrt(-2.0 * torch.log(u[..., 0]))
    angle = (2.0 * math.pi) * u[..., 1]
    z = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=-1)  # (R, pairs, 2)
    return z.view(-1, 2 * pairs)[:, :count]
