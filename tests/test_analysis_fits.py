"""INAL exponent fits on synthetic INAL rows with known power laws plus Gaussian noise."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.fits import INAL_GROUP_KEYS, fit_inal_exponents, inal_points
from analysis.load import load_inal
from analysis.synthetic import SyntheticTarget, write_synthetic_study

N_VALUES = (8, 10, 12, 16, 20, 24, 32)


def inal_rows(c_true, *, amplitude=0.2, rel_se=0.05, floor_se=0.0, n_values=N_VALUES, replicates=1,
              seed=0, target="parity", c_nominal=None):
    """Rows in the store's ``inal`` schema: max layer only (is_max), estimate = truth + se * z."""
    rng = np.random.default_rng(seed)
    rows = []
    for rep in range(replicates):
        for n in n_values:
            truth = amplitude * n ** (-c_true)
            se = math.sqrt((rel_se * truth) ** 2 + floor_se**2)
            rows.append(dict(target=target, c=float(c_nominal if c_nominal is not None else c_true), n=n,
                             width=8, depth=1, init="normal", bias=True, estimator="mc", layer=1,
                             inal=truth + se * rng.standard_normal(), inal_se=se, is_max=True,
                             n_inits=1000, n_inputs=4096, inal_id=f"{rep}-{n}", replicate=rep))
    return pd.DataFrame(rows)


@pytest.mark.parametrize("c_true", [1.0, 2.0, 4.0, 2.7])
def test_fit_recovers_exponent_within_interval(c_true):
    # one replicate: the truth lies in the 99.9% interval (a 1-in-1000 miss); the 95% rate is
    # tested over many replicates below
    fits = fit_inal_exponents(inal_rows(c_true, seed=int(10 * c_true)), level=0.999)
    assert len(fits) == 1
    row = fits.iloc[0]
    assert row["status"] == "fitted" and row["n_points"] == len(N_VALUES)
    assert row["c_hat_lo"] <= c_true <= row["c_hat_hi"]
    assert row["c_hat"] == pytest.approx(c_true, abs=0.15)
    assert row["c_hat_hi"] - row["c_hat_lo"] < 0.6


# Slow (13 s under load): 400 replicated exponent fits, to measure a coverage to about 1 %.
def test_fit_interval_coverage_over_400_replicates():
    """The 95% interval covers the true exponent at about 95%: 400 replicates, binomial sd 1.1%."""
    rows = inal_rows(3.0, rel_se=0.08, replicates=400, seed=7, n_values=(8, 12, 16, 24, 32))
    fits = fit_inal_exponents(rows, group_keys=INAL_GROUP_KEYS + ("replicate",))
    assert len(fits) == 400 and (fits["status"] == "fitted").all()
    coverage = float(np.mean((fits["c_hat_lo"] <= 3.0) & (3.0 <= fits["c_hat_hi"])))
    # at least nominal: the residual scale is floored at 1, so with right errors the interval is conservative
    assert 0.93 <= coverage, coverage
    # the exponent estimate itself is unbiased to within its Monte Carlo error
    assert abs(fits["c_hat"].mean() - 3.0) < 4 * fits["c_hat"].std() / math.sqrt(400)


def test_points_at_the_noise_floor_are_unresolved_and_not_fitted():
    # truth 0.2 n^-4 falls below the estimator's floor (se 1e-6) beyond n ~ 12
    rows = inal_rows(4.0, floor_se=1e-6, seed=3)
    pts = inal_points(rows)
    truth = 0.2 * pts["n"].astype(float) ** -4.0
    assert not pts.loc[truth < 1e-6, "resolved"].any()         # at or below the floor: unresolved
    assert pts.loc[truth > 1e-4, "resolved"].all()             # 100 floor-se above: resolved
    assert (pts["upper"] >= pts["inal"]).all()
    fit = fit_inal_exponents(rows).iloc[0]
    assert fit["n_unresolved"] == int((~pts["resolved"]).sum()) > 0
    assert fit["n_fit_max"] <= 16


def test_too_few_resolved_points_gives_no_exponent():
    fit = fit_inal_exponents(inal_rows(4.0, floor_se=1e-4, seed=5)).iloc[0]
    assert fit["status"].startswith("too few") and math.isnan(fit["c_hat"])


def test_duplicate_estimates_are_combined_by_inverse_variance():
    rows = inal_rows(2.0, seed=11, n_values=(8, 16, 32))
    dup = rows.copy()
    dup["inal_se"] *= 2.0
    dup["inal"] = dup["inal"] * 1.1
    dup["inal_id"] = dup["inal_id"] + "-second-estimate"
    pts = inal_points(pd.concat([rows, dup]))
    assert (pts["n_estimates"] == 2).all()
    w1, w2 = 1 / rows["inal_se"].to_numpy() ** 2, 1 / dup["inal_se"].to_numpy() ** 2
    expect = (w1 * rows["inal"].to_numpy() + w2 * dup["inal"].to_numpy()) / (w1 + w2)
    np.testing.assert_allclose(pts["inal"], expect, rtol=1e-12)
    np.testing.assert_allclose(pts["inal_se"], 1 / np.sqrt(w1 + w2), rtol=1e-12)


def test_the_same_setting_in_two_studies_counts_once():
    rows = inal_rows(2.0, seed=12, n_values=(8, 16, 32))
    pts = inal_points(pd.concat([rows.assign(study="a"), rows.assign(study="b")]))
    assert (pts["n_estimates"] == 1).all()
    np.testing.assert_allclose(pts["inal_se"], rows["inal_se"], rtol=1e-12)


def test_layer_selection_and_groups_from_a_written_study(tmp_path):
    targets = [SyntheticTarget("parity", c=2, inal_exponent=2.0), SyntheticTarget("majority", c=1, inal_exponent=1.0)]
    study = write_synthetic_study(tmp_path, "s", targets, T=0, depth=2, rng_seed=2)
    inal = load_inal(study)
    fits = fit_inal_exponents(inal, level=0.999)
    assert sorted(fits["target"]) == ["majority", "parity"]
    for _, row in fits.iterrows():
        assert row["c_hat_lo"] <= row["c_nominal"] <= row["c_hat_hi"]
    # the output layer (depth+1 = 3) has the same exponent in the synthetic model
    out = fit_inal_exponents(inal, layer=3, level=0.999)
    assert (out["c_hat_lo"] <= out["c_nominal"]).all() and (out["c_nominal"] <= out["c_hat_hi"]).all()


def test_selected_layer_falls_back_to_max_on_old_studies():
    """Rows without the selection-free columns (studies written before them): 'selected' = 'max', said so."""
    from analysis.fits import resolve_layer

    rows = inal_rows(2.0, seed=5)
    assert resolve_layer(rows, "selected")[0] == "max" and "predates" in resolve_layer(rows, "selected")[1]
    a, b = fit_inal_exponents(rows), fit_inal_exponents(rows, layer="max")
    assert a["c_hat"].tolist() == b["c_hat"].tolist()
    # with the columns, 'selected' fits them: here the selection-free value is twice the max row's
    rows = rows.assign(selected_inal=2 * rows["inal"], selected_inal_se=2 * rows["inal_se"],
                       selected_layer_a=1, selected_layer_b=1)
    pts = inal_points(rows)
    assert np.allclose(pts.sort_values("n")["inal"], 2 * inal_points(rows, layer="max").sort_values("n")["inal"])


def test_points_carry_the_calibrated_interval():
    """A point of one estimate shows `calibrated_layer_intervals`' interval: the output neuron's is the
    last hidden layer's shifted by `output_offset`, a hidden layer's uses the stored 1 % upper limit;
    the selection-free point uses its own stored limits."""
    from analysis.inal_intervals import calibrated_layer_intervals, reported_interval

    frame = pd.DataFrame({"target": "parity", "c": 3.0, "n": 8, "width": 32, "depth": 1, "init": "normal", "bias": True,
                          "inal_id": "a", "layer": [1, 2], "inal": [1.0, 1.3], "inal_se": [0.2, 0.9],
                          "is_max": [False, True], "inal_boot_lo": [0.7, 0.2], "inal_boot_hi": [1.4, 4.0],
                          "inal_boot_hi99": [1.7, 6.0], "output_offset": 0.1,
                          "selected_inal": 1.1, "selected_inal_se": 0.25, "selected_layer_a": 1, "selected_layer_b": 1,
                          "selected_inal_boot_lo": 0.7, "selected_inal_boot_hi": 1.6, "selected_inal_boot_hi99": 2.0})
    lo, hi, _ = calibrated_layer_intervals(frame)
    out = inal_points(frame, layer=2).iloc[0]
    assert (out["inal_lo"], out["inal_hi"]) == pytest.approx((lo[1], hi[1]))
    l1 = reported_interval(1.0, 0.2, 0.7, 1.4, boot_hi99=1.7)
    assert (out["inal_lo"], out["inal_hi"]) == pytest.approx((l1[0] + 0.1, l1[1] + 0.1))
    assert l1[1] == pytest.approx(1.7)
    first = inal_points(frame, layer=1).iloc[0]
    assert (first["inal_lo"], first["inal_hi"]) == pytest.approx(l1)
    # the selection-free point: its own lower limit, the largest of the layers' calibrated upper limits
    sel = inal_points(frame).iloc[0]
    assert sel["inal_lo"] == pytest.approx(reported_interval(1.1, 0.25, 0.7, 1.6, boot_hi99=2.0)[0])
    assert sel["inal_hi"] == pytest.approx(max(hi)) and max(hi) == pytest.approx(1.8)
