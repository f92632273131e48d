"""INAL exponents honest about curvature and multiplicity (analysis.fits): the fit range rule and Holm."""

import numpy as np
import pandas as pd
import pytest

from analysis.fits import fit_inal_exponents

N_VALUES = (4, 6, 8, 10, 12, 16, 20, 24)


def inal_frame(curve, *, c=2.0, rel_se=0.01, seed=0, target="parity"):
    """One INAL row per n (layer 1, the max), value curve(n) (1 + rel_se z), se rel_se * curve(n)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in N_VALUES:
        truth = curve(n)
        rows.append(dict(target=target, c=c, width=32, depth=1, init="normal", bias=True, n=n, layer=1,
                         inal=truth * (1 + rel_se * rng.standard_normal()), inal_se=rel_se * truth, is_max=True,
                         inal_id=f"{target}-{c}-{n}", n_inits=256))
    return pd.DataFrame(rows)


def test_a_power_law_is_fitted_over_all_n():
    fit = fit_inal_exponents(inal_frame(lambda n: 0.2 * n**-2.0), layer="max").iloc[0]
    assert fit["fit_rule"] == "all n" and fit["n_min"] == 4 and fit["chi2_p"] >= 0.01
    assert fit["chi2_p_all"] == fit["chi2_p"]


def test_curvature_at_small_n_moves_the_fit_range_up():
    """INAL = 0.2 n^-2 (1 + 4/n)^2: curved at small n, a power law (within 1% errors) only further out.
    The all-n fit is rejected; the fit from the first n_min that passes is reported and says so."""
    curve = lambda n: 0.2 * n**-2.0 * (1 + 4.0 / n) ** 2
    fit = fit_inal_exponents(inal_frame(curve), layer="max").iloc[0]
    assert fit["chi2_p_all"] < 0.01
    assert fit["n_min"] > 4 and fit["fit_rule"].startswith(f"n >= {fit['n_min']}")
    assert fit["chi2_p"] >= 0.01 and fit["power_law"]
    # the local slope of the curve over the fitted range is what the fit estimates
    x = np.log([n for n in N_VALUES if n >= fit["n_min"]])
    local = -np.polyfit(x, np.log([curve(n) for n in N_VALUES if n >= fit["n_min"]]), 1)[0]
    assert fit["c_hat_lo"] <= local <= fit["c_hat_hi"]


def test_holm_over_groups():
    """Two groups whose ĉ is far from nominal and one on it: the Holm-adjusted p-values are the
    step-down products of the raw ones, and at least as large."""
    frames = [inal_frame(lambda n: 0.2 * n**-2.0, c=2.0, seed=1, target="a"),
              inal_frame(lambda n: 0.2 * n**-2.0, c=2.5, seed=2, target="b"),
              inal_frame(lambda n: 0.2 * n**-3.0, c=2.0, seed=3, target="c")]
    fits = fit_inal_exponents(pd.concat(frames, ignore_index=True), layer="max").set_index("target")
    p = fits["p_c_nominal"]
    assert p["a"] > 0.05 and p["b"] < 1e-6 and p["c"] < 1e-6
    order = p.sort_values().index
    expected = np.maximum.accumulate([min(1.0, (3 - i) * p[k]) for i, k in enumerate(order)])
    assert fits.loc[order, "p_c_nominal_holm"].to_numpy() == pytest.approx(expected)
    assert (fits["p_c_nominal_holm"] >= p).all()
