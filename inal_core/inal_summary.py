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
    se^2  = ( s^2(l_A) / |B| + s^2(l_B) / |A| ) / 4,

with ``s^2(l)`` the sample variance (ddof 1) of ``Y[:, l]`` over all ``R`` initializations (every
initialization is a draw of the same layer's distribution; a half's 16 values at ``R = 32`` give
a variance too noisy for the heavy-tailed output neuron: with the halves' own variances the
reported interval covered INAL in 88-92 % of 600 blocks at depth 1, with the pooled one 94-97 %,
``tests/test_analysis_inal_intervals.py``). Given ``l_A`` (a function of ``A``
alone), ``mean_B(Y[:, l_A])`` is unbiased for ``INAL_{l_A} <= INAL``, and likewise for the other
direction, so ``E[value] <= INAL``: the estimate can only err low, by the chance of choosing a
worse layer, which vanishes when one layer clearly dominates. The two halves are independent
given the choices, which gives ``se``. When both halves choose the same layer ``l``, ``value`` is
``mean(Y[:, l])`` over all initializations (for even ``R``) and ``se`` its usual standard error.

Bootstrap-t intervals (:func:`bootstrap_t_interval`). Each ``Y[r, l]`` is a square of a
roughly centred correlation: right-skewed and, for a single neuron (the output layer), heavy-tailed
(excess kurtosis 20-60 measured at n = 6), so ``mean ± 1.96 se`` under-covers. The studentized
bootstrap resamples the initializations ``B`` times and takes the quantiles of
``t* = (mean* - mean) / se*`` in place of the normal ones:

    [ mean - q_{(1+level)/2}(t*) se ,  mean - q_{(1-level)/2}(t*) se ].

It needs the per-initialization values, which exist only while INAL is computed, so the jobs
store it (``inal_boot_lo``/``inal_boot_hi``), and with it the upper limit at the ``UPPER_TAIL`` = 1 %
quantile of the same ``t*`` (``inal_boot_hi99``): on heavy tails (parities of degree 3-4, excess
kurtosis 14 in a hidden layer) the bootstrap-t's error is one-sided, the truth above its 2.5 % upper
limit in up to 4.5 % of blocks of 32 initializations. ``analysis.inal_intervals.reported_interval``
combines them with the scaled chi-square interval that the stored ``(inal, inal_se)`` give. For the
selection-free value the two halves are resampled independently with the layer choices held fixed
(the quantity it estimates given those choices is ``(INAL_{l_A} + INAL_{l_B}) / 2``).

The output neuron given the hidden layers (``inal_core.inal.output_offset``). The output neuron is
``v = a . h + b`` with ``h`` the last hidden layer's ``w`` values and, under every init of
:mod:`inal_core.networks`, ``a`` i.i.d. of mean 0 and variance ``1/w`` and ``b`` of mean 0 and
variance ``v_b`` (:func:`inal_core.networks.output_bias_variance`), independent of the hidden
layers. With ``c_j = E_x[f h_j]``, ``E_x[f v] = a . c + b E_x[f]``, so

    E[ (E_x[f v])^2 | hidden layers ] = (1/w) sum_j c_j^2 + v_b E_x[f]^2 = Y[r, L-1] + v_b E_x[f]^2.

Per initialization, the output neuron's value has conditional mean "the last hidden layer's value
plus a constant", and ``INAL_L = INAL_{L-1} + v_b E_x[f]^2`` exactly. The output neuron's own
values are a single neuron's squared correlation (excess kurtosis 58-134 measured on degree-3 and
-4 parities at n = 8), the conditional means are a layer mean (13-14): replacing the one by the
other (Rao–Blackwell) estimates the same INAL with a lighter-tailed sample, whose intervals cover
(``docs/analysis.md``, "INAL intervals on the hard cases").

Pure numpy; no file or framework imports (``inal_core`` rule).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["SelectionFreeMax", "selection_free_max", "bootstrap_t_interval", "BOOTSTRAP_LEVEL",
           "BOOTSTRAP_REPLICATES", "UPPER_TAIL"]

BOOTSTRAP_LEVEL = 0.95      # the level of the intervals the jobs store (inal_boot_lo/hi)
BOOTSTRAP_REPLICATES = 1999  # (B + 1) * 0.025 is an integer: the 2.5 % and 97.5 % order statistics exist
UPPER_TAIL = 0.01           # the upper tail of the stored heavy-tail upper limit (inal_boot_hi99; module docstring)
_CHUNK_ELEMENTS = 1 << 22    # bootstrap resamples are drawn in chunks of at most this many values


@dataclass(frozen=True)
class SelectionFreeMax:
    """Result of :func:`selection_free_max`; layers are 1-based (output layer ``L``)."""

    value: float
    se: float
    layer_a: int      # chosen on the first half, measured on the second
    layer_b: int      # chosen on the second half, measured on the first
    n_inits: int
    boot_lo: float = float("nan")   # bootstrap-t interval (choices fixed), when asked for
    boot_hi: float = float("nan")
    boot_hi99: float = float("nan")  # its upper limit at the UPPER_TAIL quantile of t* (one-sided 99 %)

    @property
    def layers_agree(self) -> bool:
        return self.layer_a == self.layer_b


def selection_free_max(per_init, level: float | None = None, seed: int = 0,
                       n_boot: int = BOOTSTRAP_REPLICATES) -> SelectionFreeMax:
    """Split-sample estimate of ``max_l E[Y[:, l]]`` from per-initialization values (module docstring).

    Parameters
    ----------
    per_init : array_like, shape (R, L)
        ``Y[r, l]``: initialization ``r``'s neuron-mean squared correlation in layer ``l + 1``
        (``InalResult.per_init``). ``R >= 4`` (each half needs two values for its variance).
    level, seed, n_boot
        With ``level`` (e.g. 0.95), also the bootstrap-t interval of ``value``: each half resampled
        ``n_boot`` times (generator ``numpy.random.default_rng(seed)``), the layers held fixed.

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
    var = y.var(axis=0, ddof=1)                       # pooled over both halves (module docstring)
    la, lb = int(np.argmax(mean_a)), int(np.argmax(mean_b))
    value = 0.5 * (mean_b[la] + mean_a[lb])
    se = 0.5 * math.sqrt(var[la] / b.shape[0] + var[lb] / a.shape[0])
    lo = hi = hi99 = math.nan
    if level is not None:
        _check_level(level)
        rng = np.random.default_rng(seed)
        value_star, se_star = _split_resamples(a, b, la, lb, n_boot, rng)
        lo, hi, hi99 = _studentized(value, se, value_star, se_star, level, UPPER_TAIL)
    return SelectionFreeMax(value=float(value), se=float(se), layer_a=la + 1, layer_b=lb + 1, n_inits=R,
                            boot_lo=lo, boot_hi=hi, boot_hi99=hi99)


def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")


def _resample_counts(n: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each of ``draws`` resamples of size ``n``: (draws, n).

    The draws are ``rng.integers(0, n, size=(draws, n))``, the same stream a gather of resampled rows
    would use; counting them turns every resampled sum into one matrix product."""
    idx = rng.integers(0, n, size=(draws, n))
    flat = (np.arange(draws)[:, None] * n + idx).ravel()
    return np.bincount(flat, minlength=draws * n).reshape(draws, n).astype(np.float64)


def _resampled_moments(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Means and variances (ddof 1) of ``n_boot`` resamples of the rows of ``y`` (R, L): two (n_boot, L).

    With counts ``C`` (:func:`_resample_counts`) and ``y`` centred by its column means ``m``
    (so a constant column stays exactly 0): ``mean* = m + C yc / R`` and
    ``var* = (C yc^2 - (C yc)^2 / R) / (R - 1)``."""
    R, L = y.shape
    m = y.mean(axis=0)
    yc = y - m
    means = np.empty((n_boot, L))
    variances = np.empty((n_boot, L))
    chunk = max(1, _CHUNK_ELEMENTS // max(R, 1))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        counts = _resample_counts(R, stop - start, rng)                 # (chunk, R)
        s1, s2 = counts @ yc, counts @ (yc * yc)                        # (chunk, L)
        means[start:stop] = m + s1 / R
        variances[start:stop] = np.maximum(s2 - s1 * s1 / R, 0.0) / (R - 1)
    return means, variances


def _split_resamples(a: np.ndarray, b: np.ndarray, la: int, lb: int, n_boot: int,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Selection-free value and se of ``n_boot`` resamples, each half resampled on its own, the
    layers ``la`` (measured on ``b``) and ``lb`` (on ``a``) fixed, variances pooled as in the value's:
    over the two resampled halves together, ``((h-1) v_a + (k-1) v_b + h k / (h+k) (m_a - m_b)^2)
    / (h + k - 1)`` from each half's resampled moments (:func:`_resampled_moments`)."""
    h, k = a.shape[0], b.shape[0]
    mean_a, var_a = _resampled_moments(a, n_boot, rng)                 # (n_boot, L)
    mean_b, var_b = _resampled_moments(b, n_boot, rng)
    var = ((h - 1) * var_a + (k - 1) * var_b + h * k / (h + k) * (mean_a - mean_b) ** 2) / (h + k - 1)
    values = 0.5 * (mean_b[:, la] + mean_a[:, lb])
    ses = 0.5 * np.sqrt(var[:, la] / k + var[:, lb] / h)
    return values, ses


def _studentized(value, se, value_star, se_star, level: float, upper_tail: float | None = None):
    """``value - q(t*) se`` at the two tail quantiles of ``t* = (value* - value) / se*`` (per column);
    with ``upper_tail``, also the upper limit at that tail, ``value - q_{upper_tail}(t*) se``, third."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (value_star - value) / se_star
    t = np.where(np.isfinite(t), t, np.nan)       # a resample of identical values has se* = 0
    if np.all(np.isnan(t)):
        return (value, value) if upper_tail is None else (value, value, value)  # every resample constant
    tails = [0.5 * (1.0 + level), 0.5 * (1.0 - level)] + ([] if upper_tail is None else [upper_tail])
    with warnings.catch_warnings():                  # a constant layer: all-NaN column, handled by the caller
        warnings.simplefilter("ignore", RuntimeWarning)
        q = np.nanquantile(t, tails, axis=0)
    limits = [value - q[0] * se, value - q[1] * se] + ([] if upper_tail is None else [value - q[2] * se])
    return tuple(float(x) for x in limits) if np.ndim(limits[0]) == 0 else tuple(limits)


def bootstrap_t_interval(per_init, level: float = 0.95, seed: int = 0,
                         n_boot: int = BOOTSTRAP_REPLICATES, upper_tail: float | None = None) -> tuple:
    """Studentized-bootstrap interval of each layer's mean of ``per_init`` (module docstring).

    Parameters
    ----------
    per_init : array_like, shape (R, L)
        Per-initialization values ``Y[r, l]`` (``InalResult.per_init``), ``R >= 2``.
    level : float
        Two-sided confidence level in (0, 1).
    seed : int
        Seed of the ``numpy.random.default_rng`` that draws the resamples (reproducible).
    n_boot : int
        Resamples; ``(n_boot + 1) * (1 - level) / 2`` an integer is best (1999 for 95 %).
    upper_tail : float, optional
        Also return the upper limit at this tail of ``t*`` (the same resamples), e.g. ``UPPER_TAIL``.

    Returns
    -------
    (lo, hi) : two arrays of shape (L,), or ``(lo, hi, hi_tail)`` with ``upper_tail``. A layer whose
    values are all equal gets ``[mean, mean]``.

    >>> lo, hi = bootstrap_t_interval(np.array([[1.0], [1.0], [1.0]]))
    >>> float(lo[0]), float(hi[0])
    (1.0, 1.0)
    """
    _check_level(level)
    y = np.asarray(per_init, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2:
        raise ValueError(f"per_init must have shape (n_inits >= 2, n_layers), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("per_init must be finite")
    R = y.shape[0]
    mean, se = y.mean(axis=0), y.std(axis=0, ddof=1) / math.sqrt(R)
    means, variances = _resampled_moments(y, n_boot, np.random.default_rng(seed))
    if upper_tail is not None and not 0.0 < upper_tail < 0.5:
        raise ValueError(f"upper_tail must be in (0, 0.5), got {upper_tail!r}")
    limits = _studentized(mean, se, means, np.sqrt(variances / R), level, upper_tail)
    constant = se == 0
    return tuple(np.where(constant, mean, x) for x in limits)
