"""analysis: read a study's Parquet datasets and answer the study's questions.

- :mod:`analysis.load`: the ``runs``, ``curves`` and ``inal`` datasets as pandas DataFrames, with filters;
- :mod:`analysis.fits`: measured INAL exponents ĉ with confidence intervals;
- :mod:`analysis.bound_check`: the n^{-(c-1)/8} scaling check of Theorem 1 with a verdict per group;
- :mod:`analysis.inal_intervals`: intervals of INAL values (scaled chi-square, hulled with the stored bootstrap-t) and log INAL's variance;
- :mod:`analysis.fourier_step`: the Fourier step W^{<=k} <= O(n^{k+1}) INAL against exact spectra;
- :mod:`analysis.time_to_learn`: T*(n), Kaplan–Meier medians with intervals, and their exponents;
- :mod:`analysis.learnability`: final correlation against INAL, mean learning curves;
- :mod:`analysis.plots`, :mod:`analysis.report`: the figures and the ``inal-report`` command;
- :mod:`analysis.regression`: weighted line fits and the quantiles they need (scipy.stats);
- :mod:`analysis.synthetic`: synthetic studies with known power laws, in the store's layout.
"""

from .bound_check import BOUND_GROUP_KEYS, VERDICTS, bound_points, check_bound, predicted_slope
from .fits import INAL_GROUP_KEYS, fit_inal_exponents, inal_points
from .fourier_step import fourier_step_fits, fourier_step_table
from .inal_intervals import inal_interval, log_inal
from .learnability import learnability_table, mean_curves
from .load import Study, find_study_dirs, load_curves, load_dataset, load_inal, load_runs, load_study
from .regression import LineFit, fit_line, student_t_quantile
from .time_to_learn import km_median, time_to_learn_fits, time_to_learn_table

__all__ = [
    "BOUND_GROUP_KEYS", "INAL_GROUP_KEYS", "VERDICTS", "LineFit", "Study", "bound_points", "check_bound",
    "find_study_dirs", "fit_inal_exponents", "fit_line", "inal_points", "learnability_table", "load_curves",
    "load_dataset", "load_inal", "load_runs", "load_study", "mean_curves", "predicted_slope",
    "student_t_quantile", "inal_interval", "log_inal", "fourier_step_table", "fourier_step_fits", "km_median",
    "time_to_learn_table", "time_to_learn_fits",
]
