"""inal_core: the mathematics of Initial Alignment (INAL) studies, in torch and numpy only.

Boolean-cube and Fourier tools, target families, stacked ReLU networks, INAL estimators,
the noisy-gradient-descent engine and the bound of Abbe, Cornacchia, Hązła and Marquis
(ICML 2022). No Hydra, Ray, files or logging: tensors and explicit seeds in, tensors out.
"""

from .cube import enumerate_cube, iter_cube_chunks, sample_cube, truth_table
from .fourier import cumulative_weights, degree_weights, fourier_coefficients, fwht
from .inal import InalResult, check_inal_request, estimate_inal, exact_memory_bytes
from .targets import TARGETS, Target, available_targets, extend, make_target, resolve_extension
from .bound import bound_prefactor, bound_value, fourier_step_ratio, normalized_correlation
from .networks import INITS, NetworkSpec, ReluStack, init_relu_stack
from .ngd import NGDConfig, NGDResult, ngd_flops_per_step, train_noisy_gd
from .rng import derive_seed, make_generator

# Raised whenever a change would alter any computed number (part of every job identity).
ENGINE_VERSION = 1

__all__ = [
    "ENGINE_VERSION",
    "INITS",
    "NetworkSpec",
    "ReluStack",
    "init_relu_stack",
    "derive_seed",
    "make_generator",
    "NGDConfig",
    "NGDResult",
    "train_noisy_gd",
    "ngd_flops_per_step",
    "bound_prefactor",
    "bound_value",
    "normalized_correlation",
    "fourier_step_ratio",
    "enumerate_cube",
    "iter_cube_chunks",
    "sample_cube",
    "truth_table",
    "fwht",
    "fourier_coefficients",
    "degree_weights",
    "cumulative_weights",
    "Target",
    "TARGETS",
    "available_targets",
    "make_target",
    "resolve_extension",
    "extend",
    "InalResult",
    "estimate_inal",
    "exact_memory_bytes",
    "check_inal_request",
]
