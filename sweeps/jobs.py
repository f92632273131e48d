"""Job identity: what a job computes, its hashes, and its seeds.

A job is one composed config (one cell of a Hydra grid). Its **identity** (DESIGN.md) is the
BLAKE2b hash of the canonical JSON of every resolved task value (``JobSpec.values``: the study
axes, the target with its resolved parameters and nominal ``c``, network, init, training and
INAL settings, ``train.seed``) together with ``inal_core.ENGINE_VERSION``. Where results go
(``study``, ``results_dir``) and where they are computed (``device``) are not part of it, and
neither is anything under ``hydra.*``. The git commit is provenance, recorded but not hashed.

Three hashes per job:

- ``run_id``  = H(all values but the memory budget and the requested estimator name (its
  resolved method is hashed), engine version): one training run (one row of ``runs``);
- ``inal_id`` = H(the INAL-determining subset: target, c, n, width, depth, bias, init,
  the estimator method actually used, n_inits, n_inputs, engine version):
  INAL is computed once per ``inal_id`` and shared by every run that has it;
- ``pack_key`` = H(all values but ``train_seed``, ``gamma``, ``sigma``): jobs with one pack key
  train as one stacked tensor (``sweeps.execute.run_training_pack``).

A ``T = 0`` job (INAL only) is identified by its INAL values alone: grids over gamma, sigma or
``train.*`` with ``T = 0`` collapse to one job per INAL setting.

Every random stream derives from the identity: ``seed`` = the first 63 bits of ``run_id``,
``inal_seed`` = the first 63 bits of ``inal_id``. So a job gives the same numbers alone or
packed, here or on any worker, and families with a fixed nominal ``c`` (majority ...) asked for
several ``c`` collapse to one identity (``dedupe_jobs``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import inal_core
from inal_core.targets import make_target

__all__ = [
    "JobSpec",
    "make_job",
    "identity_hash",
    "seed_from_hash",
    "dedupe_jobs",
    "git_commit",
    "INAL_KEYS",
    "VECTORIZED_KEYS",
]

# Values that decide an INAL estimate (target.* parameters are added to these).
INAL_KEYS = ("target", "target_params", "c", "n", "width", "depth", "bias", "init", "inal_method", "n_inits",
             "n_inputs")
# Recorded but not hashed: the memory budget is a resource setting, and the requested estimator
# enters through the method it resolves to (``inal_method``: "auto" that picks "exact" == "exact").
NOT_HASHED = ("memory_budget_gb", "estimator")
# Values that may differ between the runs of one stacked training task.
VECTORIZED_KEYS = ("train_seed", "gamma", "sigma")
_SEED_MASK = (1 << 63) - 1


def _canonical(value: Any) -> Any:
    """JSON-stable form: floats that are integral stay floats (1.0 != 1 is deliberate: types are fixed
    by validation), non-finite floats become strings, lists stay lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def identity_hash(kind: str, values: Mapping[str, Any]) -> str:
    """Hex BLAKE2b-128 of ``kind``, ``ENGINE_VERSION`` and the sorted ``values``.

    >>> identity_hash("run", {"n": 8}) == identity_hash("run", {"n": 8})
    True
    >>> identity_hash("run", {"n": 8}) != identity_hash("run", {"n": 9})
    True
    """
    payload = {
        "kind": kind,
        "engine_version": int(inal_core.ENGINE_VERSION),
        "values": {k: _canonical(values[k]) for k in sorted(values)},
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def seed_from_hash(hex_id: str) -> int:
    """A non-negative 63-bit integer seed taken from the first 16 hex digits of an identity hash."""
    return int(hex_id[:16], 16) & _SEED_MASK


@dataclass(frozen=True)
class JobSpec:
    """One validated job (one cell of a grid). Build it with ``sweeps.schema.validate_job``.

    ``values`` holds every resolved task value with the column names of the ``runs`` dataset
    (``n, c, N, N_spec, width, depth, bias, init, T, gamma, sigma, A, precision, loss, batch,
    gamma_schedule, checkpoints, n_eval, train_seed, estimator, inal_method, n_inits, n_inputs,
    memory_budget_gb, target``, ``target_params`` (the family's resolved parameters as text,
    ``k=2,subset=first,subset_seed=0``) and ``target.<param>`` for the family's config inputs).
    """

    run_id: str
    inal_id: str
    pack_key: str
    seed: int
    inal_seed: int
    study: str
    results_dir: str
    device: str
    values: dict = field(hash=False, compare=False)
    train: bool = True

    @property
    def target(self) -> str:
        return self.values["target"]

    @property
    def target_inputs(self) -> dict[str, Any]:
        """The family's config parameters (``make_target`` keyword arguments, ``target.`` prefix removed)."""
        return {k[len("target."):]: v for k, v in self.values.items() if k.startswith("target.")}

    def make_target(self):
        """The ``inal_core`` target on ``n`` bits (parity: ``k = c``)."""
        v = self.values
        c = int(v["c"]) if v["target"] == "parity" else v["c"]
        return make_target(v["target"], v["n"], c=c, **self.target_inputs)

    def with_location(self, *, results_dir: str | None = None, study: str | None = None,
                      device: str | None = None) -> "JobSpec":
        """The same job (same identity) written elsewhere or computed on another device."""
        return JobSpec(self.run_id, self.inal_id, self.pack_key, self.seed, self.inal_seed,
                       study or self.study, results_dir or self.results_dir, device or self.device,
                       dict(self.values), self.train)


def make_job(values: Mapping[str, Any], *, study: str, results_dir: str, device: str) -> JobSpec:
    """Hash validated ``values`` into a :class:`JobSpec` (``sweeps.schema.validate_job`` calls this)."""
    values = dict(values)
    inal_values = {k: values[k] for k in INAL_KEYS}
    inal_values.update({k: v for k, v in values.items() if k.startswith("target.")})
    hashed = {k: v for k, v in values.items() if k not in NOT_HASHED}
    if values["T"] == 0:  # INAL only: training settings decide nothing, so they do not split cells
        hashed = {**inal_values, "T": 0}
    run_id = identity_hash("run", hashed)
    inal_id = identity_hash("inal", inal_values)
    pack_key = identity_hash("pack", {k: v for k, v in hashed.items() if k not in VECTORIZED_KEYS})
    return JobSpec(
        run_id=run_id,
        inal_id=inal_id,
        pack_key=pack_key,
        seed=seed_from_hash(run_id),
        inal_seed=seed_from_hash(inal_id),
        study=study,
        results_dir=results_dir,
        device=device,
        values=values,
        train=values["T"] > 0,
    )


def dedupe_jobs(jobs: Iterable[JobSpec]) -> list[JobSpec]:
    """Keep the first job of each ``run_id`` (e.g. majority asked for c=1,2,3 is one job)."""
    seen: set[str] = set()
    unique = []
    for job in jobs:
        if job.run_id not in seen:
            seen.add(job.run_id)
            unique.append(job)
    return unique


from .provenance import git_commit  # noqa: E402,F401  (moved to sweeps/provenance.py; re-exported)
