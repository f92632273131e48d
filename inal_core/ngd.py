"""Noisy gradient descent (SCIENCE.md §5) on a stack of R runs at once.

Every run ``r`` of a stack follows, for ``t = 1..T``,

    theta_t = theta_{t-1} - gamma_t [ E_x grad_theta L(NN_{theta_{t-1}}(x), fbar(x)) + lambda theta_{t-1} ]_A + Z_t,
    Z_t ~ N(0, sigma^2 I)  i.i.d.  (the noise is added after the step and NOT multiplied by gamma)

- ``lambda`` (``weight_decay``, default 0): the gradient is that of ``L + (lambda/2) ||theta||^2``
  over all parameters, weights and biases, taken before the precision map ``[.]_A``; 0 leaves
  the update exactly as without it.

- ``[g]_A``: ``precision="clip"`` (default) clips every coordinate to ``[-A, A]``;
  ``precision="round"`` rounds every coordinate to the grid of step ``1/A``
  (``round(g A) / A``, ties to even).
- ``E_x``: the exact mean over all ``2^N`` inputs when ``batch`` is None/0 and
  ``2^N <= exact_max_inputs``; otherwise the mean over a fresh batch of ``B`` uniform inputs at
  every step (``B = batch`` or ``DEFAULT_BATCH``), recorded as ``batch_used`` (0 = exact).
- ``L``: see ``inal_core.losses`` (squared ``(yhat - y)^2`` without 1/2, correlation, hinge).
- ``gamma_t``: ``gamma`` (``"constant"``) or ``gamma / sqrt(t)`` (``"inverse_sqrt"``).

Each run has its own ``gamma``, ``sigma`` and seed; its initialization
(``init_relu_stack``), batches (stream ``"batch"``), noise (``"noise"``) and evaluation inputs
(``"eval"``) depend on its seed only (``inal_core.streams``), so a run gives the same numbers
alone or inside a stack (up to float summation order), on rerun, and on CPU or CUDA.

Gradients are computed by a hand-written backward pass of the stacked MLP (``torch.bmm``), which
skips the input gradient of the first layer. The hidden activation is ``spec.activation``; its
derivative is the one its registry entry states (``inal_core.activations``): ``1[z > 0]`` for
ReLU, ``1 - tanh^2`` for tanh, 1 for identity, and for sign the straight-through rule
``1[|z| <= 1]`` (sign's own derivative is 0 almost everywhere). Cost model (``ngd_flops_per_step``), per run and
per step on ``B`` inputs, with ``d_0 = N, d_1..d_depth = width, d_{depth+1} = 1``:

    forward  2 B sum_l d_l d_{l+1};  weight gradients  the same;
    input gradients  2 B sum_{l >= 1} d_l d_{l+1}     =>  6 B sum_l d_l d_{l+1} - 2 B N width.

A run whose parameters ``theta_t`` or training loss (at ``theta_{t-1}``) become non-finite at step
``t`` is frozen at its last finite parameters and marked ``"diverged"`` with ``diverged_step = t``;
its later correlation, accuracy and loss are NaN. The other
runs go on. Observables at each checkpoint (on ``n_eval`` fresh inputs of the eval stream):
correlation ``E_x[fbar(x) NN(x)]`` with its standard error, accuracy ``P[sign NN(x) = fbar(x)]``
(an output of exactly 0 counts as wrong), mean loss, and the L2 norm of all parameters.
Inputs are processed in chunks of rows so that one chunk's activations stay under
``CHUNK_BYTES`` whatever R and B; the chunks only change the float summation order.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from .activations import ACTIVATIONS
from .cube import enumerate_cube
from .losses import LOSSES, loss_derivative, loss_value
from .networks import NetworkSpec, ReluStack, init_relu_stack
from .specs import (CHUNK_BYTES, DEFAULT_BATCH, EXACT_MAX_INPUTS, GAMMA_SCHEDULES, PRECISIONS,  # plain Python,
                    ngd_batch, ngd_flops_per_step)  # shared with the planner
from .streams import StepKeys, gaussians_at, rademacher_rows, rademacher_rows_at, stream_keys

__all__ = ["NGDConfig", "NGDResult", "train_noisy_gd", "stack_gradient", "ngd_flops_per_step", "ngd_batch", "PRECISIONS",
           "GAMMA_SCHEDULES", "DEFAULT_BATCH", "CHUNK_BYTES"]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _positive_floats(name: str, value, *, allow_zero: bool) -> tuple[float, ...] | float:
    values = value if isinstance(value, (list, tuple, np.ndarray)) else [value]
    bound = ">= 0" if allow_zero else "> 0"
    try:
        floats = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ValueError(f"NGDConfig.{name} must be a finite float {bound} or a sequence of them, got {value!r}") from None
    if not floats or any(not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero) for v in floats):
        raise ValueError(f"NGDConfig.{name} must be a finite float {bound} or a sequence of them, got {value!r}")
    return tuple(floats) if isinstance(value, (list, tuple, np.ndarray)) else floats[0]


@dataclass(frozen=True)
class NGDConfig:
    """Settings of noisy GD shared by a stack (``gamma``/``sigma`` may be per run).

    ``checkpoints``: a count K (K steps evenly spaced on ``[0, T]``, rounded, always including
    ``T``; K = 1 means ``[T]``) or a list of steps in ``[0, T]`` (``T`` is added).
    """

    T: int
    gamma: float | Sequence[float]
    sigma: float | Sequence[float]
    A: float = 1.0
    precision: str = "clip"
    loss: str = "squared"
    batch: int | None = None
    exact_max_inputs: int = EXACT_MAX_INPUTS
    checkpoints: int | Sequence[int] = 11
    n_eval: int = 8192
    gamma_schedule: str = "constant"
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        if not _is_int(self.T) or self.T < 0:
            raise ValueError(f"NGDConfig.T must be an integer >= 0, got {self.T!r}")
        object.__setattr__(self, "gamma", _positive_floats("gamma", self.gamma, allow_zero=False))
        object.__setattr__(self, "sigma", _positive_floats("sigma", self.sigma, allow_zero=True))
        if isinstance(self.A, bool) or not isinstance(self.A, (int, float)) or not math.isfinite(self.A) or self.A <= 0:
            raise ValueError(f"NGDConfig.A must be a finite float > 0, got {self.A!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"NGDConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"NGDConfig.loss must be one of {tuple(LOSSES)}, got {self.loss!r}")
        if self.batch is not None and (not _is_int(self.batch) or self.batch < 0):
            raise ValueError(f"NGDConfig.batch must be None, 0 (exact when possible) or a positive integer, got {self.batch!r}")
        if not _is_int(self.exact_max_inputs) or self.exact_max_inputs < 1:
            raise ValueError(f"NGDConfig.exact_max_inputs must be a positive integer, got {self.exact_max_inputs!r}")
        if not _is_int(self.n_eval) or self.n_eval < 2:
            raise ValueError(f"NGDConfig.n_eval must be an integer >= 2, got {self.n_eval!r}")
        if self.gamma_schedule not in GAMMA_SCHEDULES:
            raise ValueError(f"NGDConfig.gamma_schedule must be one of {GAMMA_SCHEDULES}, got {self.gamma_schedule!r}")
        wd = self.weight_decay
        if isinstance(wd, bool) or not isinstance(wd, (int, float)) or not math.isfinite(wd) or wd < 0:
            raise ValueError(f"NGDConfig.weight_decay must be a finite float >= 0, got {wd!r}")
        ck = self.checkpoints
        if _is_int(ck):
            if ck < 1:
                raise ValueError(f"NGDConfig.checkpoints must be a count >= 1 or a list of steps in [0, T], got {ck!r}")
        elif not isinstance(ck, (list, tuple)) or not all(_is_int(s) and 0 <= s <= self.T for s in ck):
            raise ValueError(f"NGDConfig.checkpoints must be a count >= 1 or a list of steps in [0, T={self.T}], got {ck!r}")
        else:
            object.__setattr__(self, "checkpoints", tuple(int(s) for s in ck))

    def checkpoint_steps(self) -> list[int]:
        """Sorted distinct evaluation steps, always ending with ``T``."""
        if _is_int(self.checkpoints):
            k = int(self.checkpoints)
            steps = {self.T} if k == 1 else {round(self.T * i / (k - 1)) for i in range(k)}
        else:
            steps = set(self.checkpoints)
        return sorted(steps | {self.T})


@dataclass
class NGDResult:
    """Per-run final observables (numpy arrays of shape (R,)) and curves (R, n_checkpoints)."""

    corr: np.ndarray
    corr_se: np.ndarray
    acc: np.ndarray
    loss: np.ndarray
    param_norm: np.ndarray
    status: list[str]
    diverged_step: np.ndarray
    batch_used: np.ndarray
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: float = 0.0
    params: ReluStack | None = None  # the final parameters of the R runs (on the training device)


def _per_run(name: str, value, R: int, device, dtype) -> torch.Tensor:
    values = list(value) if isinstance(value, tuple) else [value] * R
    if len(values) != R:
        raise ValueError(f"NGDConfig.{name} has {len(values)} values but there are {R} seeds (give one value or one per seed)")
    return torch.tensor(values, dtype=dtype, device=device)


def _flat_stack(spec: NetworkSpec, flat: torch.Tensor) -> ReluStack:
    """A ``ReluStack`` whose weights and biases are views into ``flat`` (R, E), in ``parameters()`` order."""
    R, offset = flat.shape[0], 0
    weights: list[torch.Tensor] = []
    biases: list[torch.Tensor | None] = []
    for d_in, d_out in zip(spec.layer_sizes[:-1], spec.layer_sizes[1:]):
        weights.append(flat[:, offset : offset + d_in * d_out].view(R, d_in, d_out))
        offset += d_in * d_out
        if spec.bias:
            biases.append(flat[:, offset : offset + d_out])
            offset += d_out
        else:
            biases.append(None)
    return ReluStack(spec, weights, biases)


def _forward(stack: ReluStack, x: torch.Tensor, zs: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Inputs then every layer's output: ``[x (R,m,N), h_1 (R,m,w), ..., out (R,m,1)]``.

    The activation is applied in place, except when ``zs`` is a list: then the hidden
    pre-activations ``z_1, ..., z_depth`` are kept there (for an activation whose derivative
    needs ``z``, e.g. sign's straight-through rule)."""
    hs = [x]
    last = len(stack.weights) - 1
    act = ACTIVATIONS[stack.spec.activation]
    for l, (w, b) in enumerate(zip(stack.weights, stack.biases)):
        z = torch.bmm(hs[-1], w) if b is None else torch.baddbmm(b.unsqueeze(1), hs[-1], w)
        if l == last:
            hs.append(z)
        elif zs is None:
            hs.append(act.forward_(z))
        else:
            zs.append(z)
            hs.append(act.forward(z))
    return hs


def _accumulate_gradient(stack: ReluStack, x, y, loss: str, weight: float, grads: list[torch.Tensor], first: bool):
    """Write (``first``) or add ``weight * sum_x grad L`` over the chunk ``x`` (R,m,N) into ``grads``.

    ``grads``: tensors in ``stack.parameters()`` order (``(R, d_in, d_out)``, ``(R, d_out)``, ...),
    possibly views into one flat buffer. Returns the sum of the losses over the chunk, ``(R,)``.
    """
    act = ACTIVATIONS[stack.spec.activation]
    zs: list[torch.Tensor] | None = [] if act.needs_preactivation else None
    hs = _forward(stack, x, zs)
    out = hs[-1].squeeze(-1)  # (R, m)
    loss_sum = loss_value(loss, out, y).sum(1)
    delta = (loss_derivative(loss, out, y) * weight).unsqueeze(-1)  # (R, m, 1): dL/d(output pre-activation)
    slot = len(grads)
    for l in range(len(stack.weights) - 1, -1, -1):
        if stack.biases[l] is not None:
            slot -= 1
            if first:
                torch.sum(delta, 1, out=grads[slot])  # (R, d_out)
            else:
                grads[slot].add_(delta.sum(1))
        slot -= 1
        if first:
            torch.bmm(hs[l].transpose(1, 2), delta, out=grads[slot])  # (R, d_in, d_out)
        else:
            grads[slot].baddbmm_(hs[l].transpose(1, 2), delta)
        if l > 0:  # back through layer l's weights and the activation of layer l-1; no input gradient for l = 0
            grad_h = torch.bmm(delta, stack.weights[l].transpose(1, 2))
            delta = act.backward(grad_h, hs[l], None if zs is None else zs[l - 1])
    return loss_sum


def stack_gradient(stack: ReluStack, x: torch.Tensor, y: torch.Tensor, loss: str = "squared"):
    """Mean gradient ``(1/m) sum_x grad_theta L(NN(x), y(x))`` of every run over the inputs ``x``.

    ``x``: ``(m, N)`` shared or ``(R, m, N)``; ``y``: ``(m,)`` or ``(R, m)``. Returns the gradients in
    ``stack.parameters()`` order (``(R, d_in, d_out)``, ``(R, d_out)``, ...) and the mean loss ``(R,)``.
    """
    x = stack._expand_input(x)
    y = y.to(stack.dtype)
    grads = [torch.empty_like(p) for p in stack.parameters()]
    loss_sum = _accumulate_gradient(stack, x, y if y.dim() == 2 else y.unsqueeze(0), loss, 1.0 / x.shape[1], grads, True)
    return grads, loss_sum / x.shape[1]


class _Evaluator:
    """Correlation, its standard error, accuracy and loss of every run on ``n_eval`` fresh inputs."""

    def __init__(self, target, keys, n_eval, loss, rows, dtype):
        self.target, self.keys, self.n_eval, self.loss, self.rows, self.dtype = target, keys, n_eval, loss, rows, dtype

    def __call__(self, stack: ReluStack, step: int) -> torch.Tensor:
        R = stack.R
        sums = torch.zeros(4, R, dtype=torch.float64, device=stack.device)  # sum yNN, sum (yNN)^2, correct, loss
        for start in range(0, self.n_eval, self.rows):
            m = min(self.rows, self.n_eval - start)
            x = rademacher_rows(self.keys, step, start, m, stack.spec.input_dim, dtype=self.dtype)  # (R, m, N)
            y = self.target(x).to(self.dtype)  # (R, m)
            out = _forward(stack, x)[-1].squeeze(-1)  # (R, m)
            prod = (y * out).double()
            sums[0] += prod.sum(1)
            sums[1] += prod.square().sum(1)
            sums[2] += (torch.sign(out) == y).sum(1)
            sums[3] += loss_value(self.loss, out, y).double().sum(1)
        n = self.n_eval
        corr = sums[0] / n
        var = (sums[1] - n * corr.square()).clamp_min(0) / (n - 1)
        return torch.stack([corr, torch.sqrt(var / n), sums[2] / n, sums[3] / n])  # (4, R)


def train_noisy_gd(
    target_N,
    spec: NetworkSpec,
    config: NGDConfig,
    seeds: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int, int], None] | None = None,
) -> NGDResult:
    """Train one noisy-GD run per seed on ``target_N`` (a Target on ``N = spec.input_dim`` bits).

    ``target_N(x)`` maps ±1 inputs ``(..., N)`` to ±1 values ``(...)``. ``gamma``/``sigma`` of
    ``config`` are scalars or one value per seed. ``progress(step, T)``, if given, is called at
    every checkpoint. See the module docstring for the algorithm and the observables.
    """
    t_start = time.perf_counter()
    seeds = list(seeds)
    if not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-empty sequence of integers >= 0, got {seeds!r}")
    N, R = spec.input_dim, len(seeds)
    target_n = getattr(target_N, "n", N)
    if target_n != N:
        raise ValueError(f"target is on n={target_n} bits but spec.input_dim={N}: extend the target to N bits first")
    gamma = _per_run("gamma", config.gamma, R, device, dtype)
    sigma = _per_run("sigma", config.sigma, R, device, dtype)
    B, exact = ngd_batch(N, config.batch, config.exact_max_inputs)
    elem = torch.finfo(dtype).bits // 8
    budget = CHUNK_BYTES["cuda" if torch.device(device).type == "cuda" else "cpu"]
    per_hidden = 3 if ACTIVATIONS[spec.activation].needs_preactivation else 2  # h and its gradient (+ z)
    rows = max(1, min(B, budget // (R * elem * (N + per_hidden * spec.depth * spec.width + 4))))

    init = init_relu_stack(spec, seeds, dtype=dtype, device=device)
    flat = torch.cat([p.reshape(R, -1) for p in init.parameters()], 1)  # (R, E): theta of every run
    E = flat.shape[1]
    flat_next = torch.empty_like(flat)  # theta_t is written here, then the two buffers swap
    grad_flat = torch.empty_like(flat)  # (R, E): the gradient, then the whole update
    stack, stack_next = _flat_stack(spec, flat), _flat_stack(spec, flat_next)  # views into the buffers
    grads = _flat_stack(spec, grad_flat).parameters()
    batch_keys, noise_keys = (StepKeys(stream_keys(seeds, s, device)) for s in ("batch", "noise"))
    evaluate = _Evaluator(target_N, stream_keys(seeds, "eval", device), config.n_eval, config.loss, rows, dtype)
    if exact:
        x_all = enumerate_cube(N, dtype=dtype, device=device)  # (2^N, N), shared by every run
        y_all = target_N(x_all).to(dtype)  # (2^N,)

    alive = torch.ones(R, dtype=torch.bool, device=device)
    diverged_step = torch.full((R,), -1, dtype=torch.int64, device=device)
    ckpt_steps = config.checkpoint_steps()
    ckpt_set = set(ckpt_steps)
    ckpt_values: list[torch.Tensor] = []  # (5, R) per checkpoint
    on_cpu = torch.device(device).type == "cpu"

    def checkpoint(step: int) -> None:
        nonlocal alive, diverged_step
        obs = evaluate(stack, step).to(dtype=torch.float64)
        # finite parameters whose evaluation overflows (e.g. the loss at step T): diverged at this step
        overflow = alive & ~torch.isfinite(obs).all(0)
        diverged_step = torch.where(overflow, step, diverged_step)
        alive = alive & ~overflow
        obs = torch.where(alive.unsqueeze(0), obs, torch.full_like(obs, float("nan")))
        norm = flat.double().square().sum(1).sqrt().unsqueeze(0)
        ckpt_values.append(torch.cat([obs, norm]))
        if progress is not None:
            progress(step, config.T)

    if ckpt_steps[0] == 0:
        checkpoint(0)
    add_noise = any(s > 0 for s in (config.sigma if isinstance(config.sigma, tuple) else (config.sigma,)))
    for t in range(1, config.T + 1):
        loss_sum = torch.zeros(R, dtype=dtype, device=device)
        batch_key = None if exact else batch_keys(t)
        for start in range(0, B, rows):
            m = min(rows, B - start)
            if exact:
                x = x_all[start : start + m].unsqueeze(0).expand(R, -1, -1)  # (R, m, N)
                y = y_all[start : start + m].unsqueeze(0)  # (1, m)
            else:
                x = rademacher_rows_at(batch_key, start, m, N, dtype=dtype)  # (R, m, N)
                y = target_N(x).to(dtype)  # (R, m)
            loss_sum += _accumulate_gradient(stack, x, y, config.loss, 1.0 / B, grads, start == 0)
        if config.weight_decay:  # grad of (lambda/2)||theta||^2, before [.]_A; skipped at 0 (bit-identical)
            grad_flat.add_(flat, alpha=config.weight_decay)
        if config.precision == "clip":
            grad_flat.clamp_(-config.A, config.A)
        else:
            grad_flat.mul_(config.A).round_().div_(config.A)
        step_size = gamma / math.sqrt(t) if config.gamma_schedule == "inverse_sqrt" else gamma
        grad_flat.mul_(-step_size.unsqueeze(1))  # -gamma_t [g]_A
        if add_noise:
            grad_flat.addcmul_(sigma.unsqueeze(1), gaussians_at(noise_keys(t), E, dtype=dtype))  # + Z_t, not scaled by gamma
        torch.add(flat, grad_flat, out=flat_next)
        finite = torch.isfinite(flat_next).all(1) & torch.isfinite(loss_sum)
        diverged_step = torch.where(alive & ~finite, t, diverged_step)
        alive = alive & finite
        if not on_cpu or not bool(alive.all()):  # frozen runs keep their last finite parameters
            torch.where(alive.unsqueeze(1), flat_next, flat, out=flat_next)
        flat, flat_next, stack, stack_next = flat_next, flat, stack_next, stack
        if t in ckpt_set:
            checkpoint(t)

    values = torch.stack(ckpt_values, dim=2).cpu().numpy()  # (5, R, n_ckpt)
    curves = {name: values[i] for i, name in enumerate(("corr", "corr_se", "acc", "loss", "param_norm"))}
    curves["step"] = np.tile(np.asarray(ckpt_steps, dtype=np.int64), (R, 1))
    div = diverged_step.cpu().numpy()
    return NGDResult(
        corr=curves["corr"][:, -1].copy(),
        corr_se=curves["corr_se"][:, -1].copy(),
        acc=curves["acc"][:, -1].copy(),
        loss=curves["loss"][:, -1].copy(),
        param_norm=curves["param_norm"][:, -1].copy(),
        status=["diverged" if d >= 0 else "ok" for d in div],
        diverged_step=div,
        batch_used=np.full(R, 0 if exact else B, dtype=np.int64),
        curves=curves,
        wall_s=time.perf_counter() - t_start,
        params=stack,
    )
