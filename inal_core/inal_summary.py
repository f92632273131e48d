"""Summaries of per-initialization INAL values: a layer choice free of selection bias.

``estimate_inal`` keeps, for every initialization ``r`` and layer ``l``, the neuron-mean of the
squared correlations ``Y[r, l]`` (``InalResult.per_init``, shape ``(R, L)``, ``L = depth + 1``).
INAL is ``max_l E[Y[:, l]]`` (SCIENCE.md §4). The plug-in ``max_l mean(Y[:, l])`` is biased
upward: it takes the largest of ``L`` noisy means, and its standard error (the chosen layer's)
ignores the choice. For depth 1 the output neuron ties the hidden layer in expectation with about
five times its error, so the plug-in often picks noise (measured: +16 % at 32 initializations,
+5 % at 256).

Selection-free estimate (sample splitting, symmetrized). Split the initializations into halves
``A = {0 .. h-1}`` and ``B = {h .. R-1}`` (``h = R // 2``; initializations are i.i.d., so a fixed
split is as good as a random one and keeps the estimate reproducible). Choose on one half, measure
on the other, and average the two directions:

    l_A = argmax_l mean_A(Y[:, l]),   l_B = argmax_l mean_B(Y[:, l]),
    value = ( mean_B(Y[:, l_A]) + mean_A(Y[:, l_B]) ) / 2,
    se^2  = ( s_B^2(l_A) / |B| + s_A^2(l_B) / |A| ) / 4,

with ``s_H^2(l)`` the sample variance (ddof 1) of ``Y[H, l]``. Given ``l_A`` (a function of ``A``
alone), ``mean_B(Y[:, l_A])`` is unbiased for ``INAL_{l_A} <= INAL``, and likewise for the other
direction, so ``E[value] <= INAL``: the estimate can only err low, by the chance of choosing a
worse layer, which vanishes when one layer clearly dominates. The two halves are independent
given the choices, which gives ``se``. When both halves choose the same layer ``l``, ``value`` is
``mean(Y[:, l])`` over all initializations (for even ``R``) and ``se`` its usual standard error.

Pure numpy; no file or framework imports (``inal_core`` rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SelectionFreeMax", "selection_free_max"]


@dataclass(frozen=True)
class SelectionFreeMax:
    """Result of :func:`selection_free_max`; layers are 1-based (output layer ``L``)."""

    value: float
    se: float
    layer_a: int      # chosen on the first half, measured on the second
    layer_b: int      # chosen on the second half, measured on the first
    n_inits: int

    @property
    def layers_agree(self) -> bool:
        return self.layer_a == self.layer_b


def selection_free_max(per_init) -> SelectionFreeMax:
    """Split-sample estimate of ``max_l E[Y[:, l]]`` from per-initialization values (module docstring).

    Parameters
    ----------
    per_init : array_like, shape (R, L)
        ``Y[r, l]``: initialization ``r``'s neuron-mean squared correlation in layer ``l + 1``
        (``InalResult.per_init``). ``R >= 4`` (each half needs two values for its variance).

    Returns
    -------
    SelectionFreeMax

    >>> Y = np.array([[1.0, 0.0], [3.0, 0.0], [2.0, 1.0], [2.0, 1.0]])
    >>> r = selection_free_max(Y)
    >>> (r.value, r.layer_a, r.layer_b)     # layer 1 on both halves: (2+2)/2 and (1+3)/2, averaged
    (2.0, 1, 1)
    """
    y = np.asarray(per_init, dtype=np.float64)
    if y.ndim != 2 or y.shape[1] < 1:
        raise ValueError(f"per_init must have shape (n_inits, n_layers), got {y.shape}")
    R = y.shape[0]
    if R < 4:
        raise ValueError(f"selection_free_max needs at least 4 initializations (two per half), got {R}")
    if not np.all(np.isfinite(y)):
        raise ValueError("per_init must be finite")
    h = R // 2
    a, b = y[:h], y[h:]
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    var_a, var_b = a.var(axis=0, ddof=1), b.var(axis=0, ddof=1)
    la, lb = int(np.argmax(mean_a)), int(np.argmax(mean_b))
    value = 0.5 * (mean_b[la] + mean_a[lb])
    se = 0.5 * math.sqrt(var_b[la] / b.shape[0] + var_a[lb] / a.shape[0])
    return SelectionFreeMax(value=float(value), se=float(se), layer_a=la + 1, layer_b=lb + 1, n_inits=R)
