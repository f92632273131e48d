"""Student-t quantiles and weighted line fits of analysis.regression, against closed forms and statistics."""

import math
from statistics import NormalDist

import numpy as np
import pytest

from analysis.regression import fit_line, student_t_cdf, student_t_quantile

PROBS = (0.6, 0.9, 0.95, 0.975, 0.995, 0.9995)


@pytest.mark.parametrize("p", PROBS)
def test_t_quantile_one_dof_is_cauchy(p):
    # Cauchy: F(t) = 1/2 + atan(t)/pi  =>  t = tan(pi (p - 1/2))
    assert student_t_quantile(p, 1) == pytest.approx(math.tan(math.pi * (p - 0.5)), rel=1e-9)


@pytest.mark.parametrize("p", PROBS)
def test_t_quantile_two_dof_closed_form(p):
    # nu = 2: t = (2p - 1) / sqrt(2 p (1 - p))
    assert student_t_quantile(p, 2) == pytest.approx((2 * p - 1) / math.sqrt(2 * p * (1 - p)), rel=1e-9)


@pytest.mark.parametrize("p", PROBS)
def test_t_quantile_large_dof_tends_to_normal(p):
    z = NormalDist().inv_cdf(p)
    assert student_t_quantile(p, 1e7) == pytest.approx(z, rel=1e-5)
    assert student_t_quantile(p, math.inf) == pytest.approx(z, rel=1e-12)
    assert student_t_quantile(1 - p, 7) == pytest.approx(-student_t_quantile(p, 7), rel=1e-12)


@pytest.mark.parametrize("dof", [3, 5, 12])
def test_t_cdf_matches_monte_carlo(dof):
    draws = np.random.default_rng(dof).standard_t(dof, size=400_000)
    for t in (0.5, 1.5, 3.0):
        empirical = float(np.mean(draws <= t))
        assert student_t_cdf(t, dof) == pytest.approx(empirical, abs=4 * math.sqrt(0.25 / draws.size))


def test_t_quantile_table_values():
    # Printed tables (two-sided 95%): 12.706, 4.303, 2.571, 2.228, 2.042
    for dof, t in ((1, 12.706), (2, 4.303), (5, 2.571), (10, 2.228), (30, 2.042)):
        assert student_t_quantile(0.975, dof) == pytest.approx(t, abs=6e-4)


def test_fit_line_matches_closed_form_wls():
    rng = np.random.default_rng(1)
    x = np.log(np.array([8, 10, 12, 16, 20, 24.0]))
    se = rng.uniform(0.02, 0.2, x.size)
    y = 1.5 - 2.5 * x + se * rng.standard_normal(x.size)
    w = 1 / se**2
    xbar, ybar = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    slope = np.sum(w * (x - xbar) * (y - ybar)) / np.sum(w * (x - xbar) ** 2)
    known_var = 1 / np.sum(w * (x - xbar) ** 2)
    fit = fit_line(x, y, se)
    assert fit.slope == pytest.approx(slope, rel=1e-10)
    assert fit.intercept == pytest.approx(ybar - slope * xbar, rel=1e-10)
    chi2 = np.sum(w * (y - fit.intercept - fit.slope * x) ** 2)
    assert fit.slope_se == pytest.approx(math.sqrt(known_var * max(1.0, chi2 / (x.size - 2))), rel=1e-10)
    known = fit_line(x, y, se, scale="known")
    assert known.slope_se == pytest.approx(math.sqrt(known_var), rel=1e-10)


def test_fit_line_needs_scatter_for_residual_interval():
    fit = fit_line([1.0, 2.0], [0.0, 1.0], [0.1, 0.1])
    assert fit.slope == pytest.approx(1.0)
    assert fit.slope_ci == (-math.inf, math.inf)


@pytest.mark.parametrize("bad", [dict(x=[1, 1, 1], y=[1, 2, 3]), dict(x=[1, 2], y=[1, float("nan")]),
                                 dict(x=[1, 2, 3], y=[1, 2, 3], y_se=[0.1, 0.0, 0.1])])
def test_fit_line_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        fit_line(**bad)


@pytest.mark.parametrize("scale,m", [("residual", 4), ("residual", 8), ("known", 5)])
def test_fit_line_interval_coverage(scale, m):
    """400 replicates: the 95% interval covers the true slope at about 95% (binomial sd 1.1%)."""
    rng = np.random.default_rng(100 + m)
    x = np.log(np.linspace(8, 32, m))
    se = np.linspace(0.05, 0.15, m)
    covered = 0
    for _ in range(400):
        y = 0.3 - 1.7 * x + se * rng.standard_normal(m)
        lo, hi = fit_line(x, y, se, scale=scale).slope_ci
        covered += lo <= -1.7 <= hi
    if scale == "known":
        assert 0.915 <= covered / 400 <= 0.985
    else:  # the floor at 1 makes the residual interval conservative when the errors are right
        assert 0.93 <= covered / 400


@pytest.mark.parametrize("m", [3, 4, 6, 10])
def test_residual_interval_never_narrower_than_the_standard_errors(m):
    """The PDG floor: whatever the scatter, the residual interval contains the known-errors interval."""
    rng = np.random.default_rng(7 + m)
    x = np.log(np.linspace(4, 20, m))
    se = rng.uniform(0.05, 0.2, m)
    for shrink in (0.01, 0.1, 0.5, 1.0, 3.0):  # points scattering far less (and more) than their errors
        y = 0.5 - 1.0 * x + shrink * se * rng.standard_normal(m)
        known = fit_line(x, y, se, scale="known")
        resid = fit_line(x, y, se)
        assert resid.slope_se >= known.slope_se * (1 - 1e-12)
        assert resid.slope_ci[0] <= known.slope_ci[0] + 1e-12 and resid.slope_ci[1] >= known.slope_ci[1] - 1e-12


def test_birge_scale_never_narrower_than_known_and_conservative():
    rng = np.random.default_rng(5)
    x = np.log(np.array([8.0, 12, 16, 24, 32]))
    se = np.full(x.size, 0.1)
    covered = 0
    for _ in range(400):
        y = 1.0 - 2.0 * x + se * rng.standard_normal(x.size)
        known, birge = fit_line(x, y, se, scale="known"), fit_line(x, y, se, scale="birge")
        assert birge.slope_se >= known.slope_se * (1 - 1e-12)
        if known.chi2 <= known.dof:
            assert birge.slope_se == pytest.approx(known.slope_se)
        lo, hi = birge.slope_ci
        covered += lo <= -2.0 <= hi
    # errors right: coverage at or above 95% (binomial sd 1.1%), below the certainty of a t(1) interval
    assert 0.93 <= covered / 400 <= 0.995
