"""inal_core: the mathematics of Initial Alignment (INAL) studies, in torch and numpy only.

Boolean-cube and Fourier tools, target families, stacked networks (ReLU, sign, tanh or identity
hidden layers), INAL estimators, the noisy-gradient-descent engine and the bound of Abbe,
Cornacchia, Hązła and Marquis (ICML 2022). No Hydra, Ray, files or logging: tensors and
explicit seeds in, tensors out.
"""

import importlib as _importlib

# Raised whenever a change would alter any computed number (part of every job identity).
ENGINE_VERSION = 1

# The public names and the module each lives in. They are imported on first use (PEP 562): a
# planner that validates a grid through ``inal_core.specs`` and ``inal_core.targets`` never pays
# for torch's import (about 2 s on a small machine); ``inal_core.estimate_inal`` imports its module.
_EXPORTS = {
    "INITS": "specs", "ACTIVATIONS": "specs", "NetworkSpec": "specs",
    "ReluStack": "networks", "init_relu_stack": "networks",
    "derive_seed": "rng", "make_generator": "rng",
    "NGDConfig": "ngd", "NGDResult": "ngd", "train_noisy_gd": "ngd", "ngd_flops_per_step": "specs",
    "bound_prefactor": "bound", "bound_value": "bound", "normalized_correlation": "bound",
    "fourier_step_ratio": "bound",
    "enumerate_cube": "cube", "iter_cube_chunks": "cube", "sample_cube": "cube", "truth_table": "cube",
    "fwht": "fourier", "fourier_coefficients": "fourier", "degree_weights": "fourier",
    "cumulative_weights": "fourier",
    "Target": "targets", "TARGETS": "targets", "available_targets": "targets", "make_target": "targets",
    "resolve_extension": "targets", "parse_extension": "targets", "extend": "targets", "get_family": "targets",
    "register_family": "targets", "ESTIMATORS": "specs",
    "InalResult": "inal", "estimate_inal": "inal", "exact_memory_bytes": "specs", "check_inal_request": "specs",
}
_SUBMODULES = ("activations", "bound", "cube", "fourier", "inal", "inal_split", "inal_summary", "losses", "networks",
               "ngd", "rng", "specs", "streams", "targets")


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f".{module}", __name__), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | set(_SUBMODULES))


__all__ = ["ENGINE_VERSION", *_EXPORTS]
