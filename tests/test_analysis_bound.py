"""The bound check of analysis.bound_check on synthetic runs with known R(n) power laws."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.bound_check import BOUND_GROUP_KEYS, bound_points, check_bound, predicted_slope
from analysis.fits import fit_inal_exponents
from analysis.load import load_study
from analysis.synthetic import SyntheticTarget, network_size, write_synthetic_study

N_VALUES = (8, 12, 16, 24, 32)
GAMMA, T, A, SIGMA, WIDTH, DEPTH = 0.1, 100, 1.0, 0.01, 8, 1


def prefactor(n):
    E = network_size(n * n, WIDTH, DEPTH)
    return GAMMA * T * math.sqrt(E * A) / SIGMA, E


def runs_frame(r_slope, *, c=2.0, seeds=8, scatter=0.1, eval_se=1e-4, corr_at_nmax=0.05, replicates=1,
               n_values=N_VALUES, sigma=SIGMA, seed=0, status=None):
    """Runs whose seed-mean correlation is R(n) * prefactor(n) with R(n) ~ n^r_slope (None: no signal)."""
    rng = np.random.default_rng(seed)
    pref_max, _ = prefactor(max(n_values))
    rows = []
    for rep in range(replicates):
        for n in n_values:
            pref, E = prefactor(n)
            mean = 0.0 if r_slope is None else corr_at_nmax / pref_max * (n / max(n_values)) ** r_slope * pref
            for s in range(seeds):
                corr = mean * (1 + scatter * rng.standard_normal()) + eval_se * rng.standard_normal()
                rows.append(dict(target="parity", c=c, width=WIDTH, depth=DEPTH, init="normal", bias=True, n_steps=T,
                                 gamma=GAMMA, sigma=sigma, A=A, precision="clip", loss="squared", batch=0,
                                 N_spec="n^2", n=n, N=n * n, E=E, seed=s, correlation=corr, correlation_se=eval_se,
                                 status="ok" if status is None else status(n, s), replicate=rep))
    return pd.DataFrame(rows)


def inal_fit_row(c, lo, hi):
    return pd.DataFrame([dict(target="parity", c=float(c), width=WIDTH, depth=DEPTH, init="normal", bias=True,
                              c_hat=(lo + hi) / 2, c_hat_lo=lo, c_hat_hi=hi)])


def test_steep_decay_is_consistent():
    chk = check_bound(runs_frame(-0.8, c=3.0)).iloc[0]
    assert chk["verdict"] == "consistent"
    assert chk["predicted_slope"] == pytest.approx(-0.25)
    assert chk["slope_hi"] < -0.25
    assert chk["n_resolved"] == len(N_VALUES) and chk["n_unresolved"] == 0
    assert chk["slope_lo"] <= -0.8 <= chk["slope_hi"] or abs(chk["slope"] + 0.8) < 0.1
    # E = 8 n^2 + ...: sqrt(E) alone gives a slope near -1, below -0.25: the verdict is carried by it
    e = np.array([prefactor(n)[1] for n in N_VALUES], dtype=float)
    ls = np.polyfit(np.log(N_VALUES), -0.5 * np.log(e), 1)[0]
    assert chk["sqrtE_slope"] == pytest.approx(ls, abs=0.02)
    assert not chk["informative"] and chk["decay_by_sqrtE_alone"] and not chk["decay_established"]
    assert chk["violation_needs_corr_slope"] == pytest.approx(-0.25 - chk["sqrtE_slope"])
    assert chk["slope"] == pytest.approx(chk["corr_slope"] + chk["sqrtE_slope"], abs=1e-9)
    assert "uninformative" in chk["reason"]


def test_verdict_with_fixed_size_is_informative():
    """With E the same at every n, sqrt(E) implies slope 0: the verdict rests on the correlation itself."""
    runs = runs_frame(-1.8, c=3.0)   # E ~ 8 n^2 in the generator: |E corr| ~ n^(-1.8 + ~1) = n^-0.8
    runs["E"] = 5000
    chk = check_bound(runs).iloc[0]
    assert chk["sqrtE_slope"] == pytest.approx(0.0, abs=1e-12)
    assert chk["informative"] and chk["decay_established"] and chk["verdict"] == "consistent"
    assert chk["corr_slope"] == pytest.approx(chk["slope"], abs=1e-9)
    # the smallest detectable excess is (q_t + z_0.8) * slope_se, q_t the t quantile with m - 2 dof
    from scipy import stats
    q = stats.t.ppf(0.975, len(N_VALUES) - 2) + stats.norm.ppf(0.8)
    assert chk["detectable_excess"] == pytest.approx(q * chk["slope_se"], rel=1e-9)


def test_flat_ratio_with_high_c_is_violated():
    chk = check_bound(runs_frame(0.2, c=3.0, seed=1)).iloc[0]
    assert chk["verdict"] == "violated"
    assert chk["slope_lo"] > chk["predicted_slope"] == pytest.approx(-0.25)
    assert "lies above" in chk["reason"]


def test_upper_bounds_below_a_rising_fit_are_reported():
    rising = runs_frame(0.3, c=3.0, seed=12, n_values=(8, 12, 16, 24), corr_at_nmax=0.05)
    floor = runs_frame(None, c=3.0, seed=13, n_values=(64,), eval_se=1e-7)   # collapses to the noise floor
    chk = check_bound(pd.concat([rising, floor], ignore_index=True)).iloc[0]
    assert chk["verdict"] == "violated" and chk["n_unresolved_values"] == [64]
    assert chk["n_upper_below_fit"] == 1 and "upper bounds below the fitted line" in chk["reason"]


def test_no_signal_is_unresolved_with_upper_bounds():
    pts = bound_points(runs_frame(None, seed=2))
    chk = check_bound(runs_frame(None, seed=2)).iloc[0]
    assert chk["verdict"] == "unresolved"
    assert chk["n_resolved"] + chk["n_unresolved"] == len(N_VALUES)
    assert chk["n_unresolved"] >= len(N_VALUES) - 1
    assert math.isnan(chk["slope"])
    # the upper bound lies above |mean| / prefactor for every point
    assert (pts["R_upper"] > pts["corr_mean"].abs() / pts["prefactor"]).all()


def test_points_at_the_noise_floor_are_classified_unresolved():
    # steep decay: from 0.05 at n=8 down to ~1e-7 at n=64, far below the eval noise (se ~1e-4/sqrt(8))
    frame = runs_frame(-12.0, c=1.0, corr_at_nmax=1e-7, eval_se=1e-4, n_values=(8, 12, 16, 32, 48, 64),
                       scatter=0.05, seed=3)
    pts = bound_points(frame)
    mean_true = frame.groupby("n")["correlation"].mean()  # noisy, but only used for the clear cases
    big = pts["n"].isin([8, 12])
    assert pts.loc[big, "resolved"].all()
    assert not pts.loc[pts["n"].isin([48, 64]), "resolved"].any()
    assert (pts.loc[~pts["resolved"], "R_upper"] > 0).all() and len(mean_true) == 6


def test_false_resolution_rate_of_pure_noise_is_about_five_percent():
    # no signal: |mean| > t_{S-1} * se happens with probability 2(1 - Phi(2)) = 4.55%
    pts = bound_points(runs_frame(None, replicates=200, seed=4, n_values=(8, 16)),
                       group_keys=BOUND_GROUP_KEYS + ("replicate",))
    rate = float(pts["resolved"].mean())
    assert rate < 0.0455 + 3 * math.sqrt(0.0455 * 0.9545 / len(pts)), rate


def test_too_few_resolved_points_is_unresolved():
    chk = check_bound(runs_frame(-0.5, n_values=(8, 16))).iloc[0]
    assert chk["verdict"] == "unresolved" and "resolved n values" in chk["reason"]


def test_zero_noise_makes_the_bound_vacuous():
    chk = check_bound(runs_frame(-0.5, sigma=0.0)).iloc[0]
    assert chk["verdict"] == "unresolved" and "sigma = 0" in chk["reason"]


def test_c_eff_is_the_lower_limit_of_the_measured_exponent():
    frame = runs_frame(-0.1, c=3.0, seed=6)
    chk = check_bound(frame, inal_fit_row(3.0, 1.4, 2.0)).iloc[0]
    assert chk["c_eff"] == pytest.approx(1.4) and chk["c_source"] == "inal_fit"
    assert chk["predicted_slope"] == pytest.approx(predicted_slope(1.4)) == pytest.approx(-0.05)
    # a measured exponent above the nominal one does not raise c_eff
    chk = check_bound(frame, inal_fit_row(3.0, 3.5, 4.0)).iloc[0]
    assert chk["c_eff"] == 3.0 and chk["c_source"] == "nominal_within_fit"


def test_measured_exponent_below_one_means_the_theorem_does_not_apply():
    chk = check_bound(runs_frame(0.3, c=1.0), inal_fit_row(1.0, 0.5, 0.8)).iloc[0]
    assert chk["verdict"] == "unresolved" and "c >= 1" in chk["reason"]
    # interval reaching 1: tested with the lenient predicted slope
    chk = check_bound(runs_frame(-0.3, c=1.0), inal_fit_row(1.0, 0.9, 1.1)).iloc[0]
    assert chk["verdict"] == "consistent" and chk["predicted_slope"] == pytest.approx(0.0125)
    assert "lenient" in chk["reason"]


def test_diverged_and_failed_runs_are_counted_not_used():
    def status(n, s):
        return {0: "diverged", 1: "failed"}.get(s, "ok") if n == 8 else "ok"

    frame = runs_frame(-0.8, c=3.0, seed=8, status=status)
    frame.loc[frame["status"] != "ok", "corr"] = np.nan
    chk = check_bound(frame).iloc[0]
    assert chk["runs_diverged"] == 1 and chk["runs_failed"] == 1
    assert chk["runs_ok"] == 8 * len(N_VALUES) - 2
    assert chk["verdict"] == "consistent"


def test_an_n_without_ok_runs_is_no_point():
    frame = runs_frame(-0.8, c=3.0, seed=10, n_values=(8, 12, 16, 24), status=lambda n, s: "failed" if n == 24 else "ok")
    frame.loc[frame["status"] == "failed", "corr"] = np.nan
    chk = check_bound(frame).iloc[0]
    assert chk["n_resolved"] == 3 and chk["n_unresolved"] == 0 and chk["runs_failed"] == 8
    assert chk["verdict"] == "consistent"


def test_the_same_run_in_two_studies_counts_once():
    frame = runs_frame(-0.8, c=3.0, seed=11)
    frame["run_id"] = [f"r{i}" for i in range(len(frame))]
    once = bound_points(frame)
    twice = bound_points(pd.concat([frame.assign(study="a"), frame.assign(study="b")]))
    assert (twice["n_ok"] == once["n_ok"]).all()
    np.testing.assert_allclose(twice["corr_se"], once["corr_se"], rtol=1e-12)


# Slow (26 s under load): 400 replicated studies, each fitted and checked, to measure a 2.5 % rate.
def test_one_sided_rule_false_violation_rate_at_equality():
    """True slope exactly at the prediction: 'violated' about 2.5% of the time (one-sided test)."""
    frame = runs_frame(-0.25, c=3.0, replicates=400, seed=9, scatter=0.1)
    checks = check_bound(frame, group_keys=BOUND_GROUP_KEYS + ("replicate",))
    assert len(checks) == 400 and set(checks["verdict"]) <= {"consistent", "violated"}
    rate = float((checks["verdict"] == "violated").mean())
    assert rate <= 0.025 + 3.5 * math.sqrt(0.025 * 0.975 / 400), rate
    coverage = float(np.mean((checks["slope_lo"] <= -0.25) & (-0.25 <= checks["slope_hi"])))
    assert 0.90 <= coverage <= 0.99, coverage


def test_verdicts_from_a_written_study(tmp_path):
    targets = [SyntheticTarget("parity", c=1, inal_exponent=1.0, r_slope=-0.6),
               SyntheticTarget("staircase", c=3, inal_exponent=3.0, r_slope=0.4),
               SyntheticTarget("full_parity", c=4, inal_exponent=4.0, r_slope=None)]
    study = load_study(write_synthetic_study(tmp_path, "s", targets, seeds=range(8), rng_seed=1))
    checks = check_bound(study.runs, fit_inal_exponents(study.inal)).set_index("target")
    assert checks.loc["parity", "verdict"] == "consistent"
    assert checks.loc["staircase", "verdict"] == "violated"
    assert checks.loc["full_parity", "verdict"] == "unresolved"
