"""Stacks of fully connected networks held as batched tensors.

A ``ReluStack`` holds R networks of one shape (SCIENCE.md §3): ``depth`` hidden layers of
``width`` neurons with the activation ``spec.activation`` (ReLU by default; the registry is
``inal_core.activations``), biases on by default, one linear output neuron. Layer ``l`` has
weights of shape ``(R, d_in, d_out)`` and biases ``(R, d_out)``, so a forward pass is one
``torch.baddbmm`` per layer for the whole stack.

Initializations (``init``), with ``d`` the fan-in of the receiving neuron:

- ``"normal"`` (default, "normalized i.i.d. Gaussian"): weights and biases ``N(0, 1/d)``;
- ``"normal_bias1"``: weights ``N(0, 1/d)``, biases ``N(0, 1)``;
- ``"rademacher"``: weights ``±1/sqrt(d)`` with equal probability, biases ``N(0, 1/d)``.

``bias=False`` removes every bias (then a ReLU first layer has zero alignment with odd
parities of degree >= 3, see SCIENCE.md §3).

Every run ``r`` is initialized from its own seed alone (stream ``"init"``), on the CPU in
float64 and then cast and moved, so a run's initial parameters are the same alone or in a
stack, and on CPU or CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import math

import torch

from .rng import make_generator
from .activations import ACTIVATIONS
from .specs import INITS, NetworkSpec  # plain Python, shared with the planner

__all__ = ["NetworkSpec", "ReluStack", "init_relu_stack", "INITS", "ACTIVATIONS", "output_bias_variance"]


@dataclass
class ReluStack:
    """R networks of one ``NetworkSpec`` as stacked tensors.

    ``weights[l]``: ``(R, d_l, d_{l+1})``; ``biases[l]``: ``(R, d_{l+1})`` or ``None`` when
    ``spec.bias`` is False. Layer ``l`` (0-based) for ``l < depth`` is hidden (activation
    ``spec.activation``); the last is the linear output neuron. (The name predates the other
    activations.)
    """

    spec: NetworkSpec
    weights: list[torch.Tensor]
    biases: list[torch.Tensor | None]

    @property
    def R(self) -> int:
        return self.weights[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.weights[0].device

    @property
    def dtype(self) -> torch.dtype:
        return self.weights[0].dtype

    def parameters(self) -> list[torch.Tensor]:
        """Weights and biases, layer by layer (``W_0, b_0, W_1, b_1, ...``; no ``None``)."""
        params: list[torch.Tensor] = []
        for w, b in zip(self.weights, self.biases):
            params.append(w)
            if b is not None:
                params.append(b)
        return params

    def _expand_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:  # (B, d) shared by all runs -> (R, B, d) view, no copy
            return x.unsqueeze(0).expand(self.R, -1, -1)
        if x.dim() == 3 and x.shape[0] == self.R:
            return x
        raise ValueError(f"input must be (B, d) or (R={self.R}, B, d), got {tuple(x.shape)}")

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every neuron's value: hidden post-activation ``(R, B, width)`` per layer, then output ``(R, B, 1)``."""
        h = self._expand_input(x).to(self.dtype)
        outs: list[torch.Tensor] = []
        last = len(self.weights) - 1
        phi = ACTIVATIONS[self.spec.activation].forward
        for l, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = torch.bmm(h, w) if b is None else torch.baddbmm(b.unsqueeze(1), h, w)
            h = z if l == last else phi(z)
            outs.append(h)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Network outputs ``(R, B)`` for inputs ``(B, d)`` or ``(R, B, d)``."""
        return self.layer_outputs(x)[-1].squeeze(-1)

    __call__ = forward

    def to(self, device=None, dtype=None) -> "ReluStack":
        return ReluStack(
            self.spec,
            [w.to(device=device, dtype=dtype) for w in self.weights],
            [None if b is None else b.to(device=device, dtype=dtype) for b in self.biases],
        )

    def select(self, index: Sequence[int] | torch.Tensor) -> "ReluStack":
        """The sub-stack of runs ``index`` (a copy)."""
        idx = torch.as_tensor(index, dtype=torch.long, device=self.device)
        return ReluStack(
            self.spec,
            [w.index_select(0, idx) for w in self.weights],
            [None if b is None else b.index_select(0, idx) for b in self.biases],
        )


def output_bias_variance(spec: NetworkSpec) -> float:
    """Variance of the output neuron's bias under ``spec.init`` (:func:`_init_one`): ``1`` for
    ``"normal_bias1"``, ``1/width`` otherwise (its fan-in), ``0`` without biases. The output weights
    are i.i.d., mean 0, variance ``1/width`` under every init."""
    if not spec.bias:
        return 0.0
    return 1.0 if spec.init == "normal_bias1" else 1.0 / spec.layer_sizes[-2]


def _init_one(spec: NetworkSpec, seed: int) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    gen = make_generator(seed, "init")
    sizes = spec.layer_sizes
    ws: list[torch.Tensor] = []
    bs: list[torch.Tensor | None] = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        scale = 1.0 / math.sqrt(d_in)
        if spec.init == "rademacher":
            w = (torch.randint(0, 2, (d_in, d_out), generator=gen, dtype=torch.int64).to(torch.float64) * 2 - 1) * scale
        else:
            w = torch.randn(d_in, d_out, generator=gen, dtype=torch.float64) * scale
        ws.append(w)
        if spec.bias:
            b_scale = 1.0 if spec.init == "normal_bias1" else scale
            bs.append(torch.randn(d_out, generator=gen, dtype=torch.float64) * b_scale)
        else:
            bs.append(None)
    return ws, bs


def init_relu_stack(
    spec: NetworkSpec,
    seeds: Sequence[int],
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> ReluStack:
    """Initialize one network per seed (SCIENCE.md §3) and stack them.

    Run ``r`` depends only on ``seeds[r]``: ``init_relu_stack(spec, [s])`` equals run ``r``
    of ``init_relu_stack(spec, [..., s, ...])`` exactly.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds must not be empty")
    per_run = [_init_one(spec, s) for s in seeds]
    n_layers = len(spec.layer_sizes) - 1
    weights = [torch.stack([pr[0][l] for pr in per_run]).to(device=device, dtype=dtype) for l in range(n_layers)]
    biases: list[torch.Tensor | None] = []
    for l in range(n_layers):
        if spec.bias:
            biases.append(torch.stack([pr[1][l] for pr in per_run]).to(device=device, dtype=dtype))
        else:
            biases.append(None)
    return ReluStack(spec, weights, biases)
