"""Straight-line fits with confidence intervals, and the distribution quantiles they need.

Every exponent in this package is the slope of a straight line in log-log coordinates, fitted by
weighted least squares (WLS). This module holds that one computation and the quantiles it needs
(Student-t, normal, chi-square), taken from ``scipy.stats``: a well-kept library whose quantiles are
tested far beyond what a hand-written incomplete beta here could be (the module used to carry its own
continued fraction and bisection; they were replaced, issue 11).

The model is ``y_i = a + b x_i + e_i`` with independent ``e_i ~ N(0, s^2 se_i^2)``. With weights
``w_i = 1/se_i^2`` the estimate is ``beta = (X^T W X)^{-1} X^T W y`` and its covariance is
``s^2 (X^T W X)^{-1}``. Three ways of treating the unknown ``s``:

- ``scale="residual"`` (default): ``s^2 = max(1, chi^2 / (m - 2))`` with ``chi^2 = sum w_i r_i^2``,
  and the interval uses the Student-t quantile with ``m - 2`` degrees of freedom. The factor is
  floored at 1 (the Particle Data Group's rule): points that scatter *less* than their standard
  errors say are luck, not evidence of smaller errors, so the interval is never narrower than the
  one the standard errors alone give (with the normal quantile; the t quantile is larger still).
  It widens by itself when the points scatter more than their errors say (a curved, pre-asymptotic
  power law; errors that ignore a source of noise). Without standard errors (``y_se=None``,
  ordinary least squares) there is nothing to floor against and ``s^2 = chi^2/(m - 2)``.
- ``scale="known"``: ``s = 1`` and the normal quantile. Exact when the standard errors are exact
  and the straight line is the truth; overconfident otherwise. Reported beside the default, so a
  reader can see when the two disagree (``chi2 / dof`` far above 1).
- ``scale="birge"``: ``s^2 = max(1, chi^2/(m - 2))`` and the normal quantile (the Particle Data
  Group's scale factor): trusts the errors unless the points scatter more than they say, never
  shrinks the interval. Conservative (coverage at or above nominal) when the errors are right,
  below nominal under lack of fit with few points. With 3-4 points it is far narrower than the
  default (whose t quantile with 1 degree of freedom is 12.7): a choice for absolute errors from
  many initializations when the fitted range of n is short.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

SCALES = ("residual", "known", "birge")

__all__ = ["SCALES", "LineFit", "fit_line", "fit_line_random_effects", "LackOfFit", "lack_of_fit", "fit_line_checked",
           "holm_adjust", "student_t_cdf", "student_t_quantile", "normal_quantile", "normal_cdf",
           "chi2_quantile"]


def student_t_cdf(t: float, dof: float) -> float:
    """CDF of Student's t with ``dof`` degrees of freedom (``scipy.stats.t``; ``dof = inf``: normal).

    >>> round(student_t_cdf(1.0, 1), 12)   # Cauchy: 1/2 + atan(1)/pi
    0.75
    """
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof!r}")
    if math.isinf(dof):
        return normal_cdf(t)
    return float(stats.t.cdf(t, dof))


def normal_cdf(z: float) -> float:
    """CDF of the standard normal distribution."""
    return float(stats.norm.cdf(z))


def normal_quantile(p: float) -> float:
    """Quantile of the standard normal distribution."""
    return float(stats.norm.ppf(p))


def student_t_quantile(p: float, dof: float) -> float:
    """Quantile ``t`` with ``P(T <= t) = p`` of Student's t with ``dof`` degrees of freedom.

    >>> round(student_t_quantile(0.975, 1), 4)   # tan(0.475 pi)
    12.7062
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if not dof > 0:
        raise ValueError(f"dof must be > 0, got {dof!r}")
    if math.isinf(dof):
        return normal_quantile(p)
    return float(stats.t.ppf(p, dof))


def chi2_quantile(p, dof):
    """Quantile of the chi-square distribution with ``dof`` (real, > 0) degrees of freedom; arrays broadcast."""
    out = stats.chi2.ppf(p, dof)
    return float(out) if np.ndim(out) == 0 else np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class LineFit:
    """Result of :func:`fit_line`: ``y = intercept + slope * x``.

    ``slope_ci``/``intercept_ci`` are two-sided intervals at ``level``; ``dof = m - 2``;
    ``chi2 = sum w_i r_i^2`` (with ``w_i = 1`` for an unweighted fit); ``scale`` is the variance
    factor ``s^2`` applied to ``(X^T W X)^{-1}``; ``quantile`` the t or normal quantile used.
    With fewer than 3 points and ``scale="residual"`` the interval is infinite (no scatter to
    measure), never silently narrow.
    """

    slope: float
    intercept: float
    slope_se: float
    intercept_se: float
    slope_ci: tuple[float, float]
    intercept_ci: tuple[float, float]
    n_points: int
    dof: int
    chi2: float
    scale: float
    quantile: float
    level: float
    method: str
    cov: np.ndarray = field(repr=False, compare=False)
    tau2: float = 0.0

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        """``intercept + slope * x``."""
        return self.intercept + self.slope * np.asarray(x, dtype=np.float64)

    def as_dict(self) -> dict:
        """Plain-Python view (JSON-ready)."""
        return {
            "slope": self.slope, "slope_se": self.slope_se, "slope_ci": list(self.slope_ci),
            "intercept": self.intercept, "intercept_se": self.intercept_se,
            "intercept_ci": list(self.intercept_ci), "n_points": self.n_points, "dof": self.dof,
            "chi2": self.chi2, "chi2_per_dof": (self.chi2 / self.dof) if self.dof > 0 else None,
            "scale": self.scale, "quantile": self.quantile, "level": self.level, "method": self.method,
            "tau2": self.tau2,
        }


def fit_line(x, y, y_se=None, *, level: float = 0.95, scale: str = "residual") -> LineFit:
    """Weighted least-squares line through ``(x_i, y_i)`` with standard errors ``y_se``.

    Parameters
    ----------
    x, y : array_like, shape (m,)
        Abscissae (at least two distinct values) and ordinates, finite.
    y_se : array_like, shape (m,), optional
        Standard errors of ``y`` (> 0); weights are ``1 / y_se**2``. ``None``: unweighted
        (ordinary least squares, which then needs ``scale="residual"``).
    level : float
        Two-sided confidence level of the intervals, in (0, 1).
    scale : {"residual", "known", "birge"}
        How the error scale is treated; see the module docstring.

    Returns
    -------
    LineFit
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.size} and {y.size}")
    if y_se is None:
        if scale != "residual":
            raise ValueError(f"scale={scale!r} needs y_se (standard errors of y)")
        w = np.ones_like(y)
    else:
        y_se = np.asarray(y_se, dtype=np.float64).ravel()
        if y_se.shape != y.shape:
            raise ValueError(f"y_se must have the length of y ({y.size}), got {y_se.size}")
        if not (np.all(np.isfinite(y_se)) and np.all(y_se > 0)):
            raise ValueError("y_se must be finite and > 0 for every point")
        w = 1.0 / y_se**2
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    m = x.size
    if m < 2 or np.unique(x).size < 2:
        raise ValueError(f"a line needs at least two distinct x values, got {np.unique(x).size}")

    design = np.column_stack([np.ones(m), x])                 # (m, 2)
    xtwx = design.T @ (design * w[:, None])                   # (2, 2)
    xtwx_inv = np.linalg.inv(xtwx)
    beta = xtwx_inv @ (design.T @ (w * y))                    # (2,) intercept, slope
    resid = y - design @ beta
    chi2 = float(np.sum(w * resid**2))
    dof = m - 2
    alpha_half = 0.5 * (1.0 + level)
    if scale == "known":
        s2, q, method = 1.0, normal_quantile(alpha_half), "wls-known-se-normal"
    elif scale == "birge":
        s2 = max(1.0, chi2 / dof) if dof > 0 else 1.0
        q, method = normal_quantile(alpha_half), "wls-birge-normal"
    elif dof > 0:
        # PDG floor: never narrower than the standard errors allow (OLS has no errors to floor against)
        s2 = chi2 / dof if y_se is None else max(1.0, chi2 / dof)
        q = student_t_quantile(alpha_half, dof)
        method = "wls-residual-scale-t" if y_se is not None else "ols-t"
    else:
        s2, q = math.inf, math.inf
        method = "wls-residual-scale-t" if y_se is not None else "ols-t"
    cov = s2 * xtwx_inv if math.isfinite(s2) else np.full((2, 2), math.inf)
    se_a, se_b = (math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])) if math.isfinite(s2) else (math.inf, math.inf)
    a, b = float(beta[0]), float(beta[1])

    def interval(center: float, se: float) -> tuple[float, float]:
        if not math.isfinite(se) or not math.isfinite(q):
            return (-math.inf, math.inf)
        return (center - q * se, center + q * se)

    return LineFit(slope=b, intercept=a, slope_se=se_b, intercept_se=se_a,
                   slope_ci=interval(b, se_b), intercept_ci=interval(a, se_a), n_points=m,
                   dof=dof, chi2=chi2, scale=s2, quantile=q, level=level, method=method, cov=cov)


def fit_line_random_effects(x, y, y_se, *, level: float = 0.95) -> LineFit:
    """Weighted line with an additive between-point variance: the random-effects meta-regression.

    The model is ``y_i = a + b x_i + u_i + e_i`` with ``e_i ~ N(0, se_i^2)`` (the stated errors) and
    ``u_i ~ N(0, tau^2)``: what the points scatter about the line beyond their errors (a curve over
    the range, errors that miss a source of noise). ``tau^2`` is the Paule-Mandel estimate (the
    generalized chi-square ``sum w_i r_i^2`` with ``w_i = 1/(se_i^2 + tau^2)`` set to its expectation
    ``m - 2``; 0 when the points scatter no more than their errors), the line is weighted least squares
    with those weights (``statsmodels`` WLS), and the interval is Knapp-Hartung's: covariance
    ``max(1, chi2/(m-2)) (X^T W X)^{-1}`` and the Student-t quantile with ``m - 2`` degrees of freedom.
    No point's small error lets it dominate once ``tau^2`` is large (equal weights in the limit: the
    ordinary least-squares slope). ``method = "wls-random-effects-t"``; ``tau2`` is recorded.

    Why not heteroscedasticity-robust (HC3) errors on an unweighted fit: with 5-8 points the HC3
    variance is dominated by the end points' leverage; measured on the c = 2 points of
    docs/study_bound_check_large (7 n, a cliff) it gives [-4.0, 0.57] for a slope of -1.73 whose
    ordinary interval is [-2.83, -0.62], and on simulated cliffs both cover the truth (over-cover).
    """
    import statsmodels.api as sm
    from scipy import optimize

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    se = np.asarray(y_se, dtype=np.float64).ravel()
    if not (x.shape == y.shape == se.shape):
        raise ValueError(f"x, y and y_se must have the same length, got {x.size}, {y.size}, {se.size}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise ValueError("x, y must be finite and y_se finite and > 0")
    m = x.size
    if m < 3 or np.unique(x).size < 2:
        raise ValueError(f"a random-effects line needs at least 3 points with 2 distinct x, got {m}")
    design = np.column_stack([np.ones(m), x])
    dof = m - 2

    def excess(tau2: float) -> float:
        w = 1.0 / (se**2 + tau2)
        res = sm.WLS(y, design, weights=w).fit()
        return float(np.sum(w * res.resid**2)) - dof

    tau2 = 0.0
    if excess(0.0) > 0:
        hi = float(np.var(y)) + 1.0
        while excess(hi) > 0:
            hi *= 10.0
        tau2 = float(optimize.brentq(excess, 0.0, hi, xtol=1e-12 * hi))
    w = 1.0 / (se**2 + tau2)
    res = sm.WLS(y, design, weights=w).fit()
    chi2 = float(np.sum(w * res.resid**2))
    s2 = max(1.0, chi2 / dof)
    cov = s2 * np.linalg.inv(design.T @ (design * w[:, None]))
    se_a, se_b = math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])
    a, b = float(res.params[0]), float(res.params[1])
    q = student_t_quantile(0.5 * (1.0 + level), dof)
    return LineFit(slope=b, intercept=a, slope_se=se_b, intercept_se=se_a, slope_ci=(b - q * se_b, b + q * se_b),
                   intercept_ci=(a - q * se_a, a + q * se_a), n_points=m, dof=dof, chi2=chi2, scale=s2,
                   quantile=q, level=level, method="wls-random-effects-t", cov=cov, tau2=tau2)


@dataclass(frozen=True)
class LackOfFit:
    """Diagnostics of a weighted line fit, reported whatever the verdict.

    ``chi2_p``: the chi-square p-value ``P(chi^2_{m-2} >= chi2)`` of the weighted residuals (small:
    the points scatter about the line by more than their errors say, a curve or errors that miss a
    source of noise; NaN with fewer than 3 points or no errors); ``max_weight_share``: the largest
    share ``w_i / sum w`` of the weight one point carries (1/m for equal weights); ``trusted``: whether
    the weighted fit is kept (``chi2_p >= p_min`` and ``max_weight_share <= max_share``); ``why``:
    the reason it is not, in words ("" when trusted).
    """

    chi2_p: float
    max_weight_share: float
    max_weight_x: float
    trusted: bool
    why: str

    def as_dict(self) -> dict:
        return {"chi2_p": self.chi2_p, "max_weight_share": self.max_weight_share,
                "max_weight_x": self.max_weight_x, "weighted_fit_trusted": self.trusted,
                "not_trusted_because": self.why}


def lack_of_fit(x, y, y_se, *, p_min: float = 0.01, max_share: float = 0.5, names=None) -> LackOfFit:
    """:class:`LackOfFit` of the weighted line through ``(x, y)`` with errors ``y_se`` (None: unweighted);
    ``names`` labels the points in ``why`` (default ``x = <value>``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    m = x.size
    if y_se is None:
        w = np.ones(m)
    else:
        w = 1.0 / np.asarray(y_se, dtype=np.float64).ravel() ** 2
    share = w / np.sum(w)
    i = int(np.argmax(share))
    p = math.nan
    if y_se is not None and m >= 3:
        fit = fit_line(x, y, y_se, scale="known")
        p = float(stats.chi2.sf(fit.chi2, fit.dof))
    why = []
    if math.isfinite(p) and p < p_min:
        why.append(f"chi-square p = {p:.2g} < {p_min:g}")
    if share[i] > max_share:
        label = f"x = {x[i]:.3g}" if names is None else str(list(names)[i])
        why.append(f"one point ({label}) carries {share[i]:.0%} of the weight")
    return LackOfFit(chi2_p=p, max_weight_share=float(share[i]), max_weight_x=float(x[i]), trusted=not why,
                     why="; ".join(why))


def fit_line_checked(x, y, y_se=None, *, level: float = 0.95, scale: str = "residual", p_min: float = 0.01,
                     max_share: float = 0.5, names=None) -> tuple[LineFit, LackOfFit]:
    """The weighted fit of :func:`fit_line` when it can be trusted, else :func:`fit_line_robust`.

    A weighted fit is not trusted when its chi-square p-value is below ``p_min`` (not a straight line
    within the errors: "not a power law over this range" in log-log coordinates) or when one point
    carries more than ``max_share`` of the weight (the slope is then that point's neighbourhood, and
    its interval the errors of that point). Then the slope and interval come from
    :func:`fit_line_random_effects`, which adds the scatter the errors do not explain to every point's
    variance instead of trusting the per-point errors. Returns ``(fit, diagnostics)``.
    """
    if y_se is None:
        fit = fit_line(x, y, None, level=level)
        return fit, lack_of_fit(x, y, None, p_min=p_min, max_share=max_share, names=names)
    diag = lack_of_fit(x, y, y_se, p_min=p_min, max_share=max_share, names=names)
    if diag.trusted:
        return fit_line(x, y, y_se, level=level, scale=scale), diag
    return fit_line_random_effects(x, y, y_se, level=level), diag


def holm_adjust(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (``statsmodels.stats.multitest``, method ``"holm"``): the
    family-wise error rate over all the tests is at most the level at which each adjusted p is read.
    NaN entries are left out of the family and stay NaN."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out
