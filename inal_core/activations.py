"""Hidden-layer activations ``phi`` (SCIENCE.md §3), one registry entry each: the function, the
derivative noisy GD uses, and what the split engine of exact INAL can do with it.

The output neuron is always linear; ``phi`` acts on every hidden neuron, ``h = phi(z)``,
``z = W h_prev + b``.

=============  ==========================  =====================================  ===============
name           ``phi(z)``                  ``phi'(z)`` used by noisy GD            split engine
=============  ==========================  =====================================  ===============
``relu``       ``max(z, 0)``               ``1[z > 0]`` (0 at the kink)            ``ramp``
``sign``       ``+1, 0, -1`` (``sign(0)``  straight-through: ``1[|z| <= 1]``       ``step``
               ``= 0``, so phi is odd)
``tanh``       ``tanh z``                  ``1 - tanh(z)^2``                       none (plain)
``identity``   ``z``                       ``1``                                   ``linear``
=============  ==========================  =====================================  ===============

``sign`` has derivative 0 almost everywhere, so gradient descent on it would never move the hidden
layers. Noisy GD uses the straight-through estimator of the hard-tanh (Bengio, Léonard and
Courville 2013; Hubara et al. 2016): the backward pass treats ``sign`` as ``hardtanh(z) =
clip(z, -1, 1)``, i.e. ``phi'(z) := 1[|z| <= 1]``, while the forward pass (and every INAL
estimate) uses ``sign`` itself. ``sign(0) = 0`` keeps ``phi`` odd, so a bias-free sign network is an
odd function of x exactly. (Only with Rademacher weights and no biases can ``z`` be 0 in exact
arithmetic; then float rounding of ``z`` decides between -1, 0 and +1.)

Split forms (how ``sum_a g(a) phi(p_a + c)`` over the low assignments reduces to prefix sums of the
sorted ``q = -p``, see ``inal_core.inal``): ``ramp`` ``c G(k) - QG(k)`` with ``k = #{q < c}``;
``step`` ``G(k) + G(k') - G(M)`` with ``k' = #{q <= c}`` (ties count 0); ``linear`` ``c G(M) - QG(M)``.
An activation without a split form (``tanh``) is computed by the plain engine (explicit forward
passes over the enumerated cube); exact INAL then costs ``2^n (2n + 3)`` FLOPs per first-layer
neuron instead of ``O(2^{n/2})``, and ``auto`` does not choose ``exact`` beyond n = 16 for it.

The functions use tensor methods only (as ``inal_core.losses`` does), so the planner reads the
names (``ACTIVATIONS``) without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

__all__ = ["Activation", "ACTIVATIONS", "SPLIT_FORMS", "get_activation"]

SPLIT_FORMS = ("ramp", "step", "linear")  # the forms the split engine implements (inal_core.inal_split)


@dataclass(frozen=True)
class Activation:
    """One hidden-layer activation.

    ``forward(z)``: ``phi(z)`` as a new tensor; ``forward_(z)``: the same, in place (noisy GD);
    ``backward(grad_h, h, z)``: ``grad_h * phi'(z)`` given the output ``h = phi(z)`` and, when
    ``needs_preactivation``, ``z`` itself (else ``z`` is None: the engine does not keep it);
    ``split``: one of ``SPLIT_FORMS`` or None (the split engine cannot serve it).
    """

    name: str
    forward: Callable[["torch.Tensor"], "torch.Tensor"]
    forward_: Callable[["torch.Tensor"], "torch.Tensor"]
    backward: Callable[..., "torch.Tensor"]
    derivative: str  # the convention, in words (SCIENCE.md §5)
    split: str | None
    needs_preactivation: bool = False
    odd: bool = False  # phi(-z) = -phi(z): a bias-free network is then an odd function of x
    doc: str = ""


def _relu_backward(grad, h, z):
    # d relu = 1[z > 0] = 1[h > 0]: one fused kernel reading h (the engine keeps no z for ReLU)
    import torch  # noisy GD has torch loaded already; planning never calls a backward

    return torch.ops.aten.threshold_backward(grad, h, 0)


def _sign_forward(z):
    return z.sign()


def _sign_forward_(z):
    return z.sign_()


def _sign_backward(grad, h, z):
    # straight-through (hard-tanh): phi'(z) := 1[|z| <= 1]
    return grad * (z.abs() <= 1).to(grad.dtype)


def _tanh_backward(grad, h, z):
    return grad * (1 - h * h)


def _identity(z):
    return z


def _identity_backward(grad, h, z):
    return grad


ACTIVATIONS: dict[str, Activation] = {
    "relu": Activation("relu", lambda z: z.relu(), lambda z: z.relu_(), _relu_backward,
                       "1[z > 0] (0 at the kink z = 0)", "ramp", doc="max(z, 0)"),
    "sign": Activation("sign", _sign_forward, _sign_forward_, _sign_backward,
                       "straight-through 1[|z| <= 1] (the derivative of hardtanh)", "step",
                       needs_preactivation=True, odd=True, doc="sign(z), sign(0) = 0"),
    "tanh": Activation("tanh", lambda z: z.tanh(), lambda z: z.tanh_(), _tanh_backward,
                       "1 - tanh(z)^2", None, odd=True, doc="tanh(z)"),
    "identity": Activation("identity", _identity, _identity, _identity_backward,
                           "1", "linear", odd=True, doc="z (a linear network)"),
}
assert all(a.split in SPLIT_FORMS + (None,) for a in ACTIVATIONS.values())


def get_activation(name: str) -> Activation:
    """The registry entry of ``name``; ``ValueError`` naming the allowed names otherwise."""
    act = ACTIVATIONS.get(name)
    if act is None:
        raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {name!r}")
    return act
