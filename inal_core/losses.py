"""Per-example losses of noisy GD and their derivatives in the network output.

With ``yhat = NN(x)`` and ``y = fbar(x)`` in {-1, +1}:

- ``"squared"`` (default): ``L = (yhat - y)^2`` (no factor 1/2), ``dL/dyhat = 2 (yhat - y)``;
- ``"correlation"``: ``L = -y yhat``, ``dL/dyhat = -y``;
- ``"hinge"``: ``L = max(0, 1 - y yhat)``, ``dL/dyhat = -y`` where ``y yhat < 1`` and ``0``
  elsewhere (the subgradient 0 at the kink, as autograd's ``relu`` gives).

Each entry of ``LOSSES`` is ``(value, derivative)``, both elementwise on tensors of one shape.
They use tensor methods only, so the loss names (the keys of ``LOSSES``) are known to a planner
that imports no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    import torch

__all__ = ["LOSSES", "loss_value", "loss_derivative"]

LossFn = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def _squared(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (yhat - y).square()


def _squared_d(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return 2.0 * (yhat - y)


def _correlation(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -(y * yhat)


def _correlation_d(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -y.expand_as(yhat).to(yhat.dtype)


def _hinge(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (1.0 - y * yhat).relu()


def _hinge_d(yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (-y).where(y * yhat < 1.0, yhat.new_zeros(()))


LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "squared": (_squared, _squared_d),
    "correlation": (_correlation, _correlation_d),
    "hinge": (_hinge, _hinge_d),
}


def _lookup(name: str) -> tuple[LossFn, LossFn]:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {tuple(LOSSES)}, got {name!r}")
    return LOSSES[name]


def loss_value(name: str, yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise loss ``L(yhat, y)`` (see module doc for the definitions)."""
    return _lookup(name)[0](yhat, y)


def loss_derivative(name: str, yhat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Elementwise ``dL/dyhat`` (see module doc)."""
    return _lookup(name)[1](yhat, y)
