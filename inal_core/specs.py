"""What the engines accept, and what a request costs, in plain Python: this module imports no torch.

A planner that validates 10^6 cells, or finds a study complete, needs the engines' contracts but
none of their tensors; importing torch costs about 2 s on a small machine. So the facts planning
needs live here, once, and the torch modules import them from here:

- ``NetworkSpec``, ``INITS`` and ``ACTIVATIONS`` (re-exported by ``inal_core.networks``; the
  activation registry itself lives in ``inal_core.activations``, which imports no torch either);
- the INAL estimators, one ``ESTIMATORS`` entry each (request check, memory model of the smallest
  chunk, inputs per init, and the engine function in ``inal_core.inal`` by name, imported only
  when an estimate runs), ``METHODS`` (``auto`` and the estimators), the method ``auto`` resolves
  to, and the request check (``check_inal_request``, ``exact_memory_bytes``, re-exported by
  ``inal_core.inal``, which chunks its work with the same model);
- the noisy-GD settings the engine takes (``PRECISIONS``, ``GAMMA_SCHEDULES``), the batch it uses
  (``ngd_batch``) and its cost per step (``ngd_flops_per_step``), re-exported by ``inal_core.ngd``.

Target families are validated and built by ``inal_core.targets`` (a target is a plain object until
it is evaluated on a tensor), and the loss names are the keys of ``inal_core.losses.LOSSES``: both
import no torch either.
"""

from __future__ import annotations

import importlib
import numbers
from dataclasses import dataclass
from typing import Any, Callable

from .activations import ACTIVATIONS
from .targets import Target

__all__ = [
    "INITS",
    "ACTIVATIONS",
    "NetworkSpec",
    "Estimator",
    "ESTIMATORS",
    "METHODS",
    "MAX_EXACT_BITS",
    "DEFAULT_N_INPUTS",
    "resolve_method",
    "dtype_bytes",
    "plain_chunk_model",
    "exact_memory_bytes",
    "check_inal_request",
    "PRECISIONS",
    "GAMMA_SCHEDULES",
    "DEFAULT_BATCH",
    "EXACT_MAX_INPUTS",
    "CHUNK_BYTES",
    "ngd_batch",
    "ngd_flops_per_step",
]

# --------------------------------------------------------------------------- networks

INITS = ("normal", "normal_bias1", "rademacher")


@dataclass(frozen=True)
class NetworkSpec:
    """Shape, hidden activation and initialization of one fully connected network.

    ``activation`` names an entry of ``ACTIVATIONS`` (``inal_core.activations``; default ``relu``),
    applied to every hidden neuron; the output neuron is linear. ``layer_sizes`` is
    ``[input_dim] + [width] * depth + [1]``; ``num_parameters`` is ``E`` (weights and biases), e.g. input 4, width 3, depth 1: ``4*3 + 3 + 3*1 + 1 = 19``.
    """

    input_dim: int
    width: int
    depth: int
    bias: bool = True
    init: str = "normal"
    activation: str = "relu"

    def __post_init__(self) -> None:
        for key in ("input_dim", "width", "depth"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.input_dim] + [self.width] * self.depth + [1]

    @property
    def num_layers(self) -> int:
        """Number of neuron layers: ``depth`` hidden layers plus the output layer."""
        return self.depth + 1

    @property
    def num_parameters(self) -> int:
        """``E``: trainable weights plus biases."""
        sizes = self.layer_sizes
        total = 0
        for d_in, d_out in zip(sizes[:-1], sizes[1:]):
            total += d_in * d_out + (d_out if self.bias else 0)
        return total

    def flops_forward(self, batch: int) -> int:
        """Multiply-add FLOPs (2 per MAC) of one forward pass of one network on ``batch`` inputs."""
        sizes = self.layer_sizes
        return 2 * batch * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


# --------------------------------------------------------------------------- INAL requests

DEFAULT_N_INPUTS = 1 << 16
MAX_EXACT_BITS = 32
_MAX_JUNTA_BITS = 20
_DTYPE_BYTES = {"torch.float32": 4, "torch.float64": 8}  # str(torch dtype): the float types INAL runs in


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of ``torch.float32`` (4) or ``torch.float64`` (8), read from the dtype's
    name so that no torch import is needed; ``ValueError`` for any other dtype."""
    size = _DTYPE_BYTES.get(str(dtype))
    if size is None:
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    return size


def resolve_method(method: str, target: Target, spec: NetworkSpec) -> str:
    """The estimator ``method`` stands for: ``auto`` is ``exact`` for n <= 16 (n <= 22 at depth 1
    when the split engine serves the activation), else ``junta`` when the target has at most 10
    relevant bits, else ``mc``."""
    if method != "auto":
        return method
    n = target.n
    if n <= 16 or (spec.depth == 1 and n <= 22 and ACTIVATIONS[spec.activation].split is not None):
        return "exact"
    if len(target.relevant_bits) <= 10:
        return "junta"
    return "mc"


def plain_chunk_model(n: int, spec: NetworkSpec, dtype: Any, inputs_per_row: int,
                      shared_inputs: bool) -> tuple[int, int, int, int]:
    """Bytes of the plain engine's chunk, ``(fixed, per_init, per_row_shared, per_row)``: a chunk of
    ``r`` inits and ``b`` rows (``inputs_per_row`` inputs each) holds
    ``fixed + r per_init + b per_row_shared + r b per_row`` bytes. Per init the three float64 copies
    of the parameters; per input and neuron the activations (``z``, ReLU, a transient, float64 ``y``
    and ``y^2``); per input its ±1 values and their integer bits."""
    s = dtype_bytes(dtype)
    neurons = spec.width * spec.depth + 1
    per_init = 3 * 8 * spec.num_parameters
    act = inputs_per_row * neurons * (3 * s + 16)  # z, relu, transient + float64 y, y^2
    inp = inputs_per_row * n * (s + 8)  # ±1 inputs and their int64/int8 bits
    if shared_inputs:
        return 0, per_init, inp, act
    return 0, per_init, 0, act + inp


def exact_memory_bytes(n: int, spec: NetworkSpec, *, dtype: Any = "torch.float32") -> int:
    """Peak bytes of the smallest chunk of the exact method (one init, one input row)."""
    fixed, per_init, per_row_shared, per_row = plain_chunk_model(n, spec, dtype, 1, True)
    return int(fixed + per_init + per_row_shared + per_row)


def _check_exact(target: Target, spec: NetworkSpec) -> None:
    if target.n > MAX_EXACT_BITS:
        raise ValueError(f"method='exact' enumerates 2^n inputs; n={target.n} exceeds {MAX_EXACT_BITS}: "
                         "use 'mc' or 'junta'")


def _check_junta(target: Target, spec: NetworkSpec) -> None:
    if len(target.relevant_bits) > _MAX_JUNTA_BITS:
        raise ValueError(f"method='junta' sums over 2^|J| inputs; the target has |J|={len(target.relevant_bits)} "
                         f"> {_MAX_JUNTA_BITS} relevant bits: use 'mc'")


def _sampled_inputs(n: int, n_inputs: int | None) -> int:
    return n_inputs or DEFAULT_N_INPUTS


@dataclass(frozen=True)
class Estimator:
    """One INAL estimator (SCIENCE.md §4): its request check, memory model, input count and engine.

    ``check(target, spec)`` raises ``ValueError`` for a request it cannot serve;
    ``smallest_chunk_bytes(target, spec, dtype)`` is the memory of its smallest chunk (one init);
    ``network_inputs(n, n_inputs)`` the network inputs per init (the planner's cost model; junta's
    ``m 2^|J|`` is about ``n_inputs``); ``engine`` is ``"module:function"`` inside ``inal_core``, the
    function ``(request) -> (per_init, inputs per init)``, imported only when an estimate runs (torch).
    """

    name: str
    check: Callable[[Target, NetworkSpec], None]
    smallest_chunk_bytes: Callable[[Target, NetworkSpec, Any], int]
    network_inputs: Callable[[int, "int | None"], int]
    engine: str
    doc: str = ""

    def estimator(self) -> Callable:
        module, _, name = self.engine.partition(":")
        return getattr(importlib.import_module(f".{module}", __package__), name)


ESTIMATORS: dict[str, Estimator] = {
    "exact": Estimator(
        "exact", _check_exact, lambda target, spec, dtype: exact_memory_bytes(target.n, spec, dtype=dtype),
        lambda n, n_inputs: 1 << n, "inal:exact_per_init", doc="all 2^n inputs; corr_v exactly, then squared"),
    "mc": Estimator(
        "mc", lambda target, spec: None,
        lambda target, spec, dtype: sum(plain_chunk_model(target.n, spec, dtype, 1, False)),
        _sampled_inputs, "inal:sampled_per_init", doc="i.i.d. inputs; the U-statistic (S^2 - Q) / (m (m-1))"),
    "junta": Estimator(
        "junta", _check_junta,
        lambda target, spec, dtype: sum(plain_chunk_model(target.n, spec, dtype, 1 << len(target.relevant_bits),
                                                          False)),
        _sampled_inputs, "inal:sampled_per_init",
        doc="exact sum over the relevant bits J, samples of the others; the same U-statistic"),
}
METHODS = ("auto", *ESTIMATORS)  # "auto" resolves to an estimator (resolve_method)


def _check_device(device: Any) -> None:
    """``"cpu"`` is always there; any other device is parsed, and CUDA's presence checked, by torch."""
    if str(device) == "cpu":
        return
    import torch  # only for a device other than the CPU

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} requested but CUDA is not available; use 'cpu'")


def check_inal_request(
    target: Target,
    spec: NetworkSpec,
    *,
    n_inits: int,
    method: str = "auto",
    n_inputs: int | None = None,
    memory_budget_bytes: int = 2**31,
    device: Any = "cpu",
    dtype: Any = "torch.float32",
) -> str:
    """Validate an INAL request before any work; return the method that will be used.

    ``dtype`` is ``torch.float32`` (default) or ``torch.float64`` (the dtype or its name).
    Raises ``ValueError`` naming the setting, its value and what is allowed.
    """
    if not isinstance(target, Target):
        raise ValueError(f"target must be an inal_core.targets.Target, got {type(target).__name__}")
    if spec.input_dim != target.n:
        raise ValueError(f"spec.input_dim={spec.input_dim} must equal the target's n={target.n}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(n_inits, bool) or not isinstance(n_inits, numbers.Integral) or n_inits < 1:
        raise ValueError(f"n_inits must be a positive integer, got {n_inits!r}")
    if n_inputs is not None and (isinstance(n_inputs, bool) or not isinstance(n_inputs, numbers.Integral) or n_inputs < 2):
        raise ValueError(f"n_inputs must be None or an integer >= 2, got {n_inputs!r}")
    dtype_bytes(dtype)
    if not isinstance(memory_budget_bytes, (int, float)) or memory_budget_bytes <= 0:
        raise ValueError(f"memory_budget_bytes must be a positive number, got {memory_budget_bytes!r}")
    _check_device(device)
    used = resolve_method(method, target, spec)
    n = target.n
    estimator = ESTIMATORS[used]
    estimator.check(target, spec)
    need = estimator.smallest_chunk_bytes(target, spec, dtype)
    if need > memory_budget_bytes:
        raise ValueError(
            f"memory_budget_bytes={int(memory_budget_bytes)} is too small for INAL method={used!r} with n={n}, "
            f"width={spec.width}, depth={spec.depth}: the smallest chunk needs {int(need)} bytes"
        )
    return used


# --------------------------------------------------------------------------- noisy GD

PRECISIONS = ("clip", "round")
GAMMA_SCHEDULES = ("constant", "inverse_sqrt")
DEFAULT_BATCH = 4096
EXACT_MAX_INPUTS = 2**16  # the default of NGDConfig.exact_max_inputs
# Rows of inputs processed at once are chosen so that one chunk's activations stay below this.
CHUNK_BYTES = {"cpu": 2**28, "cuda": 2**30}


def ngd_batch(N: int, batch: int | None, exact_max_inputs: int = EXACT_MAX_INPUTS) -> tuple[int, bool]:
    """``(B, exact)``: the engine averages the gradient over all ``2^N`` inputs (``exact``) when
    ``batch`` is None or 0 and ``2^N <= exact_max_inputs``, else over ``B = batch`` (or
    ``DEFAULT_BATCH``) fresh inputs per step."""
    exact = not batch and 2**N <= exact_max_inputs
    return (2**N if exact else (batch or DEFAULT_BATCH)), exact


def ngd_flops_per_step(spec: NetworkSpec, batch: int) -> int:
    """Matmul FLOPs of one step of one run on ``batch`` inputs: ``6 B sum d_l d_{l+1} - 2 B N width``."""
    sizes = spec.layer_sizes
    macs = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 2 * batch * (3 * macs - sizes[0] * sizes[1])
