"""The bound of Theorem 1 (SCIENCE.md §6) and the Fourier-step quantity (SCIENCE.md §4).

Theorem 1 (Abbe, Cornacchia, Hązła, Marquis 2022): if ``INAL(f_n, NN_n) = O(n^{-c})`` with
``c >= 1``, noisy GD with step ``gamma``, ``T`` steps, gradient precision ``A`` and noise level
``sigma`` on a network with ``E`` parameters outputs ``NN_T`` with

    | E[ fbar(x) NN_T(x) ] |  =  O( gamma T sqrt(E A) / sigma  *  n^{-(c-1)/8} ).

The functions accept floats or numpy arrays (elementwise, broadcasting).
"""

from __future__ import annotations

import numpy as np

__all__ = ["bound_prefactor", "bound_value", "normalized_correlation", "fourier_step_ratio"]


def _out(x):
    x = np.asarray(x, dtype=np.float64)
    return float(x) if x.ndim == 0 else x


def bound_prefactor(gamma, T, E, A, sigma):
    """``gamma T sqrt(E A) / sigma``; ``inf`` where ``sigma == 0`` (the theorem says nothing then).

    >>> bound_prefactor(0.1, 100, 400, 1.0, 0.5)
    400.0
    """
    gamma, T, E, A, sigma = (np.asarray(v, dtype=np.float64) for v in (gamma, T, E, A, sigma))
    num = gamma * T * np.sqrt(E * A)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(sigma > 0, num / np.where(sigma > 0, sigma, 1.0), np.inf)
    return _out(value)


def bound_value(prefactor, n, c):
    """``prefactor * n^{-(c-1)/8}`` (the bound up to its unknown constant).

    >>> bound_value(512.0, 256, 9.0)  # 512 * 256**-1
    2.0
    """
    prefactor, n, c = (np.asarray(v, dtype=np.float64) for v in (prefactor, n, c))
    return _out(prefactor * n ** (-(c - 1.0) / 8.0))


def normalized_correlation(corr, gamma, T, E, A, sigma):
    """``R = |corr| sigma / (gamma T sqrt(E A)) = |corr| / bound_prefactor`` (0 where sigma = 0).

    The bound predicts ``log R`` against ``log n`` has slope ``<= -(c-1)/8``.

    >>> normalized_correlation(-0.5, 0.1, 100, 400, 1.0, 0.5)
    0.00125
    """
    corr, gamma, T, E, A, sigma = (np.asarray(v, dtype=np.float64) for v in (corr, gamma, T, E, A, sigma))
    return _out(np.abs(corr) * sigma / (gamma * T * np.sqrt(E * A)))


def fourier_step_ratio(w_le_k, n, k, inal):
    """``W^{<=k}[f] / (n^{k+1} INAL)``: the Fourier step ``W^{<=k} <= O(n^{k+1}) INAL`` keeps it bounded in n.

    ``inf`` where ``INAL == 0`` and ``W^{<=k} > 0``.

    >>> fourier_step_ratio(0.5, 10, 1, 0.001)
    5.0
    """
    w_le_k, n, k, inal = (np.asarray(v, dtype=np.float64) for v in (w_le_k, n, k, inal))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _out(w_le_k / (n ** (k + 1.0) * inal))
