"""The planted family's exact spectrum against brute force, and the Fourier-step table."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.fourier_step import fourier_step_fits, fourier_step_table, target_spectrum
from inal_core.cube import enumerate_cube
from inal_core.fourier import degree_weights
from inal_core.targets import make_target


def _coef(f, x, bits):
    chi = x[:, list(bits)].prod(dim=1) if bits else torch.ones(x.shape[0], dtype=x.dtype)
    return float((f * chi).mean())


# Slow (16 s under load): brute force over the whole cube of n = 16 (65,536 points).
def test_planted_spectrum_against_brute_force():
    """n = 16, c = 3: p = 1/16, E fixes two event bits; fhat(x1) = p and fhat(x1 x_j) = p for each
    fixed bit, so W^{=2} >= 4 p^2 > W^{=1} = p^2 (the targets.py docstring)."""
    tgt = make_target("planted", 16, c=3)
    p = tgt.params["p"]
    assert p == pytest.approx(1 / 16)
    x = enumerate_cube(16, dtype=torch.float64)
    f = tgt(x)
    assert _coef(f, x, (0,)) == pytest.approx(p)
    ev = tgt.event_bits
    pair_coefs = [_coef(f, x, (0, j)) for j in ev]
    assert sum(c * c for c in pair_coefs) == pytest.approx(4 * p * p)   # the top two event bits: p each
    # the x1 1_E part has total weight E[1_E] = p, summed over x1 chi_A, A within the event bits
    total = sum(_coef(f, x, (0,) + A) ** 2 for r in range(len(ev) + 1) for A in itertools.combinations(ev, r))
    assert total == pytest.approx(p)
    w = degree_weights(f).numpy()           # FWHT, against the brute-force sums above
    assert w[1] == pytest.approx(p * p)
    assert w[2] == pytest.approx(sum(c * c for c in pair_coefs))
    assert w.sum() == pytest.approx(1.0)


def test_fourier_step_spectrum_levels():
    assert target_spectrum("parity", 8, 3.0) == (3, pytest.approx(1.0))
    k, w = target_spectrum("majority", 9, 1.0)
    assert k == 1 and w == pytest.approx(9 * (math.comb(8, 4) / 2**8) ** 2)   # fhat(i) = C(8,4)/2^8
    assert target_spectrum("parity", 30, 1.0) is None


def test_fourier_step_ratio_bounded_and_growing():
    """Synthetic INAL points: INAL = 0.2 n^-(k+1) keeps the ratio flat (bounded); 0.2 n^-(k+2) makes
    it grow like n (the slope's interval lies above 0)."""
    rows = []
    for label, extra in (("flat", 0.0), ("grow", 1.0)):
        for n in (6, 8, 10, 12, 14):
            inal = 0.2 * n ** -(2.0 + extra)
            se = 0.02 * inal
            rows.append(dict(target="parity", c=1.0, label=label, n=n, inal=inal, inal_se=se, resolved=True,
                             inal_lo=inal * 0.96, inal_hi=inal * 1.04, log_inal=math.log(inal), log_se=0.02))
    tab = fourier_step_table(pd.DataFrame(rows))
    assert tab["ratio"].iloc[0] == pytest.approx(1.0 / (6**2 * 0.2 * 6**-2.0))
    fits = fourier_step_fits(tab, ["target", "c", "label"]).set_index("label")
    assert fits.loc["flat", "verdict"] == "not rejected" and abs(fits.loc["flat", "slope"]) < 1e-6
    assert fits.loc["flat", "growth_excluded"] == pytest.approx(fits.loc["flat", "slope_hi"])
    assert fits.loc["grow", "verdict"] == "grows" and fits.loc["grow", "slope"] == pytest.approx(1.0)


def test_fourier_step_for_parities_is_the_inal_fit_restated():
    """W^{<=k} = 1 for a parity: the ratio's slope is ĉ - (k+1) exactly (ĉ from the same points), and the
    fit says it equals the INAL fit; majority (W^{<=1} < 1, changing with n) does not."""
    rows = []
    rng = np.random.default_rng(0)
    for target, c, n_values in (("parity", 2.0, (6, 8, 10, 12, 14)), ("majority", 1.0, (7, 9, 11, 13, 15))):
        for n in n_values:
            inal = 0.2 * n ** -(c + 0.3) * (1 + 0.02 * rng.standard_normal())
            rows.append(dict(target=target, c=c, n=n, inal=inal, inal_se=0.02 * inal, resolved=True,
                             inal_lo=inal * 0.96, inal_hi=inal * 1.04, log_inal=math.log(inal), log_se=0.02))
    pts = pd.DataFrame(rows)
    fits = fourier_step_fits(fourier_step_table(pts), ["target", "c"]).set_index("target")
    par = pts[pts["target"] == "parity"]
    c_hat = -np.polyfit(np.log(par["n"].astype(float)), par["log_inal"], 1)[0]   # equal weights = equal log_se
    assert fits.loc["parity", "equals_inal_fit"] and fits.loc["parity", "W_le_k_min"] == pytest.approx(1.0)
    assert fits.loc["parity", "slope"] == pytest.approx(c_hat - (2 + 1), abs=1e-9)
    assert not fits.loc["majority", "equals_inal_fit"] and fits.loc["majority", "W_le_k_max"] < 0.7
