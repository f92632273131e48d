"""Target families ``f_n : {-1,+1}^n -> {-1,+1}`` (SCIENCE.md §2) and their extension ``fbar`` to N bits.

Every target evaluates batched ±1 tensors ``(..., n) -> (...)`` (float, values exactly ±1), and
declares ``relevant_bits`` (0-based indices it depends on; the junta-aware INAL estimator sums
exactly over them), ``nominal_c`` (the declared INAL exponent) and ``params`` (plain scalars,
recorded with every result). ``c`` is a grid axis mapped to each family's parameter:

======================  =====================================================  =============
family                  definition                                             nominal c
======================  =====================================================  =============
``parity``              ``chi_S(x) = prod_{i in S} x_i``, ``|S| = k = c``       ``k``
``majority``            ``sign(sum x_i)`` over n bits (n odd) or n-1 (n even)   1
``staircase``           ``sign(x1 + x1x2 + ... + x1..xk)``, ties -> +1          1
``full_parity``         ``chi_[n]``                                             inf
``planted``             ``x_1`` on an event E, ``P(E) = p``, parity elsewhere    c (real >= 1)
======================  =====================================================  =============

``staircase``: ``k`` defaults to the largest odd number ``<= min(n, 5)``. The partial products
``y_j = x_1...x_j`` are i.i.d. uniform ±1, so for odd k the function is the majority of k fair
coins (balanced, no ties); for an even k a tie (sum 0) gives +1 and the function is biased by
``P(tie)/2``.

``planted`` (a continuous knob on the exponent): with ``r`` "event" bits ``x_2..x_{r+1}`` read as
the integer ``u = sum_j bit(x_{j+2}) 2^j`` and ``E = {u < K}`` (so ``p = K / 2^r``), and a parity
``chi_T`` over the next ``m`` bits (disjoint from ``x_1`` and the event bits),
``f = x_1`` on E and ``f = chi_T`` off E, i.e. ``f = x_1 1_E + chi_T (1 - 1_E)``. Its Fourier
coefficient on ``x_1`` is ``E[1_E] = p``, so ``W^{=1} = p^2``; on ``x_1 chi_A`` (A a nonempty set of
event bits) it is ``E[1_E chi_A]``, and these carry most of the ``x_1 1_E`` part's weight, which is
``E[1_E^2] = p`` in total, not ``p^2``. When ``K`` is a power of two, E fixes the top
``r - log2 K`` event bits, and each A inside those bits has coefficient exactly ``p``: at n = 16,
c = 3 (``p = 1/16``, two fixed bits) ``W^{=2} = 4 p^2 > W^{=1} = p^2``. The knob aims at the
degree-1 part (the first-layer INAL of a degree-1 component is about ``const * W^{=1} / n``, and
``p = n^{-(c-1)/2}`` aims at ``INAL ~ n^{-c}``), but the degree-2 and higher terms align too. ``r`` is
``ceil(log2 1/p) + resolution_bits`` (capped by the bits left after the parity), ``K =
round(p 2^r)``, and the realised ``p`` and ``c_effective = 1 + 2 log(1/p) / log n`` are recorded.
Limitations: p is realised only to the resolution ``2^-r``; the parity part (degree m, default
``ceil((n-1)/2)``) and the ``x_1 chi_A`` terms above add alignment of their own. The measured
exponent is what counts (tests/test_targets.py checks this spectrum against brute force).

The registry: ``FAMILIES`` is the one table (name -> :class:`Family`: the class, how ``c`` is read,
the parameters and their checks); ``TARGETS`` is a view of it (name -> class). A family defined in
a user's own module is named by its import path ``"module:attribute"`` (``make_target``,
``target.name`` in a config): :func:`get_family` imports it and registers it under that path on
first use, in the driver and in each worker alike; :func:`register_family` adds one by name.

The extension rule ``N`` (``"n^2"``, ``"2n"`` or an integer >= n) is parsed here only
(:func:`parse_extension`); the config validation and the analysis call it.
"""

from __future__ import annotations

import importlib
import math
import numbers
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # targets evaluate through tensor methods: building one (planning) imports no torch
    import torch

__all__ = [
    "Target",
    "ParityTarget",
    "MajorityTarget",
    "StaircaseTarget",
    "FullParityTarget",
    "PlantedTarget",
    "ExtendedTarget",
    "TARGETS",
    "FAMILIES",
    "Family",
    "FamilyParam",
    "TargetConfigError",
    "FamilyImportError",
    "register_family",
    "load_family",
    "get_family",
    "user_family_modules",
    "unregister_family",
    "available_targets",
    "make_target",
    "EXTENSION_ALIASES",
    "extension_allowed",
    "parse_extension",
    "resolve_extension",
    "extend",
]


def _check_int(name: str, value: Any, low: int, high: int | None, family: str) -> int:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and float(value).is_integer()
    if ok:
        value = int(value)
        ok = value >= low and (high is None or value <= high)
    if not ok:
        allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"{family}: {name} must be {allowed}, got {value!r}")
    return value


class Target:
    """A Boolean target on ``n`` bits. Subclasses implement ``_evaluate(x) -> (...)`` for ``x (..., n)``."""

    name: str = "target"

    def __init__(self, n: int, nominal_c: float, relevant_bits: tuple[int, ...], params: dict[str, Any]):
        self.n = n
        self.nominal_c = float(nominal_c)
        self.relevant_bits = tuple(int(i) for i in relevant_bits)
        self.params = dict(params)

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` for ``x`` of shape ``(..., n)`` with ±1 entries: shape ``(...)``, values ±1."""
        if x.shape[-1] != self.n:
            raise ValueError(f"{self.name}: input must have last dimension n={self.n}, got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            x = x.float()
        return self._evaluate(x)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(n={self.n}, {args})"


def _sign_ties_plus(s: torch.Tensor) -> torch.Tensor:
    """``sign(s)`` with ``sign(0) = +1``: ``2 [s >= 0] - 1`` in the dtype of ``s``."""
    return (s >= 0).to(s.dtype) * 2 - 1


class ParityTarget(Target):
    """``chi_S(x) = prod_{i in S} x_i`` with ``|S| = k``; S the first k bits or a seeded random subset."""

    name = "parity"

    def __init__(self, n: int, k: int, subset: str = "first", subset_seed: int = 0):
        k = _check_int("k", k, 1, n, self.name)
        if subset not in ("first", "random"):
            raise ValueError(f"parity: subset must be 'first' or 'random', got {subset!r}")
        subset_seed = _check_int("subset_seed", subset_seed, 0, None, self.name)
        bits = tuple(range(k)) if subset == "first" else tuple(sorted(random.Random(subset_seed).sample(range(n), k)))
        params = {"k": k, "subset": subset, "subset_seed": subset_seed}
        super().__init__(n, float(k), bits, params)
        self.k = k

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., list(self.relevant_bits)].prod(dim=-1)


class FullParityTarget(Target):
    """``chi_[n](x) = x_1 x_2 ... x_n``; INAL is super-polynomially small (nominal c = inf)."""

    name = "full_parity"

    def __init__(self, n: int):
        super().__init__(n, math.inf, tuple(range(n)), {})

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return x.prod(dim=-1)


class MajorityTarget(Target):
    """``sign(x_1 + ... + x_m)`` with ``m = n`` for odd n and ``m = n - 1`` for even n (no ties)."""

    name = "majority"

    def __init__(self, n: int):
        m = n if n % 2 == 1 else n - 1
        super().__init__(n, 1.0, tuple(range(m)), {"bits": m})

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., : len(self.relevant_bits)].sum(dim=-1).sign()


class StaircaseTarget(Target):
    """``sign(x_1 + x_1 x_2 + ... + x_1 ... x_k)``, ``sign(0) = +1``; default k: largest odd ``<= min(n, 5)``."""

    name = "staircase"

    def __init__(self, n: int, k: int | None = None):
        if k is None:
            k = min(n, 5)
            k = k if k % 2 == 1 else k - 1
        k = _check_int("k", k, 1, n, self.name)
        super().__init__(n, 1.0, tuple(range(k)), {"k": k})
        self.k = k

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        partial_products = x[..., : self.k].cumprod(dim=-1)  # (..., k): y_j = x_1..x_j
        return _sign_ties_plus(partial_products.sum(dim=-1))


class PlantedTarget(Target):
    """``x_1`` on an event E of probability ``p ~ n^{-(c-1)/2}`` (bits ``x_2..x_{r+1}``), ``chi_T`` off E.

    See the module docstring for the construction and its limitations.
    """

    name = "planted"

    def __init__(self, n: int, c: float, parity_degree: int | None = None, resolution_bits: int = 2):
        if not isinstance(c, numbers.Real) or isinstance(c, bool) or not math.isfinite(c) or c < 1:
            raise ValueError(f"planted: c must be a finite real >= 1, got {c!r}")
        if n < 3:
            raise TargetConfigError("planted", "n", n, "an integer >= 3 (x_1, event bits, parity bits)")
        resolution_bits = _check_int("resolution_bits", resolution_bits, 0, 16, self.name)
        m = math.ceil((n - 1) / 2) if parity_degree is None else parity_degree
        m = _check_int("parity_degree", m, 1, n - 1, self.name)
        p_wanted = float(n) ** (-(c - 1) / 2)
        r_needed = 0 if p_wanted >= 1 else math.ceil(math.log2(1 / p_wanted) - 1e-12)
        r_max = n - 1 - m
        if r_needed > r_max:
            raise TargetConfigError(
                "planted", "c", c, f"a c whose event fits: p = n^-(c-1)/2 needs at most n - 1 - parity_degree = {r_max} event bits",
                f"planted: c={c} at n={n} needs {r_needed} event bits (p = n^-(c-1)/2 = {p_wanted:.3g}) but only "
                f"n - 1 - parity_degree = {r_max} are left; lower parity_degree (={m}) or c, or raise n"
            )
        r = 0 if r_needed == 0 else min(r_needed + resolution_bits, r_max)
        K = max(1, round(p_wanted * 2**r))
        p = K / 2**r
        self.event_bits = tuple(range(1, 1 + r))
        self.parity_bits = tuple(range(1 + r, 1 + r + m))
        self.K = K
        relevant = (0,) if K == 2**r else (0,) + self.event_bits + self.parity_bits
        c_eff = 1.0 + (2 * math.log(1 / p) / math.log(n))
        params = {"c": float(c), "p": p, "event_bits": r, "event_K": K, "parity_degree": m,
                  "resolution_bits": resolution_bits, "c_effective": c_eff}
        super().__init__(n, float(c), relevant, params)

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.relevant_bits) == 1:  # p = 1: E is the whole cube
            return x[..., 0].clone()
        weights = x.new_tensor([2.0**j for j in range(len(self.event_bits))])  # x's dtype and device
        u = ((1 - x[..., list(self.event_bits)]) / 2 * weights).sum(dim=-1)  # (...) integer-valued
        parity = x[..., list(self.parity_bits)].prod(dim=-1)
        return x[..., 0].where(u < self.K - 0.5, parity)


class ExtendedTarget(Target):
    """``fbar(x_1..x_N) = f(x_1..x_n)``: the same function of the first n of N bits."""

    def __init__(self, base: Target, N: int):
        self.base = base
        self.name = base.name
        super().__init__(N, base.nominal_c, base.relevant_bits, {**base.params, "base_n": base.n})

    def _evaluate(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x[..., : self.base.n])


# --------------------------------------------------------------------------- the family registry


class TargetConfigError(ValueError):
    """A family input that is not allowed: ``param`` (``"c"`` or a family parameter), ``value`` and
    ``allowed`` (what is, in words). A ``ValueError``, so callers of ``make_target`` see no change."""

    def __init__(self, family: str, param: str, value: Any, allowed: str, message: str = "") -> None:
        self.family, self.param, self.value, self.allowed = family, param, value, allowed
        super().__init__(message or f"{family}: {param} must be {allowed}, got {value!r}")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class FamilyParam:
    """One family parameter: an integer in ``[low, high(n)]`` (``high`` None: no upper bound) or a
    choice among ``choices``; ``default`` None means the family derives it from n."""

    name: str
    kind: str  # "int" | "choice"
    default: Any = None
    low: int = 0
    high: Callable[[int], int] | None = None
    high_text: str = ""  # the upper bound in words, e.g. "n"
    choices: tuple[str, ...] = ()
    doc: str = ""

    def allowed(self, n: int) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.high is None:
            return f"an integer >= {self.low}"
        return f"an integer in [{self.low}, {self.high(n)}] ({self.high_text}, n={n})"

    def check(self, family: str, value: Any, n: int) -> Any:
        """The value in its canonical type (``0.0`` -> ``0``), or ``TargetConfigError``."""
        if value is None and self.default is None:
            return None
        if self.kind == "choice":
            if not isinstance(value, str) or value not in self.choices:
                raise TargetConfigError(family, self.name, value, self.allowed(n))
            return value
        ok = _is_real(value) and math.isfinite(value) and float(value).is_integer()
        if ok:
            value = int(value)
            ok = value >= self.low and (self.high is None or value <= self.high(n))
        if not ok:
            raise TargetConfigError(family, self.name, value, self.allowed(n))
        return value


@dataclass(frozen=True)
class Family:
    """A target family in the registry: its class, how it reads ``c`` and its parameters.

    ``c_rule``: ``"degree"`` (c is an integer 1..n, the parity degree k = c), ``"real"`` (a finite
    real >= 1, the planted exponent) or ``"fixed"`` (requested c ignored, ``fixed_c`` recorded).
    :meth:`validate` is the one place where a family's inputs are checked; :meth:`build` makes
    the target from validated inputs.
    """

    name: str
    cls: type
    c_rule: str
    params: tuple[FamilyParam, ...] = ()
    fixed_c: float | None = None
    doc: str = ""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    def c_allowed(self, n: int) -> str:
        if self.c_rule == "degree":
            return f"an integer >= 1 and <= n: the parity degree k = c in 1..n (n={n})"
        if self.c_rule == "real":
            return "a finite real >= 1"
        return "any number (ignored: this family's nominal c is fixed)"

    def check_c(self, c: Any, n: int) -> float:
        """The nominal c of this family for the requested ``c``."""
        if self.c_rule == "fixed":
            return float(self.fixed_c)
        if self.c_rule == "real":
            if not _is_real(c) or not math.isfinite(c) or c < 1:
                raise TargetConfigError(self.name, "c", c, self.c_allowed(n),
                                        f"{self.name}: c must be a finite real >= 1, got {c!r}")
            return float(c)
        if not _is_real(c) or not math.isfinite(c) or not float(c).is_integer():
            raise TargetConfigError(self.name, "c", c, self.c_allowed(n),
                                    f"{self.name}: c must be an integer (k = c) in [1, {n}], got {c!r}")
        if not 1 <= int(c) <= n:
            raise TargetConfigError(self.name, "c", c, self.c_allowed(n),
                                    f"{self.name}: k must be an integer in [1, {n}], got {int(c)!r}")
        return float(int(c))

    def validate(self, n: int, c: Any, params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        """``(nominal c, parameters)``: every parameter of the family, checked and in canonical
        type, defaults filled in (None where the family derives it from n). Raises
        :class:`TargetConfigError` naming the first input that is not allowed."""
        unknown = sorted(set(params) - set(self.param_names))
        if unknown:
            names = list(self.param_names)
            raise TargetConfigError(self.name, unknown[0], params[unknown[0]],
                                    "one of this family's parameters: " + (", ".join(names) or "none"),
                                    f"{self.name}: unknown parameter(s) {unknown}; allowed: {names}")
        if self.c_rule == "degree" and "k" in params and params["k"] is not None:  # k is another name for c
            if c is not None and (not _is_real(params["k"]) or float(params["k"]) != float(c)):
                raise TargetConfigError(self.name, "k", params["k"], f"equal to c (k = c; c={c!r})",
                                        f"{self.name}: k={params['k']!r} contradicts c={c!r} (k = c); give one of them")
            c = params["k"]
        if c is None and self.c_rule != "fixed":
            raise TargetConfigError(self.name, "c", c, self.c_allowed(n),
                                    f"{self.name}: c ({self.c_allowed(n)}) is required")
        nominal_c = self.check_c(c, n)
        out = {}
        for p in self.params:
            if self.c_rule == "degree" and p.name == "k":
                continue  # folded into c
            out[p.name] = p.check(self.name, params.get(p.name, p.default), n)
        return nominal_c, out

    def build(self, n: int, nominal_c: float, params: dict[str, Any]) -> Target:
        """The target from validated inputs (:meth:`validate`)."""
        kwargs = {k: v for k, v in params.items() if v is not None}
        if self.c_rule == "degree":
            return self.cls(n, int(nominal_c), **kwargs)
        if self.c_rule == "real":
            return self.cls(n, nominal_c, **kwargs)
        return self.cls(n, **kwargs)


FAMILIES: dict[str, Family] = {
    "parity": Family("parity", ParityTarget, "degree", (
        FamilyParam("k", "int", None, 1, lambda n: n, "n", doc="another name for c"),
        FamilyParam("subset", "choice", "first", choices=("first", "random"),
                    doc="S: the first k bits, or a seeded random subset"),
        FamilyParam("subset_seed", "int", 0, 0, doc="seed of the random subset"),
    ), doc="chi_S, |S| = k = c"),
    "majority": Family("majority", MajorityTarget, "fixed", (), 1.0, doc="sign of the sum of n (odd) or n-1 bits"),
    "staircase": Family("staircase", StaircaseTarget, "fixed", (
        FamilyParam("k", "int", None, 1, lambda n: n, "at most n",
                    doc="steps; default the largest odd <= min(n, 5)"),
    ), 1.0, doc="sign(x1 + x1x2 + ... + x1..xk)"),
    "full_parity": Family("full_parity", FullParityTarget, "fixed", (), math.inf, doc="chi_[n]"),
    "planted": Family("planted", PlantedTarget, "real", (
        FamilyParam("parity_degree", "int", None, 1, lambda n: max(1, n - 1), "at most n - 1",
                    doc="degree m of the parity off the event; default ceil((n-1)/2)"),
        FamilyParam("resolution_bits", "int", 2, 0, lambda n: 16, "at most 16",
                    doc="extra event bits resolving p"),
    ), doc="x_1 on an event of probability p ~ n^-(c-1)/2, a parity elsewhere"),
}


class _FamilyClasses(Mapping):
    """``TARGETS``: name -> Target class of every registered family, read from ``FAMILIES`` (a view,
    not a second table)."""

    def __getitem__(self, name: str) -> type:
        return FAMILIES[name].cls

    def __iter__(self):
        return iter(FAMILIES)

    def __len__(self) -> int:
        return len(FAMILIES)


TARGETS: Mapping[str, type] = _FamilyClasses()
_BUILTIN = frozenset(FAMILIES)
_USER_MODULES: dict[str, str] = {}  # import path -> module name, for the families a user's module defines


def available_targets() -> list[str]:
    """Names of the registered target families, sorted (built-in, then any registered by import path)."""
    return sorted(FAMILIES)


class FamilyImportError(ValueError):
    """An import path ``module:attribute`` that does not give an ``inal_core.targets.Family``."""

    def __init__(self, path: str, why: str) -> None:
        self.path, self.why = path, why
        super().__init__(f"target {path!r}: {why}")


def register_family(family: Family, name: str | None = None) -> Family:
    """Add ``family`` to ``FAMILIES`` under ``name`` (default ``family.name``); registering the same
    object again is a no-op, another family under a taken name is a ``ValueError``."""
    key = family.name if name is None else name
    if not isinstance(family, Family) or not (isinstance(family.cls, type) and issubclass(family.cls, Target)):
        raise ValueError(f"target family {key!r} must be an inal_core.targets.Family of a Target subclass, "
                         f"got {family!r}")
    if FAMILIES.get(key, family) is not family:
        raise ValueError(f"another target family is already registered as {key!r}")
    FAMILIES[key] = family
    return family


def load_family(path: str) -> Family:
    """The ``Family`` at the import path ``"module:attribute"`` (a user's own module), imported and
    registered under ``path``; :class:`FamilyImportError` (one line) when it does not import or is
    not a ``Family``."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise FamilyImportError(path, "an import path must read 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # ImportError, or the module's own error while importing
        raise FamilyImportError(path, f"cannot import module {module_name!r} ({type(err).__name__}: {err}); "
                                      "is its directory on PYTHONPATH?") from None
    obj: Any = module
    for part in attribute.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, Family):
        what = "missing" if obj is None else type(obj).__name__
        raise FamilyImportError(path, f"{attribute!r} in module {module_name!r} is {what}, "
                                      "not an inal_core.targets.Family")
    register_family(obj, path)
    _USER_MODULES[path] = module_name
    return obj


def get_family(name: str) -> Family:
    """The registered family ``name``, or, for an import path ``"module:attribute"``, the family it
    names (imported and registered on first use: this is how workers find a user's family)."""
    family = FAMILIES.get(name)
    if family is not None:
        return family
    if isinstance(name, str) and ":" in name:
        return load_family(name)
    raise ValueError(f"unknown target {name!r}; valid targets: {available_targets()} "
                     "or an import path 'module:attribute' of an inal_core.targets.Family")


def user_family_modules() -> list[str]:
    """Names of the modules that define the families registered by import path (to ship to workers)."""
    return sorted(set(_USER_MODULES.values()))


def unregister_family(name: str) -> None:
    """Remove a family registered by :func:`register_family` or :func:`load_family` (built-ins stay)."""
    if name in _BUILTIN:
        raise ValueError(f"{name!r} is a built-in target family")
    FAMILIES.pop(name, None)
    _USER_MODULES.pop(name, None)


def make_target(name: str, n: int, c: float | None = None, **params: Any) -> Target:
    """The target of family ``name`` on ``n`` bits with exponent knob ``c`` and family ``params``.

    parity: ``k = c`` (an integer >= 1; or pass ``k``); planted: real ``c >= 1``; majority,
    staircase and full_parity have a fixed exponent and ignore ``c``. The inputs are checked by
    the family's validator (``FAMILIES[name].validate``).

    >>> make_target("parity", 5, c=2).relevant_bits
    (0, 1)
    """
    family = get_family(name)
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
        raise ValueError(f"{name}: n must be a positive integer, got {n!r}")
    nominal_c, checked = family.validate(int(n), c, params)
    return family.build(int(n), nominal_c, checked)


#: The extension rule's spellings: each alias and its canonical form (``"n^2"`` must be quoted on a
#: command line, hence ``n2``). The canonical form is what a result records.
EXTENSION_ALIASES = {"n^2": "n^2", "n**2": "n^2", "n2": "n^2", "2n": "2n", "2*n": "2n"}


def extension_allowed(n: int) -> str:
    """What an extension spec may be, in words (for error messages)."""
    return f'"n^2" (alias n2), "2n" or an integer >= n (n={n})'


def parse_extension(spec: Any, n: int) -> tuple[str, int]:
    """``(canonical spec, N)`` of the extension rule: ``"n^2"`` (default; aliases in
    ``EXTENSION_ALIASES``) -> ``n^2``, ``"2n"`` -> ``2n``, or an integer ``N >= n`` (an int, an
    integral float or a string of digits) -> ``str(N)``. The one parser of the rule: the config
    validation and the analysis call it. ``ValueError`` otherwise."""
    value = spec
    if isinstance(value, str):
        key = value.strip().replace(" ", "").lower()
        if key in EXTENSION_ALIASES:
            canonical = EXTENSION_ALIASES[key]
            return canonical, (n * n if canonical == "n^2" else 2 * n)
        value = int(key) if key.isdigit() else None
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
            and float(value).is_integer():
        value = int(value)
    else:
        value = None
    if value is None or value < n:
        raise ValueError(f"extension N must be {extension_allowed(n)}, got {spec!r}")
    return str(value), value


def resolve_extension(spec: str | int, n: int) -> int:
    """The number of input bits ``N`` of the extension (see :func:`parse_extension`)."""
    return parse_extension(spec, n)[1]


def extend(target: Target, N: int) -> Target:
    """``fbar`` on ``N >= n`` bits: ``fbar(x_1..x_N) = f(x_1..x_n)``, same relevant bits and nominal c."""
    if isinstance(N, bool) or not isinstance(N, numbers.Integral) or N < target.n:
        raise ValueError(f"extend: N must be an integer >= n={target.n}, got {N!r}")
    N = int(N)
    if N == target.n:
        return target
    return ExtendedTarget(target, N)
