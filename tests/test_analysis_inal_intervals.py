"""INAL intervals and the selection-free layer, on the project's own estimators.

Truth: the exact estimator's mean over very many initializations (a seed disjoint from the tested
ones). Samples: blocks of ``R`` consecutive initializations of one ``estimate_inal`` call; init ``r``
uses its own seed ``derive_seed(seed, "inal_init", r)`` (and, for Monte Carlo, its own input
stream), so each block is exactly what a separate call with those initializations returns, and the
blocks are independent.
"""

import functools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.inal_intervals import (calibrated_layer_intervals, chi2_dof, conditioned_output_interval,
                                     inal_interval, log_inal, reported_interval, selected_interval,
                                     selection_free_upper)
from inal_core.inal import estimate_inal, output_offset
from inal_core.inal_summary import UPPER_TAIL, bootstrap_t_interval, selection_free_max
from inal_core.networks import NetworkSpec
from inal_core.targets import Target, make_target

N, WIDTH = 6, 16


@functools.lru_cache(maxsize=None)  # shared by the parametrized tests (the same truth, 9 s at 100,000 inits)
def _truth(depth: int, k: int = 1, n_inits: int = 20_000) -> np.ndarray:
    return estimate_inal(make_target("parity", N, c=k), NetworkSpec(N, WIDTH, depth), n_inits=n_inits,
                         method="exact", seed=999).per_layer


def _blocks(depth: int, method: str, R: int, blocks: int, k: int = 1) -> np.ndarray:
    res = estimate_inal(make_target("parity", N, c=k), NetworkSpec(N, WIDTH, depth), n_inits=R * blocks,
                        method=method, n_inputs=256 if method == "mc" else None, seed=1)
    return res.per_init.reshape(blocks, R, -1)                      # (blocks, R, depth+1)


def _coverage(Y: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Coverage of the reported interval (what a job stores and the report shows: the hidden layers'
    with the 1 % bootstrap-t upper limit, the output neuron's from the last hidden layer, offset 0 for a
    parity) per layer, and of the selection-free value's interval against INAL (the max over layers of
    the truth), last."""
    R = Y.shape[1]
    hits = np.zeros(Y.shape[2] + 1)
    for b, y in enumerate(Y):
        mean, se = y.mean(0), y.std(0, ddof=1) / math.sqrt(R)
        boot_lo, boot_hi, boot_hi99 = bootstrap_t_interval(y, seed=b, upper_tail=UPPER_TAIL)
        lo, hi = reported_interval(mean, se, boot_lo, boot_hi, boot_hi99=boot_hi99)
        lo[-1], hi[-1] = conditioned_output_interval(mean[-2], se[-2], boot_lo[-2], boot_hi[-2], 0.0,
                                                     prev_boot_hi99=boot_hi99[-2])
        hits[:-1] += (lo <= truth) & (truth <= hi)
        sf = selection_free_max(y, level=0.95, seed=b)
        lo, hi = selection_free_upper(reported_interval(sf.value, sf.se, sf.boot_lo, sf.boot_hi)[0], hi)
        hits[-1] += lo <= truth.max() <= hi
    return hits / len(Y)                                             # (depth+2,)


def test_chi2_interval_closed_form():
    # nu = 2 m^2/se^2 = 8: [8 m / chi2_{8,.975}, 8 m / chi2_{8,.025}] with tabulated 17.535, 2.180
    lo, hi = inal_interval(2.0, 1.0)
    assert chi2_dof(2.0, 1.0) == pytest.approx(8.0)
    assert lo == pytest.approx(16 / 17.5345, rel=1e-4) and hi == pytest.approx(16 / 2.17973, rel=1e-4)
    assert inal_interval(0.5, 0.0) == (0.5, 0.5)
    lo, hi = inal_interval(-1e-3, 1e-3)                            # a negative Monte Carlo estimate: normal
    assert lo == pytest.approx(-1e-3 - 1.959964e-3) and hi == pytest.approx(-1e-3 + 1.959964e-3)


def test_chi2_interval_on_scaled_chi2_one_per_init():
    """Y_r = g chi2_1: the mean is g chi2_R / R. With nu = R known the interval would be exact; nu is
    estimated from the sample (2 mean^2/se^2), which costs coverage at small R: measured 92% at R = 32,
    94% at R = 256 (4000 replicates, sd 0.35%). Asserted as a floor and against the normal interval."""
    rng = np.random.default_rng(3)
    for R, floor in ((32, 0.91), (256, 0.93)):
        Y = 0.01 * rng.standard_normal((4000, R)) ** 2
        mean, se = Y.mean(1), Y.std(1, ddof=1) / math.sqrt(R)
        lo, hi = inal_interval(mean, se)
        chi2_cov = np.mean((lo <= 0.01) & (0.01 <= hi))
        z_cov = np.mean(np.abs(mean - 0.01) <= 1.959964 * se)
        assert floor <= chi2_cov <= 0.97 and chi2_cov > z_cov


def test_log_inal_matches_chi2_moments():
    """E[log(chi2_nu/nu)] = psi(nu/2) - log(nu/2) and Var = psi'(nu/2): compare with simulation."""
    rng = np.random.default_rng(4)
    nu = 6.0
    draws = np.log(rng.chisquare(nu, 400_000) / nu)
    # with se chosen so that 2 m^2/se^2 = nu, log_inal removes the bias and reports the sd
    value, sd = log_inal(1.0, math.sqrt(2 / nu))
    assert -value == pytest.approx(draws.mean(), abs=3e-3)
    assert sd == pytest.approx(draws.std(), rel=1e-2)


def test_selection_free_max_by_hand():
    Y = np.array([[1.0, 5.0], [3.0, 0.0], [0.0, 1.0], [2.0, 1.0], [4.0, 0.0], [0.0, 3.0]])
    r = selection_free_max(Y)
    # first half rows 0-2: means (4/3, 2) -> layer 2, measured on rows 3-5: mean 4/3;
    # second half rows 3-5: means (2, 4/3) -> layer 1, measured on rows 0-2: mean 4/3
    assert (r.layer_a, r.layer_b) == (2, 1)
    assert r.value == pytest.approx(4 / 3)
    # the variances are pooled over all six initializations of each chosen layer
    var_2, var_1 = np.var([5.0, 0.0, 1.0, 1.0, 0.0, 3.0], ddof=1), np.var([1.0, 3.0, 0.0, 2.0, 4.0, 0.0], ddof=1)
    assert r.se == pytest.approx(0.5 * math.sqrt(var_2 / 3 + var_1 / 3))
    with pytest.raises(ValueError, match="at least 4"):
        selection_free_max(Y[:3])


# Slow for a test (the slowest outside Ray: 154 s measured under load from other work): a
# coverage can only be checked over many intervals, 4 settings x 150 blocks of INAL estimates,
# and fewer blocks would widen the binomial band past what the check can tell apart.
def test_interval_coverage_fast():
    """Depth 1, exact and Monte Carlo, 32 and 256 inits, 4 x 150 blocks: coverage of the reported
    95 % interval pooled over the settings, per layer and for the selection-free value, in
    [93 %, 98 %] (binomial sd 0.8 %; the interval's nominal coverage on these near-Gaussian values is
    96.5 %: 2.5 % below, 1 % above, docs/analysis.md). Every setting with more blocks: the slow test."""
    torch.manual_seed(0)
    truth = _truth(1)
    cov = [_coverage(_blocks(1, method, R, 150), truth) for method in ("exact", "mc") for R in (32, 256)]
    pooled = np.mean(cov, axis=0)
    assert np.all((0.93 <= pooled) & (pooled <= 0.98)), cov


@pytest.mark.slow  # 8 settings x 600 blocks of INAL estimates, each against the mean of 100,000 inits
@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("method", ["exact", "mc"])
@pytest.mark.parametrize("R", [32, 256])
def test_interval_coverage_every_layer(depth, method, R):
    """Every layer (the output neuron's values are heavy-tailed: excess kurtosis 20-60) and the
    selection-free value, 600 blocks against the exact mean over 100,000 other initializations:
    coverage of the reported 95 % interval in [93 %, 98 %] (binomial sd 0.75 %; nominal 96.5 % on these
    near-Gaussian values: 2.5 % below, 1 % above)."""
    truth = _truth(depth, n_inits=100_000)
    cov = _coverage(_blocks(depth, method, R, 600), truth)
    assert np.all((0.93 <= cov) & (cov <= 0.98)), cov


def test_bootstrap_t_by_hand():
    """The studentized bootstrap, written out as a loop over resamples, on a skewed sample."""
    rng = np.random.default_rng(5)
    y = rng.standard_normal((24, 2)) ** 2
    lo, hi = bootstrap_t_interval(y, seed=7, n_boot=999)
    R = len(y)
    idx = np.random.default_rng(7).integers(0, R, size=(999, R))   # the same draws, row by row below
    t = []
    for row in idx:
        s = y[row]
        t.append((s.mean(0) - y.mean(0)) / (s.std(0, ddof=1) / math.sqrt(R)))
    q_hi, q_lo, q_99 = np.quantile(np.array(t), [0.975, 0.025, 0.01], axis=0)
    se = y.std(0, ddof=1) / math.sqrt(R)
    np.testing.assert_allclose(lo, y.mean(0) - q_hi * se, rtol=1e-12)
    np.testing.assert_allclose(hi, y.mean(0) - q_lo * se, rtol=1e-12)
    assert np.all(lo < y.mean(0)) and np.all(y.mean(0) < hi)
    # the heavy-tail upper limit: the same resamples, the 1 % quantile of t*
    lo2, hi2, hi99 = bootstrap_t_interval(y, seed=7, n_boot=999, upper_tail=UPPER_TAIL)
    np.testing.assert_array_equal(lo2, lo)
    np.testing.assert_array_equal(hi2, hi)
    np.testing.assert_allclose(hi99, y.mean(0) - q_99 * se, rtol=1e-12)
    assert np.all(hi99 > hi)
    with pytest.raises(ValueError, match="upper_tail"):
        bootstrap_t_interval(y, upper_tail=0.6)


def test_reported_interval_is_the_hull():
    lo, hi = inal_interval(1.0, 0.25)
    assert reported_interval(1.0, 0.25) == (lo, hi)                       # nothing stored: chi-square
    assert reported_interval(1.0, 0.25, 0.5, 1.5) == (0.5, hi)           # the hull of the two
    assert reported_interval(1.0, 0.25, math.nan, math.nan) == (lo, hi)  # a NaN bootstrap is ignored
    assert reported_interval(1.0, 0.25, 0.5, 1.5, level=0.9) == inal_interval(1.0, 0.25, 0.9)
    # the stored 1 % upper limit replaces the 2.5 % one; NaN (a study written before it) is ignored
    assert reported_interval(1.0, 0.25, 0.5, 1.5, boot_hi99=2.5) == (0.5, 2.5)
    assert reported_interval(1.0, 0.25, 0.5, 1.5, boot_hi99=math.nan) == (0.5, hi)
    assert reported_interval(1.0, 0.25, 0.5, 1.5, level=0.9, boot_hi99=2.5) == inal_interval(1.0, 0.25, 0.9)


def test_selection_free_max_removes_the_upward_bias():
    """Depth 1: hidden and output layers tie in expectation; the plug-in max is biased up, the
    split estimate is not (it can only err low), measured over 300 blocks of 32 initializations."""
    truth = _truth(1)
    Y = _blocks(1, "exact", 32, 300)
    plug_in = Y.mean(1).max(1)
    sf = np.array([selection_free_max(y).value for y in Y])
    top = truth.max()
    se_mean = sf.std(ddof=1) / math.sqrt(len(sf))
    assert plug_in.mean() > top * 1.04                     # the known bias (+9-16 % at 32 inits)
    assert sf.mean() <= top + 3 * se_mean                  # no upward bias
    assert abs(sf.mean() / top - 1) < 0.06


# ----------------------------------------------------------------------------- the hard cases
# Parities of degree 3 and 4 at n = 8, width 32: per-init values with excess kurtosis 13-14 in the
# hidden layers and 43-134 at the output neuron (measured over 200,000 inits). The whole table
# (every cell, 4,000 / 500 blocks) is `inal-bench` `interval_coverage_hard`
# (inal_bench/stats_calibration.py); here a pooled version that fits the default run.

HARD_N, HARD_WIDTH = 8, 32


class _OrOfTwo(Target):
    """f = -1 iff x_0 = x_1 = -1: E_x f = 1/2, so the output neuron's INAL exceeds the last hidden layer's."""

    name = "or2"

    def __init__(self, n):
        super().__init__(n, 1.0, (0, 1), {})

    def _evaluate(self, x):
        return torch.where((x[..., 0] < 0) & (x[..., 1] < 0), -1.0, 1.0).to(x.dtype)


@pytest.mark.parametrize("init", ["normal_bias1", "normal"])
def test_output_neuron_is_last_hidden_layer_plus_offset(init):
    """INAL_out = INAL_{L-1} + v_b E_x[f]^2 (inal_core.inal_summary): v_b = 1 (normal_bias1) or 1/16,
    E_x f = 1/2; the output neuron's own mean over 6000 inits within 4 standard errors."""
    target, spec = _OrOfTwo(6), NetworkSpec(6, 16, 2, init=init)
    offset = output_offset(target, spec)
    assert offset == pytest.approx((1.0 if init == "normal_bias1" else 1 / 16) * 0.25)
    res = estimate_inal(target, spec, n_inits=6000, method="exact", seed=5)
    diff = res.per_init[:, -1] - (res.per_init[:, -2] + offset)        # mean 0 by the identity
    assert abs(diff.mean()) <= 4 * diff.std(ddof=1) / math.sqrt(len(diff))
    assert offset > 10 * diff.std(ddof=1) / math.sqrt(len(diff))        # and the offset is resolved
    assert output_offset(make_target("parity", 6, c=3), spec) == 0.0


def test_calibrated_intervals_use_the_last_hidden_layer_and_fall_back():
    frame = pd.DataFrame({"inal_id": ["a"] * 3, "depth": [2] * 3, "layer": [1, 2, 3], "inal": [1.0, 2.0, 5.0],
                          "inal_se": [0.2, 0.3, 2.0], "inal_boot_lo": [0.7, 1.5, 2.0],
                          "inal_boot_hi": [1.4, 2.8, 12.0], "output_offset": [0.25] * 3})
    lo, hi, how = calibrated_layer_intervals(frame)
    l2 = reported_interval(2.0, 0.3, 1.5, 2.8)
    assert (lo[2], hi[2]) == pytest.approx((l2[0] + 0.25, l2[1] + 0.25))
    assert (lo[1], hi[1]) == pytest.approx(l2) and "last hidden layer" in how[2]
    lo, hi, _ = calibrated_layer_intervals(frame.assign(inal_boot_hi99=[1.6, 3.3, 15.0]))   # the 1 % limit stored
    assert hi[1] == pytest.approx(max(3.3, l2[1])) and hi[2] == pytest.approx(hi[1] + 0.25)
    # the selection-free value: its own lower limit, the top of the layers' calibrated upper limits
    sel = frame.assign(inal_boot_hi99=[1.6, 3.3, 15.0], selected_inal=1.9, selected_inal_se=0.3,
                       selected_inal_boot_lo=1.4, selected_inal_boot_hi=2.9, selected_inal_boot_hi99=3.1)
    s_lo, s_hi = selected_interval(sel)
    assert np.allclose(s_lo, reported_interval(1.9, 0.3, 1.4, 2.9)[0]) and np.allclose(s_hi, hi[1] + 0.25)
    s_lo, s_hi = selected_interval(sel.drop(columns="inal_id"))                # no setting key: its own interval
    assert np.allclose(s_hi, reported_interval(1.9, 0.3, 1.4, 2.9, boot_hi99=3.1)[1])
    old = frame.drop(columns="output_offset")                             # a study written before
    lo, hi, how = calibrated_layer_intervals(old)
    assert (lo[2], hi[2]) == pytest.approx(reported_interval(5.0, 2.0, 2.0, 12.0)) and "own values" in how[2]


@functools.lru_cache(maxsize=None)
def _hard_truth(k: int) -> np.ndarray:
    return estimate_inal(make_target("parity", HARD_N, c=k), NetworkSpec(HARD_N, HARD_WIDTH, 2), n_inits=20_000,
                         method="exact", seed=999).per_layer


def test_interval_coverage_hard_cases_pooled():
    """Degree 3 and 4, depth 2 (its layer 1 is a depth-1 network's hidden layer; a depth-1 output
    neuron's interval is that layer's), 32 inits x 200 blocks per degree against the mean over 20,000
    other inits: coverage of the reported interval (hidden layers and the selection-free value with the
    1 % bootstrap-t upper limit, the output neuron from the last hidden layer), pooled over the two
    degrees. Measured over 8,000 blocks per cell (docs/analysis.md): 94.3-96.8 %, truth above the upper
    limit in 1.4-4.0 %; expected here about 95.5-96.2 % and 2.2-2.7 % above. With 400 blocks a coverage
    has binomial sd 1.0 % and an upper-miss rate of 2.5 % sd 0.8 %: asserted [93 %, 97.5 %] and <= 4 %
    above (about 2 sd from the expected values). The 256-init cells and the full table are
    `inal-bench` `interval_coverage_hard`."""
    from inal_bench.stats_calibration import _block_coverage

    covs, ups = [], []
    for k in (3, 4):
        Y = estimate_inal(make_target("parity", HARD_N, c=k), NetworkSpec(HARD_N, HARD_WIDTH, 2), n_inits=32 * 200,
                          method="exact", seed=1).per_init.reshape(200, 32, -1)
        c = _block_coverage(Y, _hard_truth(k), 0.0)
        covs.append(c["coverage"])
        ups.append(c["upper_miss"])
    cov, up = np.mean(covs, axis=0), np.mean(ups, axis=0)
    assert np.all((0.93 <= cov) & (cov <= 0.975)), cov
    assert np.all(up <= 0.04), up
