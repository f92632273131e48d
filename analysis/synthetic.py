"""Synthetic studies with known power laws, written in the results store's layout and schema.

For tests, for trying the report without running a sweep, and for checking that the statistics
recover what was put in. A synthetic study has, per target:

- INAL of the output of layer ``l``: ``inal_amplitude * layer_factor[l] * n^{-inal_exponent}``,
  observed with Gaussian noise of standard deviation ``se = sqrt((inal_rel_se * truth)^2 +
  inal_floor_se^2)`` (``inal_floor_se`` is the noise floor of an estimator);
- training runs whose mean final correlation over seeds is ``E[corr](n) = R(n) * prefactor(n)`` with
  ``R(n) = R(n_max) * (n / n_max)^{r_slope}`` (so ``log R`` against ``log n`` has slope
  ``r_slope``), chosen so that ``E[corr](n_max) = corr_at_nmax``; each seed draws
  ``corr = E[corr] (1 + corr_seed_scatter z1) + corr_eval_se z2`` and reports ``corr_se =
  corr_eval_se`` (the engine's standard error covers only the evaluation inputs, not the seed);
  ``r_slope=None`` means no signal (``E[corr] = 0``);
- learning curves rising to the final correlation.

Files: ``<root>/<study>/{runs,curves,inal}/target=<name>/<id>.parquet``, no ``target`` column in
the files, footer metadata ``inal.schema_version`` (CONTRACT.md). Column names and types follow
``sweeps.store``; the settings the model does not vary take their defaults from the table of
settings (``sweeps.settings.column_defaults``: plain Python).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweeps.settings import column_defaults
from inal_core.targets import parse_extension  # torch-free: the one parser of the extension rule

__all__ = ["SyntheticTarget", "network_size", "write_synthetic_study", "synthetic_tables"]

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class SyntheticTarget:
    """One target of a synthetic study (see the module docstring for the model)."""

    name: str
    c: float
    inal_exponent: float
    inal_amplitude: float = 0.2
    r_slope: float | None = None
    corr_at_nmax: float = 0.05
    layer_factor: tuple[float, ...] = (1.0, 0.6, 0.3)


@dataclass(frozen=True)
class _Settings:
    n_values: tuple[int, ...]
    seeds: tuple[int, ...]
    width: int
    depth: int
    T: int
    gamma: float
    sigma: float
    A: float
    N_spec: str
    init: str
    inal_rel_se: float
    inal_floor_se: float
    n_inits: int
    corr_seed_scatter: float
    corr_eval_se: float
    n_checkpoints: int
    diverged: frozenset = field(default_factory=frozenset)


def network_size(input_dim: int, width: int, depth: int, bias: bool = True) -> int:
    """Trainable parameters ``E`` of a ReLU stack ``input_dim -> width x depth -> 1``."""
    sizes = [input_dim] + [width] * depth + [1]
    return sum(a * b + (b if bias else 0) for a, b in zip(sizes[:-1], sizes[1:]))


def _extension(n: int, spec: str) -> int:
    return parse_extension(spec, n)[1]  # the one parser of the rule (inal_core.targets)


def _hash_id(*parts) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=8).hexdigest()


def _prefactor(gamma: float, T: int, E: int, A: float, sigma: float) -> float:
    return gamma * T * math.sqrt(E * A) / sigma if sigma > 0 else math.inf


def synthetic_tables(study: str, targets: Sequence[SyntheticTarget], s: _Settings,
                     rng: np.random.Generator) -> dict[str, list[tuple[str, str, dict]]]:
    """Rows of every file: ``{"runs"|"curves"|"inal": [(target, file_id, columns), ...]}``."""
    out: dict[str, list] = {"runs": [], "curves": [], "inal": []}
    n_max = max(s.n_values)
    common = {"study": study, "git_commit": "synthetic", "engine_version": 1}
    for tgt in targets:
        factors = np.asarray(tgt.layer_factor[: s.depth + 1], dtype=np.float64)
        if factors.size < s.depth + 1:
            factors = np.concatenate([factors, np.full(s.depth + 1 - factors.size, factors[-1])])
        E_nmax = network_size(_extension(n_max, s.N_spec), s.width, s.depth)
        pref_nmax = _prefactor(s.gamma, s.T, E_nmax, s.A, s.sigma)
        for n in s.n_values:
            inal_id = _hash_id(study, tgt.name, tgt.c, n, s.width, s.depth, s.init)
            truth = tgt.inal_amplitude * factors * float(n) ** (-tgt.inal_exponent)   # (depth+1,)
            se = np.sqrt((s.inal_rel_se * truth) ** 2 + s.inal_floor_se**2)
            est = truth + se * rng.standard_normal(truth.size)
            layers = np.arange(1, s.depth + 2)
            out["inal"].append((tgt.name, inal_id, {
                **{k: [v] * layers.size for k, v in common.items()},
                "inal_id": [inal_id] * layers.size, "c": [float(tgt.c)] * layers.size,
                "n": [n] * layers.size, "width": [s.width] * layers.size,
                "depth": [s.depth] * layers.size, "init": [s.init] * layers.size,
                "bias": [True] * layers.size, "target_params": ["{}"] * layers.size,
                "estimator": ["synthetic"] * layers.size, "method": ["synthetic"] * layers.size,
                "layer": layers.tolist(), "inal": est.tolist(), "inal_se": se.tolist(),
                "is_max": (layers == 1 + int(np.argmax(est))).tolist(),
                "n_inits": [s.n_inits] * layers.size, "n_inputs": [2**n] * layers.size,
                # selection-free columns: the truly largest layer's estimate (a perfect choice)
                "selected_inal": [float(est[np.argmax(truth)])] * layers.size,
                "selected_inal_se": [float(se[np.argmax(truth)])] * layers.size,
                "selected_layer_a": [1 + int(np.argmax(truth))] * layers.size,
                "selected_layer_b": [1 + int(np.argmax(truth))] * layers.size,
                "seed": [0] * layers.size, "wall_s": [0.0] * layers.size,
            }))
            if s.T <= 0:
                continue
            N = _extension(n, s.N_spec)
            E = network_size(N, s.width, s.depth)
            pref = _prefactor(s.gamma, s.T, E, s.A, s.sigma)
            if tgt.r_slope is None:
                mean_corr = 0.0
            else:
                r_nmax = tgt.corr_at_nmax / pref_nmax
                mean_corr = r_nmax * (n / n_max) ** tgt.r_slope * pref
                if abs(mean_corr) > 0.95:
                    raise ValueError(f"synthetic target {tgt.name!r}: E[corr] = {mean_corr:.3g} at n={n} "
                                     "exceeds 0.95; lower corr_at_nmax or r_slope")
            for seed in s.seeds:
                run_id = _hash_id(study, tgt.name, tgt.c, n, seed, s.T, s.gamma, s.sigma)
                z1, z2 = rng.standard_normal(2)
                corr = mean_corr * (1.0 + s.corr_seed_scatter * z1) + s.corr_eval_se * z2
                diverged = (tgt.name, n, seed) in s.diverged
                status = "diverged" if diverged else "ok"
                if diverged:
                    corr = math.nan
                out["runs"].append((tgt.name, run_id, {
                    **{k: [v] for k, v in column_defaults("runs").items()},
                    **{k: [v] for k, v in common.items()},
                    "run_id": [run_id], "c": [float(tgt.c)], "n": [n], "N": [N], "N_spec": [s.N_spec],
                    "width": [s.width], "depth": [s.depth], "init": [s.init], "bias": [True],
                    "target_params": ["{}"], "n_steps": [s.T], "gamma": [s.gamma], "sigma": [s.sigma],
                    "A": [s.A], "precision": ["clip"], "loss": ["squared"], "batch": [0],
                    "batch_used": [0], "checkpoints": [str(s.n_checkpoints)],
                    "n_eval": [8192], "seed": [seed], "engine_seed": [seed], "E": [E],
                    "correlation": [corr], "correlation_se": [s.corr_eval_se], "acc": [0.5 + 0.5 * corr],
                    "final_loss": [1.0 - corr], "param_norm": [float(math.sqrt(E))],
                    "status": [status], "diverged_step": [s.T // 2 if diverged else -1],
                    "error": [""], "bound_prefactor": [pref], "inal_id": [inal_id],
                    "estimator": ["synthetic"], "n_inits": [s.n_inits], "n_inputs": [2**n],
                    "wall_s": [0.01], "host": ["synthetic"], "device": ["cpu"], "torch_version": ["none"],
                }))
                if diverged:
                    continue
                steps = np.unique(np.linspace(0, s.T, s.n_checkpoints).round().astype(np.int64))
                curve = corr * np.sqrt(steps / s.T) + s.corr_eval_se * rng.standard_normal(steps.size)
                k = steps.size
                out["curves"].append((tgt.name, run_id, {
                    "study": [study] * k, "run_id": [run_id] * k, "step": steps.tolist(),
                    "correlation": curve.tolist(), "correlation_se": [s.corr_eval_se] * k,
                    "acc": (0.5 + 0.5 * curve).tolist(), "loss": (1.0 - curve).tolist(),
                    "param_norm": [float(math.sqrt(E))] * k,
                }))
    return out


def _write_file(path: str, columns: dict) -> None:
    table = pa.Table.from_pydict(columns)
    table = table.replace_schema_metadata({b"inal.schema_version": SCHEMA_VERSION.encode()})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_synthetic_study(root: str, study: str = "synthetic", targets: Sequence[SyntheticTarget] = (),
                          *, n_values: Sequence[int] = (8, 12, 16, 24, 32), seeds: Sequence[int] = range(4),
                          width: int = 8, depth: int = 2, T: int = 100, gamma: float = 0.1,
                          sigma: float = 0.01, A: float = 1.0, N_spec: str = "n^2", init: str = "normal",
                          inal_rel_se: float = 0.05, inal_floor_se: float = 0.0, n_inits: int = 1000,
                          corr_seed_scatter: float = 0.1, corr_eval_se: float = 1e-3,
                          n_checkpoints: int = 5, diverged: Sequence[tuple] = (),
                          rng_seed: int = 0) -> str:
    """Write a synthetic study under ``root/study`` and return the study directory.

    ``T=0`` writes an INAL-only study (no runs, no curves). ``diverged`` lists ``(target, n, seed)``
    runs to record with status ``diverged``. Default targets: parity-like k = 1, 2, 3 whose INAL
    exponents are 1, 2, 4, without training signal.
    """
    if not targets:
        targets = [SyntheticTarget("parity", c=k, inal_exponent=e) for k, e in ((1, 1), (2, 2), (3, 4))]
    settings = _Settings(tuple(int(n) for n in n_values), tuple(int(x) for x in seeds), width, depth,
                         int(T), gamma, sigma, A, N_spec, init, inal_rel_se, inal_floor_se, n_inits,
                         corr_seed_scatter, corr_eval_se, n_checkpoints, frozenset(diverged))
    tables = synthetic_tables(study, targets, settings, np.random.default_rng(rng_seed))
    study_dir = os.path.join(str(root), study)
    for kind, files in tables.items():
        for target, file_id, columns in files:
            _write_file(os.path.join(study_dir, kind, f"target={target}", f"{file_id}.parquet"), columns)
    return study_dir
