"""Initial alignment (INAL) between a Boolean target and a randomly initialized network.

Definition (SCIENCE.md §4): for a neuron ``v`` (hidden: post-activation, ``spec.activation``,
ReLU by default; output: the linear output),

    INAL(f, NN) = max over layers l of  E_theta[ mean over neurons v of layer l of (E_x[f(x) v_theta(x)])^2 ].

``estimate_inal`` returns every layer's value (layers 1..depth+1, output last), the max, its layer
and standard errors over initializations (each init's neuron-mean of a layer is one sample).

Estimators of the squared correlation ``corr_v^2`` with ``corr_v = E_x[f v]``, all unbiased:

- ``exact``: all ``2^n`` inputs. ``corr_v`` exactly, then squared.
- ``mc``: per init ``m`` i.i.d. inputs, ``y_i = f(x_i) v(x_i)``, ``S = sum y_i``, ``Q = sum y_i^2``;
  the U-statistic ``(S^2 - Q) / (m (m-1))`` (the plain ``(S/m)^2`` is biased up by ``Var(y)/m``).
- ``junta``: the target depends only on the bits J. For ``m`` sampled assignments ``h_s`` of the other
  bits O, ``y_s = 2^{-|J|} sum_{a in {±1}^J} f(a) v(a, h_s)`` is an unbiased estimate of ``corr_v`` with
  variance ``sum_{A subset of O, A nonempty} vhat(J + A)^2`` (only the Fourier mass of ``v`` on strict
  supersets of J is left), and the same U-statistic of the ``y_s`` is unbiased for ``corr_v^2``.

Engines, with their costs per neuron (``n`` bits):

- *plain* (the reference, every depth; ``engine="plain"``): one ``(B, d) @ (d, width)`` product per
  layer, ReLU and a reduction: ``2 d + 3`` FLOPs and about 16 bytes of float32 activation traffic per
  neuron and input, i.e. ``2^n (2n + 3)`` FLOPs per first-layer neuron for exact INAL.
- *split* (first layer and output of depth-1 networks; exact and junta): split the bits into a low
  part L (``M = 2^|L|`` assignments, enumerated) and a high part H. Then ``w.x + b = p_a + c_h`` with
  ``p_a = w_L.a`` and ``c_h = w_H.h + b``. Group the high assignments by the pattern ``g = f(., h)``
  on L (``D`` distinct patterns: 1 for a junta inside L, 2 for parities, ``|H|+1`` for majority).
  Sort ``q = -p`` once per neuron; ``{a : p_a > -c_h}`` is a prefix of that order, so
  ``sum_a g(a) relu(p_a + c_h) = c_h G_g(k) - QG_g(k)`` with prefix sums ``G_g(k)`` of ``g`` and
  ``QG_g(k)`` of ``g q`` at ``k = #{q < c_h}`` (binary search). Per neuron: build
  ``M log M + 3 D M`` operations (``~48 D M`` bytes; neurons go in blocks of ~128 MiB), query
  ``2 |H| + log2 M + 5`` operations and two gathers per high assignment. For exact
  INAL ``|L|`` is chosen near ``n/2`` by that cost model: at ``n = 20`` about ``1e5`` operations per
  neuron for majority instead of ``4.5e7`` FLOPs (the measured speed-up is smaller, ~10x, because
  gathers and binary searches are slower per operation than a matrix product). The output neuron of
  a depth-1 network is linear in the hidden neurons, ``E[f out] = sum_v a_v E[f v] + b fhat(empty)``,
  so it costs nothing extra. For ``M <= 16`` (small juntas) the engine broadcasts
  ``relu(p_a + c_h)`` instead (``3 M`` FLOPs per neuron and sample, a matrix-vector product).
  Other activations: ``sign`` and ``identity`` have split forms of their own (``step``, ``linear``;
  ``inal_core.activations``); ``tanh`` has none, so its exact INAL uses the plain engine and its
  junta estimate the split engine only when broadcasting (``M <= 16``).

Accumulation is in float64. Memory stays under ``memory_budget_bytes`` by chunking over inits and
inputs; ``exact_memory_bytes`` gives the smallest footprint of the exact method and ``check_inal_request``
raises a ``ValueError`` naming the setting before any work (both in ``inal_core.specs``, with the
memory model, so that planning imports no torch).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .activations import ACTIVATIONS
from .cube import enumerate_cube, iter_cube_chunks, sample_cube
from .inal_split import BROADCAST_MAX_M, SplitFirstLayer, choose_split, split_unit_bytes, truth_table_int8
from .networks import NetworkSpec, ReluStack, init_relu_stack, output_bias_variance
from .rng import derive_seed, make_generator
from .specs import (DEFAULT_N_INPUTS, ESTIMATORS, MAX_EXACT_BITS, METHODS, check_inal_request,
                    exact_memory_bytes, plain_chunk_model)
from .targets import Target

__all__ = [
    "InalResult",
    "output_offset",
    "OUTPUT_OFFSET_MAX_BITS",
    "estimate_inal",
    "exact_memory_bytes",
    "check_inal_request",
    "METHODS",
    "DEFAULT_N_INPUTS",
    "MAX_EXACT_BITS",
]

SPLIT_BLOCK_BYTES = 128 << 20  # exact split engine: neurons processed in blocks of about this many bytes
SAMPLE_BLOCK = 256  # inputs are drawn in blocks of this many rows, each block from its own seed stream
_MAX_CHUNK_ROWS = 1 << 13


@dataclass
class InalResult:
    """Per-layer INAL (layers 1..depth+1, output last), the max, standard errors over inits, counts."""

    method: str
    per_layer: np.ndarray
    per_layer_se: np.ndarray
    value: float
    value_se: float
    argmax_layer: int
    n_inits: int
    n_inputs: int
    wall_s: float
    per_init: np.ndarray = field(repr=False, default=None)  # (n_inits, depth+1): each init's neuron-mean


# ---------------------------------------------------------------------------------------------
# memory model: bytes(Rc inits, B rows) = fixed + Rc*per_init + B*per_row_shared + Rc*B*per_row
# ---------------------------------------------------------------------------------------------


def _split_model(n: int, spec: NetworkSpec, low_bits: int, patterns: int, shared_inputs: bool):
    M, w = 1 << low_bits, spec.width
    per_init = 3 * 8 * spec.num_parameters + w * M * 32
    if M <= BROADCAST_MAX_M:
        per_row = w * (8 * 6 + 3 * 8 * M)
    else:
        per_init += patterns * w * (M + 1) * 32
        per_row = w * 8 * 8
    inp = (n - low_bits) * 16 + 16
    return (0, per_init, inp, per_row) if shared_inputs else (0, per_init, 0, per_row + inp)


def _plan(model, n_inits: int, total_rows: int, budget: int, quantum: int) -> tuple[int, int] | None:
    """Inits per chunk and rows per chunk fitting ``budget`` (rows a multiple of ``quantum`` when >= it)."""
    fixed, per_init, per_row_shared, per_row = model
    rows = min(total_rows, _MAX_CHUNK_ROWS)
    if rows < total_rows and rows >= quantum:
        rows = rows // quantum * quantum
    while True:
        left = budget - fixed - rows * per_row_shared
        if left > 0:
            r = int(left // (per_init + rows * per_row))
            if r >= 1:
                return min(r, n_inits), rows
        if rows == 1:
            return None
        rows = rows // 2
        if rows >= quantum:
            rows = rows // quantum * quantum


# ---------------------------------------------------------------------------------------------
# engines
# ---------------------------------------------------------------------------------------------


def _plain_layer_sums(stack: ReluStack, x: torch.Tensor, fx: torch.Tensor, low_size: int):
    """Per layer ``y = mean over the low block of f * v``: list of ``(Rc, B, width_l)`` float64.

    ``x``: ``(B*low_size, n)`` shared or ``(Rc, B*low_size, n)``; ``fx``: matching ``(.., B*low_size)``.
    """
    outs = stack.layer_outputs(x)  # [(Rc, B*M, w_l)]
    R = stack.R
    f = fx.to(outs[0].dtype)
    f = f.expand(R, -1) if f.dim() == 1 else f  # (Rc, B*M)
    ys = []
    for out in outs:
        w = out.shape[-1]
        y = out * f.unsqueeze(-1)  # (Rc, B*M, w)
        if low_size > 1:
            y = y.reshape(R, -1, low_size, w).mean(dim=2)  # (Rc, B, w)
        ys.append(y.to(torch.float64))
    return ys


def _init_seeds(seed: int, n_inits: int) -> list[int]:
    return [derive_seed(seed, "inal_init", r) for r in range(n_inits)]


def _sample_rows(input_seed: int, inits: range, start: int, stop: int, n: int, device, dtype) -> torch.Tensor:
    """Rows ``start..stop-1`` of every init's input sample: ``(Rc, stop-start, n)``.

    Row block ``k`` (``SAMPLE_BLOCK`` rows) of init ``r`` comes from stream ``(input_seed, "inal_inputs", r, k)``,
    so the samples do not depend on how the work is chunked.
    """
    per_init = []
    for r in inits:
        blocks = []
        for k in range(start // SAMPLE_BLOCK, (stop + SAMPLE_BLOCK - 1) // SAMPLE_BLOCK):
            gen = make_generator(input_seed, "inal_inputs", r, k)
            blocks.append(sample_cube(SAMPLE_BLOCK, n, gen, dtype=dtype))
        rows = torch.cat(blocks)
        off = start - (start // SAMPLE_BLOCK) * SAMPLE_BLOCK
        per_init.append(rows[off : off + stop - start])
    return torch.stack(per_init).to(device)


def _summarize(per_init: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    R = per_init.shape[0]
    mean = per_init.mean(axis=0)
    se = per_init.std(axis=0, ddof=1) / math.sqrt(R) if R > 1 else np.full(per_init.shape[1], np.nan)
    return mean, se


@dataclass
class _Request:
    """A checked INAL request, as the estimators of ``inal_core.specs.ESTIMATORS`` receive it."""

    target: Target
    spec: NetworkSpec
    used: str
    n_inits: int
    n_inputs: int | None
    seeds: list[int]
    input_seed: int
    device: torch.device
    dtype: torch.dtype
    budget: int
    split: bool  # the split engine may be used (engine "auto", depth 1, the truth table fits)
    split_form: str | None  # the activation's split form (inal_core.activations)
    progress: Callable[[int, int], None] | None


def exact_per_init(req: _Request) -> tuple[np.ndarray, int]:
    """The ``exact`` estimator: every init's neuron-mean of ``corr_v^2`` per layer over all ``2^n`` inputs
    (split engine where it applies, else the plain engine), and the inputs per init (``2^n``)."""
    target, spec, n_inits, seeds, device, dtype, budget, progress = (
        req.target, req.spec, req.n_inits, req.seeds, req.device, req.dtype, req.budget, req.progress)
    n = target.n
    per_init = np.empty((n_inits, spec.num_layers))
    n_used = 1 << n
    choice = choose_split(truth_table_int8(target, n, device), n) if req.split and req.split_form is not None else None
    plan = None
    if choice is not None:
        low, (patterns, pattern_id) = choice
        fixed = (1 << n) * 9 + (1 << (n - low)) * (n - low + 2) * 8  # table, inverse, high enumeration
        left = budget - fixed - 2 * split_unit_bytes(n, low, patterns.shape[0])
        init_bytes = 3 * 8 * spec.num_parameters + 32 * spec.width
        plan = (min(n_inits, max(1, left // init_bytes)), 0) if left > init_bytes else None
    if plan is not None:
        rc, _ = plan
        H = 1 << (n - low)
        low_idx, high_idx = list(range(low)), list(range(low, n))
        x_high = enumerate_cube(n - low, dtype=torch.float64, device=device) if n > low else \
            torch.ones(1, 0, dtype=torch.float64, device=device)  # (H, n - low)
        f_mean = patterns.to(torch.float64).mean(1)[pattern_id].mean()  # fhat(empty)
        # first-layer neurons of all inits share the inputs: flatten them into units, and process
        # blocks of units (SPLIT_BLOCK_BYTES: few large ops; within the memory budget)
        unit_bytes = split_unit_bytes(n, low, patterns.shape[0])
        block = max(1, min((left - rc * init_bytes) // unit_bytes, SPLIT_BLOCK_BYTES // unit_bytes))
        for r0 in range(0, n_inits, rc):
            stack = init_relu_stack(spec, seeds[r0 : r0 + rc], dtype=dtype, device=device)
            R, w = stack.R, spec.width
            W = stack.weights[0].to(torch.float64).permute(1, 0, 2).reshape(1, n, R * w)  # (1, n, R*w)
            b1 = None if stack.biases[0] is None else stack.biases[0].to(torch.float64).reshape(1, R * w)
            corr = torch.empty(R * w, dtype=torch.float64, device=device)
            for u0 in range(0, R * w, block):
                u1 = min(u0 + block, R * w)
                eng = SplitFirstLayer(W[..., u0:u1], None if b1 is None else b1[:, u0:u1], low_idx, high_idx, patterns,
                                      spec.activation)
                corr[u0:u1] = eng.hidden(x_high, pattern_id)[0].sum(-1) / H  # (G,)
            corr = corr.reshape(R, w)
            a = stack.weights[1].to(torch.float64)[:, :, 0]  # (R, w)
            corr_out = (a * corr).sum(1)
            if stack.biases[1] is not None:
                corr_out = corr_out + stack.biases[1].to(torch.float64)[:, 0] * f_mean
            per_init[r0 : r0 + R, 0] = corr.square().mean(1).cpu().numpy()
            per_init[r0 : r0 + R, 1] = corr_out.square().cpu().numpy()
            if progress is not None:
                progress(r0 + R, n_inits)
    else:
        model = plain_chunk_model(n, spec, dtype, 1, True)
        rc, rows = _plan(model, n_inits, 1 << n, budget, 1)
        for r0 in range(0, n_inits, rc):
            stack = init_relu_stack(spec, seeds[r0 : r0 + rc], dtype=dtype, device=device)
            sums = [torch.zeros(stack.R, w, dtype=torch.float64, device=device) for w in spec.layer_sizes[1:]]
            for start in range(0, 1 << n, rows):
                x = enumerate_cube(n, start, min(start + rows, 1 << n), dtype=dtype, device=device)
                fx = target(x).to(dtype)  # (B,)
                outs = stack.layer_outputs(x)  # [(Rc, B, w_l)]
                for s, out in zip(sums, outs):
                    s += torch.matmul(fx, out).to(torch.float64)  # (Rc, w_l): one reduction per chunk
            for l, s in enumerate(sums):
                per_init[r0 : r0 + stack.R, l] = (s / float(1 << n)).square().mean(1).cpu().numpy()
            if progress is not None:
                progress(r0 + stack.R, n_inits)
    return per_init, n_used


def sampled_per_init(req: _Request) -> tuple[np.ndarray, int]:
    """The ``mc`` and ``junta`` estimators: every init's neuron-mean of the U-statistic per layer, and the
    network inputs per init (``m`` samples, times ``2^|J|`` for junta)."""
    target, spec, used, n_inits, n_inputs, seeds, input_seed, device, dtype, budget, progress = (
        req.target, req.spec, req.used, req.n_inits, req.n_inputs, req.seeds, req.input_seed, req.device, req.dtype,
        req.budget, req.progress)
    n, relevant = target.n, sorted(target.relevant_bits)
    per_init = np.empty((n_inits, spec.num_layers))
    m_total = DEFAULT_N_INPUTS if n_inputs is None else n_inputs
    J = relevant if used == "junta" else []
    M = 1 << len(J)
    m = max(2, m_total // M)  # samples (of the non-relevant bits for junta)
    n_used = m * M
    others = [i for i in range(n) if i not in set(J)]
    if used == "junta":
        x_j = torch.ones(M, n, dtype=dtype, device=device)
        x_j[:, J] = enumerate_cube(len(J), dtype=dtype, device=device)
        g = target(x_j).to(dtype)  # (M,): f on the relevant bits (others are irrelevant)
    use_split = req.split and used == "junta" and (M <= BROADCAST_MAX_M or req.split_form is not None)
    if use_split:
        model = _split_model(n, spec, len(J), 1, False)
    else:
        model = plain_chunk_model(n, spec, dtype, M, False)
    plan = _plan(model, n_inits, m, budget, SAMPLE_BLOCK)
    if plan is None:
        raise ValueError(f"memory_budget_bytes={budget} is too small for method={used!r} (n={n}, width={spec.width})")
    rc, rows = plan
    for r0 in range(0, n_inits, rc):
        stack = init_relu_stack(spec, seeds[r0 : r0 + rc], dtype=dtype, device=device)
        R = stack.R
        S = [torch.zeros(R, w, dtype=torch.float64, device=device) for w in spec.layer_sizes[1:]]
        Q = [torch.zeros(R, w, dtype=torch.float64, device=device) for w in spec.layer_sizes[1:]]
        if use_split:
            eng = SplitFirstLayer(stack.weights[0], stack.biases[0], J, others, g.to(torch.float64).unsqueeze(0),
                                  spec.activation)
            a = stack.weights[1].to(torch.float64)[:, :, 0]  # (Rc, w)
            b2 = None if stack.biases[1] is None else stack.biases[1].to(torch.float64)[:, 0]
        for s0 in range(0, m, rows):
            s1 = min(s0 + rows, m)
            x = _sample_rows(input_seed, range(r0, r0 + R), s0, s1, n, device, dtype)  # (Rc, B, n)
            if use_split:
                pid = torch.zeros(s1 - s0, dtype=torch.int64, device=device)
                y_h = eng.hidden(x[..., others], pid)  # (Rc, w, B)
                ys = [y_h.transpose(1, 2), eng.output(a, b2, y_h, pid).unsqueeze(-1)]
            elif used == "junta":
                xx = x.unsqueeze(2).repeat(1, 1, M, 1)  # (Rc, B, M, n)
                xx[..., J] = x_j[:, J]
                fx = g.repeat(s1 - s0)  # (B*M,)
                ys = _plain_layer_sums(stack, xx.reshape(R, -1, n), fx, M)
            else:
                ys = _plain_layer_sums(stack, x, target(x), 1)
            for s, q, y in zip(S, Q, ys):  # y: (Rc, B, w_l) float64
                s += y.sum(1)
                q += y.square().sum(1)
        for l, (s, q) in enumerate(zip(S, Q)):
            u = (s.square() - q) / (m * (m - 1))  # unbiased for corr^2, per neuron
            per_init[r0 : r0 + R, l] = u.mean(1).cpu().numpy()
        if progress is not None:
            progress(r0 + R, n_inits)

    return per_init, n_used


def estimate_inal(
    target: Target,
    spec: NetworkSpec,
    *,
    n_inits: int,
    method: str = "auto",
    n_inputs: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    memory_budget_bytes: int = 2**31,
    dtype: torch.dtype = torch.float32,
    input_seed: int | None = None,
    engine: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> InalResult:
    """Estimate ``INAL(target, NN)`` for networks of ``spec`` (SCIENCE.md §4); see the module docstring.

    Init ``r`` uses seed ``derive_seed(seed, "inal_init", r)`` (so ``n_inits=4`` is a prefix of
    ``n_inits=8``); sampled inputs come from ``input_seed`` (default ``seed``). ``n_inputs``: inputs per
    init for ``mc`` and ``junta`` (``junta`` uses ``n_inputs // 2^|J|`` samples of the other bits, at
    least 2), ignored by ``exact``. ``engine``: ``"auto"`` or ``"plain"`` (the reference path: forward
    pass of explicit inputs). The result's ``n_inputs`` is the number of network inputs per init used.
    ``progress(done_inits, n_inits)``, if given, is called after every chunk of inits.
    """
    t0 = time.perf_counter()
    used = check_inal_request(target, spec, n_inits=n_inits, method=method, n_inputs=n_inputs,
                              memory_budget_bytes=memory_budget_bytes, device=device, dtype=dtype)
    if engine not in ("auto", "plain"):
        raise ValueError(f"engine must be 'auto' or 'plain', got {engine!r}")
    n = target.n
    budget = int(memory_budget_bytes)
    if used == "junta" and len(target.relevant_bits) == n:
        used = "exact"  # nothing left to sample
    req = _Request(
        target, spec, used, int(n_inits), None if n_inputs is None else int(n_inputs), _init_seeds(seed, int(n_inits)),
        seed if input_seed is None else input_seed, torch.device(device), dtype, budget,
        # the split engine needs the int8 truth table (plus its row ids): only when that is a small part of the budget
        engine == "auto" and spec.depth == 1 and (1 << n) * 12 * 4 <= budget,
        ACTIVATIONS[spec.activation].split,  # None (tanh): exact INAL by the plain engine
        progress,
    )
    per_init, n_used = ESTIMATORS[used].estimator()(req)

    mean, se = _summarize(per_init)
    best = int(np.argmax(mean))
    return InalResult(
        method=used,
        per_layer=mean,
        per_layer_se=se,
        value=float(mean[best]),
        value_se=float(se[best]),
        argmax_layer=best + 1,
        n_inits=n_inits,
        n_inputs=int(n_used),
        wall_s=time.perf_counter() - t0,
        per_init=per_init,
    )


OUTPUT_OFFSET_MAX_BITS = 22  # E_x[f] exactly over at most 2^22 inputs (chunks of 2^20)


def output_offset(target: Target, spec: NetworkSpec) -> float:
    """``INAL_{output} - INAL_{last hidden layer} = v_b E_x[f]^2``, exactly (``inal_core.inal_summary``,
    "The output neuron given the hidden layers"): ``v_b`` the output bias' variance
    (:func:`inal_core.networks.output_bias_variance`), ``E_x[f]`` the target's mean over the whole
    cube. NaN when ``n > OUTPUT_OFFSET_MAX_BITS`` (the mean is then not computed exactly)."""
    v_b = output_bias_variance(spec)
    if v_b == 0.0:
        return 0.0
    if target.n > OUTPUT_OFFSET_MAX_BITS:
        return math.nan
    total = 0.0
    for _, x in iter_cube_chunks(target.n, 1 << 20):
        total += float(target(x).to(torch.float64).sum())
    mean = total / (1 << target.n)
    return v_b * mean * mean
