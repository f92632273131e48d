"""Kaplan-Meier time to learn, against a hand computation and simulated exponential data."""

import math

import numpy as np
import pandas as pd
import pytest

from analysis.time_to_learn import first_passage, kaplan_meier, km_median, time_to_learn_fits, time_to_learn_table


def test_kaplan_meier_by_hand():
    # times 1 2 2+ 3 4+ 5 (+ = censored)
    t = [1, 2, 2, 3, 4, 5]
    e = [1, 1, 0, 1, 0, 1]
    tj, s, v = kaplan_meier(t, e)
    assert tj.tolist() == [1, 2, 3, 5]
    assert s[:3] == pytest.approx([5 / 6, 2 / 3, 4 / 9])       # 5/6; x 4/5 (5 at risk); x 2/3 (3 at risk)
    assert s[3] == 0.0
    assert v[:3] == pytest.approx([1 / 30, 1 / 30 + 1 / 20, 1 / 30 + 1 / 20 + 1 / 6])
    med, lo, hi = km_median(t, e)
    assert med == 3.0
    # log-log band at t=2 (S=2/3): S^exp(+-1.96 sqrt(V)/|log S|)
    sig = math.sqrt(1 / 30 + 1 / 20) / abs(math.log(2 / 3))
    assert (2 / 3) ** math.exp(1.959964 * sig) < 0.5     # lower band already below 1/2 at t=2
    assert lo <= 2.0 and hi >= 3.0


def test_median_undefined_when_half_never_learn():
    med, lo, hi = km_median([10, 10, 10, 3], [0, 0, 0, 1])
    assert med == math.inf and hi == math.inf


def test_km_median_interval_coverage_on_censored_exponentials():
    """T ~ Exp(1) censored at 1.5 (about 22% censored): median ln 2; 600 replicates of 40 runs,
    coverage of the 95% interval in [92%, 98%] (binomial sd 0.9%), and the median unbiased."""
    rng = np.random.default_rng(11)
    truth = math.log(2)
    hits, meds = 0, []
    for _ in range(600):
        t = rng.exponential(1.0, 40)
        e = t <= 1.5
        t = np.minimum(t, 1.5)
        med, lo, hi = km_median(t, e)
        hits += lo <= truth <= hi
        meds.append(med)
    assert 0.92 <= hits / 600 <= 0.98
    assert abs(np.mean(meds) - truth) < 0.03


def test_first_passage_and_censoring_from_curves():
    curves = pd.DataFrame(dict(run_id=["a"] * 4 + ["b"] * 4, step=[0, 10, 20, 30] * 2,
                               correlation=[0.0, 0.3, 0.6, 0.9, 0.0, 0.1, 0.2, 0.3],
                               correlation_se=[0.01] * 8))
    fp = first_passage(curves, threshold=0.5).set_index("run_id")
    assert fp.loc["a", "t_star"] == 20 and fp.loc["a", "event"]
    assert fp.loc["b", "t_star"] == 30 and not fp.loc["b", "event"]
    runs = pd.DataFrame(dict(run_id=["a", "b"], status="ok", target="parity", c=1.0, n=4))
    tab = time_to_learn_table(runs, curves, ["target", "c"])
    assert tab.iloc[0]["n_learned"] == 1 and tab.iloc[0]["median"] == 20.0


def test_first_passage_equals_a_loop_over_runs():
    """The vectorized first passage against a plain loop over shuffled random curves (with the
    standard-error condition, NaN standard errors, and runs that never pass)."""
    rng = np.random.default_rng(3)
    n_runs, steps = 300, [0, 5, 10, 20, 40]
    rows = [(f"r{i:03d}", s, rng.uniform(-0.2, 1.0), rng.choice([0.05, 0.3, np.nan]))
            for i in range(n_runs) for s in steps]
    curves = pd.DataFrame(rows, columns=["run_id", "step", "correlation", "correlation_se"]).sample(frac=1, random_state=1)
    got = first_passage(curves, threshold=0.6, se_multiple=2.0).set_index("run_id").sort_index()
    for run_id, g in curves.groupby("run_id"):
        g = g.sort_values("step")
        ok = (g.correlation >= 0.6) & (g.correlation > 2.0 * g.correlation_se.fillna(0.0))
        t_star, event = (g.step[ok].iloc[0], True) if ok.any() else (g.step.iloc[-1], False)
        assert (got.loc[run_id, "t_star"], bool(got.loc[run_id, "event"])) == (t_star, event), run_id
    assert 0 < got.event.sum() < n_runs


def test_exponent_interval_counts_the_checkpoint_grid():
    """Every run of n passes at the same checkpoint (120, 180, 240, 300 for n = 4, 6, 8, 10 on a grid
    of 60 steps): the medians lie exactly on a line in log-log, but each is known only to within one
    checkpoint, so the exponent's interval must have a width of that order, not zero."""
    steps = np.arange(0, 301, 60)
    pass_at = {4: 120, 6: 180, 8: 240, 10: 300}
    runs, rows = [], []
    for n, t in pass_at.items():
        for seed in range(20):
            rid = f"n{n}s{seed}"
            runs.append(dict(run_id=rid, status="ok", target="parity", c=2.0, n=n))
            rows += [dict(run_id=rid, step=int(s), correlation=0.9 if s >= t else 0.01, correlation_se=0.01)
                     for s in steps]
    table = time_to_learn_table(pd.DataFrame(runs), pd.DataFrame(rows), ["target", "c"])
    assert table["median"].tolist() == [120.0, 180.0, 240.0, 300.0]
    assert table["resolution"].tolist() == [60.0] * 4
    fit = time_to_learn_fits(table, ["target", "c"]).iloc[0]
    assert fit["exponent"] == pytest.approx(1.0, abs=0.05)
    # log-scale rounding sd 60/(sqrt(12) m): about 0.06-0.14 per point over log n in [1.39, 2.30]
    assert fit["exponent_hi"] - fit["exponent_lo"] > 0.3
    assert fit["exponent_lo"] < 1.0 < fit["exponent_hi"]
