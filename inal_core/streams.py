"""Counter-based random streams, vectorized over a stack of runs, identical on CPU and CUDA.

Noisy GD needs, at every step and for every run of a stack, fresh ±1 inputs (batches and
evaluation sets) and Gaussian noise for all parameters. Drawing them from one
``torch.Generator`` per run would cost R kernel launches per step and give different numbers
on CPU and CUDA. Instead every random 64-bit word is a pure function of its coordinates,
computed with ``int64`` tensor arithmetic (two's-complement wrap-around = arithmetic mod 2^64):

    key(run, step) = mix64(k_run XOR mix64(step * G + C))          k_run = derive_seed(seed, stream)
    word(run, step, i) = mix64(key(run, step) + (i + 1) * G)          (mod 2^64)

with ``G = 0x9E3779B97F4A7C15`` and ``mix64`` the SplitMix64 finalizer
(``z ^= z>>>30; z *= 0xBF58476D1CE4E5B9; z ^= z>>>27; z *= 0x94D049BB133111EB; z ^= z>>>31``,
logical shifts). For a fixed (run, step) the words are exactly the SplitMix64 sequence seeded
with ``key(run, step)``. A run's numbers therefore depend only on its seed, the stream name, the
step and the element index: the same alone or inside a stack, on rerun, on CPU or CUDA.
``tests/test_ngd.py`` checks the words bit for bit against a pure-Python implementation.
Why not a library generator: torch's (Philox on CUDA, MT19937 on CPU) give different numbers on the
two devices and need one generator, hence kernel launches, per run of a stack; numpy's counter-based
bit generators (Philox) run on the CPU only. The SplitMix64 arithmetic below is a few lines of
tensor code that runs where the stack runs.

Derived variates:

- ``rademacher_rows``: row ``j`` of an ``(rows, n)`` ±1 matrix uses words
  ``j*ceil(n/64) ...`` (ceil(n/64) of them); coordinate ``i`` is ``1 - 2*bit_{i mod 64}`` of
  word ``i // 64``, so a batch can be produced in chunks of rows with identical values.
- ``gaussians``: Box–Muller, one word per pair ``p``: ``u1 = (bits 40..63 + 1/2) / 2^24``,
  ``u2 = (bits 8..31 + 1/2) / 2^24`` (24 bits, exact in float32); element ``2p`` is
  ``sqrt(-2 ln u1) cos(2 pi u2)`` and element ``2p+1`` is ``sqrt(-2 ln u1) sin(2 pi u2)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .rng import derive_seed

__all__ = [
    "stream_keys",
    "step_keys",
    "StepKeys",
    "words_at",
    "random_words",
    "rademacher_rows",
    "rademacher_rows_at",
    "gaussians",
    "gaussians_at",
    "mix64_reference",
]

_U64 = (1 << 64) - 1


def _signed(v: int) -> int:
    """The int64 with the same 64 bits as the unsigned ``v``."""
    v &= _U64
    return v - (1 << 64) if v >= 1 << 63 else v


_GOLDEN = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_STEP_OFFSET = 0x632BE59BD9B4E019
_G, _M1, _M2 = _signed(_GOLDEN), _signed(_C1), _signed(_C2)

# ±1 patterns of every byte: _BYTE_SIGNS[v, j] = 1 - 2 * bit_j(v)   (256, 8)
_BYTE_SIGNS = 1.0 - 2.0 * ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).to(torch.float64)


def _shr(z: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix64(z: torch.Tensor) -> torch.Tensor:
    """SplitMix64 finalizer on int64 tensors (bits mod 2^64)."""
    z = z ^ _shr(z, 30)
    z = z * _M1
    z = z ^ _shr(z, 27)
    z = z * _M2
    return z ^ _shr(z, 31)


def mix64_reference(z: int) -> int:
    """The same finalizer on Python ints (unsigned 64-bit), the independent reference of the tests."""
    z &= _U64
    z = ((z ^ (z >> 30)) * _C1) & _U64
    z = ((z ^ (z >> 27)) * _C2) & _U64
    return z ^ (z >> 31)


def stream_keys(seeds: Sequence[int], stream: str, device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-run stream keys ``derive_seed(seeds[r], stream)`` as an ``(R,)`` int64 tensor."""
    return torch.tensor([derive_seed(int(s), stream) for s in seeds], dtype=torch.int64, device=device)


def step_keys(keys: torch.Tensor, step: int) -> torch.Tensor:
    """``key(run, step) = mix64(k_run XOR mix64(step * G + C))`` for every run: ``(R,)`` int64."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return _mix64(keys ^ _signed(mix64_reference(step * _GOLDEN + _STEP_OFFSET)))


class StepKeys:
    """``step_keys(keys, t)`` for many steps, computed a block of steps at a time (few tensor ops per block).

    ``StepKeys(keys)(t)`` equals ``step_keys(keys, t)``; the table holds ``block`` steps, ``(R, block)``.
    """

    def __init__(self, keys: torch.Tensor, block: int = 256):
        self.keys, self.block, self._first, self._table = keys, block, -1, None

    def __call__(self, step: int) -> torch.Tensor:
        first = step - step % self.block
        if first != self._first:
            salts = [_signed(mix64_reference(t * _GOLDEN + _STEP_OFFSET)) for t in range(first, first + self.block)]
            salt = torch.tensor(salts, dtype=torch.int64).to(self.keys.device, non_blocking=True)  # (block,)
            self._table = _mix64(self.keys.unsqueeze(1) ^ salt)  # (R, block)
            self._first = first
        return self._table[:, step - first]


_OFFSETS: dict[tuple[int, int, str], torch.Tensor] = {}


def _offsets(start: int, count: int, device: torch.device) -> torch.Tensor:
    """``(i + 1) * G`` for ``i`` in ``start .. start+count-1`` (mod 2^64), cached: ``(count,)`` int64."""
    key = (start, count, str(device))
    if key not in _OFFSETS:
        if len(_OFFSETS) > 64:
            _OFFSETS.clear()
        _OFFSETS[key] = torch.arange(start + 1, start + count + 1, dtype=torch.int64, device=device) * _G
    return _OFFSETS[key]


def words_at(step_key: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """Words ``start .. start+count-1`` for per-run step keys ``(R,)``: ``mix64(key + (i+1) G)``, ``(R, count)``."""
    if start < 0 or count < 0:
        raise ValueError(f"word range [{start}, {start + count}) must be non-negative")
    return _mix64(step_key.unsqueeze(1) + _offsets(start, count, step_key.device))


def random_words(keys: torch.Tensor, step: int, start: int, count: int) -> torch.Tensor:
    """64-bit words ``start .. start+count-1`` of every run at ``step``: ``(R, count)`` int64 bit patterns."""
    return words_at(step_keys(keys, step), start, count)


def rademacher_rows(
    keys: torch.Tensor, step: int, row_start: int, rows: int, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Uniform ±1 inputs: rows ``row_start .. row_start+rows-1`` of each run's ``(·, n)`` matrix.

    Returns ``(R, rows, n)`` in ``dtype``. One 64-bit word gives 64 coordinates (see module doc).
    """
    return rademacher_rows_at(step_keys(keys, step), row_start, rows, n, dtype=dtype)


def rademacher_rows_at(
    step_key: torch.Tensor, row_start: int, rows: int, n: int, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``rademacher_rows`` for per-run step keys ``(R,)`` (see ``StepKeys``)."""
    words_per_row = (n + 63) // 64
    w = words_at(step_key, row_start * words_per_row, rows * words_per_row)  # (R, rows*wpr)
    shifts = torch.arange(0, 64, 8, dtype=torch.int64, device=w.device)
    bytes_ = (w.unsqueeze(-1) >> shifts) & 255  # (R, rows*wpr, 8)
    table = _BYTE_SIGNS.to(device=w.device, dtype=dtype)
    signs = torch.nn.functional.embedding(bytes_, table)  # (R, rows*wpr, 8, 8)
    signs = signs.view(step_key.shape[0], rows, words_per_row * 64)
    return signs if words_per_row * 64 == n else signs[:, :, :n].contiguous()


def gaussians(keys: torch.Tensor, step: int, count: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal variates ``0 .. count-1`` of every run at ``step``: ``(R, count)`` (Box–Muller)."""
    return gaussians_at(step_keys(keys, step), count, dtype=dtype)


def gaussians_at(step_key: torch.Tensor, count: int, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``gaussians`` for per-run step keys ``(R,)`` (see ``StepKeys``)."""
    pairs = (count + 1) // 2
    w = words_at(step_key, 0, pairs)  # (R, pairs)
    scale = 1.0 / (1 << 24)
    u1 = (_shr(w, 40).to(dtype) + 0.5) * scale  # (R, pairs) in (0, 1)
    u2 = (((w >> 8) & 0xFFFFFF).to(dtype) + 0.5) * scale
    radius = torch.sqrt(torch.log(u1).mul_(-2.0))
    angle = u2.mul_(2.0 * math.pi)
    z = torch.stack((radius * torch.cos(angle), radius.mul_(torch.sin(angle))), dim=-1)  # (R, pairs, 2)
    return z.view(-1, 2 * pairs)[:, :count]
