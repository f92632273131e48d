"""analysis: read a study's Parquet datasets and answer the study's questions.

- :mod:`analysis.load`: the ``runs``, ``curves`` and ``inal`` datasets as pandas DataFrames, with filters;
- :mod:`analysis.fits`: measured INAL exponents ĉ with confidence intervals;
- :mod:`analysis.bound_check`: the n^{-(c-1)/8} scaling check of Theorem 1 with a verdict per group;
- :mod:`analysis.learnability`: final correlation against INAL, mean learning curves;
- :mod:`analysis.plots`, :mod:`analysis.report`: the figures and the ``inal-report`` command;
- :mod:`analysis.regression`: weighted line fits and Student-t quantiles (numpy only);
- :mod:`analysis.synthetic`: synthetic studies with known power laws, in the store's layout.
"""

from .bound_check import BOUND_GROUP_KEYS, VERDICTS, bound_points, check_bound, predicted_slope
from .fits import INAL_GROUP_KEYS, fit_inal_exponents, inal_points
from .learnability import learnability_table, mean_curves
from .load import Study, find_study_dirs, load_curves, load_dataset, load_inal, load_runs, load_study
from .regression import LineFit, fit_line, student_t_quantile

__all__ = [
    "BOUND_GROUP_KEYS", "INAL_GROUP_KEYS", "VERDICTS", "LineFit", "Study", "bound_points", "check_bound",
    "find_study_dirs", "fit_inal_exponents", "fit_line", "inal_points", "learnability_table", "load_curves",
    "load_dataset", "load_inal", "load_runs", "load_study", "mean_curves", "predicted_slope",
    "student_t_quantile",
]
