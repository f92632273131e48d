"""The Boolean cube ``{-1,+1}^n``: chunked enumeration, truth tables and seeded sampling.

Convention (used everywhere in ``inal_core``): row ``j`` of the enumeration, ``0 <= j < 2^n``,
is the point with ``x_i = 1 - 2 * bit_i(j)`` (bit ``i`` of ``j``; bit 0 gives ``+1``). So the
low bits of ``j`` are the first coordinates, and a truth table ``f_values[j] = f(x(j))`` is
indexed the same way as Fourier coefficients indexed by subset bitmasks (``fourier.py``).

>>> enumerate_cube(2).tolist()
[[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]]
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

__all__ = ["enumerate_cube", "iter_cube_chunks", "sample_cube", "truth_table", "MAX_ENUMERATION_BITS"]

# 2^40 rows is far beyond any memory; the int64 row index arithmetic stays exact well past it.
MAX_ENUMERATION_BITS = 40


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1 or n > MAX_ENUMERATION_BITS:
        raise ValueError(f"n must be an integer in [1, {MAX_ENUMERATION_BITS}], got {n!r}")


def enumerate_cube(
    n: int,
    start: int = 0,
    stop: int | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Rows ``start .. stop-1`` of the enumeration of ``{-1,+1}^n``: shape ``(stop-start, n)``.

    Row ``j`` has ``x_i = 1 - 2 * bit_i(j)``. ``stop`` defaults to ``2^n``.
    """
    _check_n(n)
    total = 1 << n
    stop = total if stop is None else stop
    if not (0 <= start <= stop <= total):
        raise ValueError(f"need 0 <= start <= stop <= 2^n = {total}, got start={start}, stop={stop}")
    idx_dtype = torch.int32 if total <= 2**31 else torch.int64  # half the memory traffic when exact
    rows = torch.arange(start, stop, dtype=idx_dtype, device=device)  # (m,)
    shifts = torch.arange(n, dtype=idx_dtype, device=device)  # (n,)
    bits = torch.bitwise_and(rows.unsqueeze(1) >> shifts, 1)  # (m, n) in {0, 1}
    return bits.to(dtype).mul_(-2).add_(1)


def iter_cube_chunks(
    n: int,
    chunk_rows: int,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, x)`` with ``x = enumerate_cube(n, start, start + chunk_rows)`` until ``2^n`` rows are covered."""
    _check_n(n)
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    total = 1 << n
    for start in range(0, total, chunk_rows):
        yield start, enumerate_cube(n, start, min(start + chunk_rows, total), dtype=dtype, device=device)


def sample_cube(
    m: int,
    n: int,
    generator: torch.Generator,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``m`` i.i.d. uniform points of ``{-1,+1}^n``: shape ``(m, n)``.

    Drawn with ``generator`` on the generator's device (the CPU for generators made by
    ``rng.make_generator``) and then moved, so the same seed gives the same points on any device.
    """
    if not isinstance(m, int) or m < 0:
        raise ValueError(f"m (number of samples) must be a non-negative integer, got {m!r}")
    _check_n(n)
    bits = torch.randint(0, 2, (m, n), generator=generator, device=generator.device, dtype=torch.int8)
    return (1 - 2 * bits).to(device=device, dtype=dtype)


def truth_table(
    f: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    *,
    chunk_rows: int = 1 << 16,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``f`` on every point of the cube, in enumeration order: shape ``(2^n,)``, ``dtype``.

    ``f`` maps ``(m, n)`` ±1 tensors to ``(m,)``; it is evaluated chunk by chunk, so memory is
    ``O(2^n)`` for the result plus ``O(chunk_rows * n)``.
    """
    out = torch.empty(1 << n, dtype=dtype, device=device)
    for start, x in iter_cube_chunks(n, chunk_rows, dtype=torch.float32, device=device):
        out[start : start + x.shape[0]] = f(x).to(dtype)
    return out
