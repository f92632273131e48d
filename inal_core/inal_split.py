"""The split engine: first-layer alignment of depth-1 networks in O(2^{n/2}) per neuron.

See the module docstring of ``inal.py`` for the method and its cost. With the bits split into a low
part L (``M = 2^|L|`` assignments) and a high part H, ``w.x + b = p_a + c_h``; sorting ``p`` once per
neuron turns ``sum_a g(a) relu(p_a + c_h)`` into two prefix sums read at a binary-search position.
Other piecewise-linear activations have their own form (``inal_core.activations``): ``step``
(sign) reads the prefix sums of g at the two ends of the ties, ``linear`` (identity) the totals.
Everything here is float64.
"""

from __future__ import annotations

import torch

from .activations import ACTIVATIONS
from .cube import enumerate_cube
from .targets import Target

__all__ = ["SplitFirstLayer", "truth_table_int8", "exact_patterns", "choose_split", "split_cost", "split_unit_bytes"]

BROADCAST_MAX_M = 16  # up to this many low assignments, broadcast relu(p_a + c_h) instead of sorting
MAX_PATTERNS = 64  # more distinct patterns than this: the plain engine is cheaper


def split_unit_bytes(n: int, low: int, patterns: int) -> int:
    """Bytes per first-layer neuron of the exact split engine: sorted tables and one pass over the high part."""
    return (1 << low) * patterns * 48 + (1 << low) * 24 + (1 << (n - low)) * 64


class SplitFirstLayer:
    """The split engine for first-layer neurons (module docstring): low-bit part sorted once per neuron.

    ``W``: ``(Rb, n, G)`` first-layer weights of ``G`` neurons in ``Rb`` batches, ``b1``: ``(Rb, G)`` or None.
    ``activation``: a name in ``ACTIVATIONS``; with more than ``BROADCAST_MAX_M`` low assignments its
    entry must have a split form (``ValueError`` otherwise: the caller uses the plain engine).
    """

    def __init__(self, W: torch.Tensor, b1: torch.Tensor | None, low_idx: list[int], high_idx: list[int],
                 patterns: torch.Tensor, activation: str = "relu"):
        dev = W.device
        act = ACTIVATIONS[activation]
        self.phi_, self.form = act.forward_, act.split
        W = W.to(torch.float64)
        self.R, _, self.w = W.shape
        self.b1 = None if b1 is None else b1.to(torch.float64)  # (Rb, G)
        self.W_high = W[:, high_idx, :]  # (Rb, n_high, G)
        L = len(low_idx)
        self.M = 1 << L
        x_low = enumerate_cube(L, dtype=torch.float64, device=dev) if L else torch.ones(1, 0, dtype=torch.float64, device=dev)
        p = torch.matmul(x_low, W[:, low_idx, :]).transpose(1, 2)  # (Rb, G, M)
        self.patterns = patterns.to(torch.float64)  # (D, M)
        self.pattern_mean = self.patterns.mean(dim=1)  # (D,) = fbar per pattern
        self.broadcast = self.M <= BROADCAST_MAX_M
        if self.broadcast:
            self.p = p
            return
        if self.form is None:
            raise ValueError(f"the split engine has no form for activation={activation!r} "
                             f"with M={self.M} > {BROADCAST_MAX_M}")
        D = self.patterns.shape[0]
        # sort q = -p ascending: {a : p_a > -c} = {a : q_a < c} is a prefix of the sorted order
        q_sorted, perm = torch.sort(-p, dim=-1)  # (Rb, G, M)
        g = self.patterns.t().index_select(0, perm.reshape(-1)).reshape(*perm.shape, D)  # (Rb, G, M, D), sorted order
        # exclusive prefix sums E[k] = sum_{i < k} over the sorted order of g and of g*(-p), (Rb, G, M+1, D, 2)
        table = torch.zeros(self.R, self.w, self.M + 1, D, 2, dtype=torch.float64, device=dev)
        torch.cumsum(torch.stack((g, g * q_sorted.unsqueeze(-1)), dim=-1), dim=2, out=table[:, :, 1:])
        self.q_sorted = q_sorted.contiguous()
        self.D = D
        self.table = table.reshape(self.R, self.w, (self.M + 1) * D, 2)

    def hidden(self, x_high: torch.Tensor, pattern_id: torch.Tensor) -> torch.Tensor:
        """``y[r, v, h] = M^-1 sum_a g_h(a) phi(p_a + c_h)``: ``(Rc, w, B)`` float64.

        ``x_high``: ``(B, n_high)`` shared or ``(Rc, B, n_high)``; ``pattern_id``: ``(B,)`` or ``(Rc, B)``.
        """
        c = torch.matmul(x_high.to(torch.float64), self.W_high)  # (Rc, B, w)
        if self.b1 is not None:
            c = c + self.b1.unsqueeze(1)
        c = c.transpose(1, 2)  # (Rc, w, B)
        pid = pattern_id if pattern_id.dim() == 2 else pattern_id.unsqueeze(0)  # (1|Rc, B)
        if self.broadcast:
            # loop over the few low assignments: 3 elementwise passes over (Rb, G, B) each
            y = torch.zeros_like(c)
            one_pattern = self.patterns.shape[0] == 1  # a junta inside L
            g = self.patterns[0].tolist() if one_pattern else self.patterns[pid].unsqueeze(1)  # (1|Rb, 1, B, M)
            for a in range(self.M):
                z = self.phi_(c + self.p[..., a : a + 1])  # (Rb, G, B)
                if one_pattern:
                    y.add_(z, alpha=g[a])
                else:
                    y.addcmul_(z, g[..., a])
            return y / self.M
        c_search = c.contiguous()  # for the search only: y keeps c's layout (reductions' order)
        if self.form == "linear":  # every a is "on": the totals G(M), QG(M)
            count = torch.full(c.shape, self.M, dtype=torch.int64, device=c.device)
        else:
            count = torch.searchsorted(self.q_sorted, c_search)  # (Rb, G, B): #{a : p_a > -c}
        idx = count * self.D + pid.unsqueeze(1)  # (Rb, G, B): flat index into (M+1, D)
        sums = torch.gather(self.table, 2, idx.unsqueeze(-1).expand(-1, -1, -1, 2))  # (Rb, G, B, 2)
        if self.form == "step":
            # sign: +g on {p > -c} (prefix k), -g on {p < -c} (after k' = #{p >= -c}), 0 on ties
            upto = torch.searchsorted(self.q_sorted, c_search, right=True) * self.D + pid.unsqueeze(1)
            g_upto = torch.gather(self.table[..., 0], 2, upto)  # (Rb, G, B)
            total = self.patterns.sum(dim=1)[pid].unsqueeze(1)  # (1|Rb, 1, B): G(M)
            return (sums[..., 0] + g_upto - total) / self.M
        return (c * sums[..., 0] - sums[..., 1]) / self.M

    def output(self, a: torch.Tensor, b2: torch.Tensor | None, y_hidden: torch.Tensor, pattern_id: torch.Tensor) -> torch.Tensor:
        """Output neuron of a depth-1 network: ``sum_v a_v y_v + b2 fbar(h)``, ``(Rb, B)``; ``a``: ``(Rb, G)``."""
        y = torch.einsum("rw,rwb->rb", a, y_hidden)
        if b2 is not None:
            y = y + b2.unsqueeze(1) * self.pattern_mean[pattern_id]
        return y


def truth_table_int8(target: Target, n: int, device) -> torch.Tensor:
    """``f`` on the whole cube in enumeration order as int8 ±1, ``(2^n,)``; built half by half in one pass."""
    low = (n + 1) // 2
    M, H = 1 << low, 1 << (n - low)
    table = torch.empty(H, M, dtype=torch.int8, device=device)
    step = max(1, (1 << 16) // M)
    x_low = enumerate_cube(low, device=device)  # (M, low)
    for start in range(0, H, step):
        stop = min(start + step, H)
        x_high = enumerate_cube(n - low, start, stop, device=device) if n > low else x_low.new_ones(1, 0)
        # row h*M + a of the cube is (a, h): (Hc, M, n)
        x = torch.cat((x_low.expand(stop - start, M, low), x_high.unsqueeze(1).expand(stop - start, M, n - low)), -1)
        table[start:stop] = target(x).to(torch.int8)
    return table.reshape(-1)


def exact_patterns(table: torch.Tensor, n: int, low: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Distinct rows ``g(a) = f(a, h)`` over the low bits (``(D, 2^low)``) and each high assignment's row id.

    ``None`` if there are more than ``MAX_PATTERNS`` (then the plain engine is cheaper).
    """
    M, H = 1 << low, 1 << (n - low)
    rows = table.reshape(H, M)
    step = max(1, (1 << 16) // M)
    # fingerprint each row by a random projection, then verify exactly
    proj = torch.randn(M, dtype=torch.float64, generator=torch.Generator().manual_seed(12345)).to(table.device)
    fp = torch.cat([rows[s : s + step].to(torch.float64) @ proj for s in range(0, H, step)])
    uniq, inverse = torch.unique(fp, return_inverse=True)
    if uniq.numel() > MAX_PATTERNS:
        return None
    first = torch.full((uniq.numel(),), H, dtype=torch.int64, device=table.device).scatter_reduce(
        0, inverse, torch.arange(H, device=table.device), reduce="amin"
    )
    patterns = rows[first]  # (D, M)
    for s in range(0, H, step):
        if not torch.equal(rows[s : s + step], patterns[inverse[s : s + step]]):
            return None  # fingerprint collision (never expected): use the plain engine
    return patterns, inverse


def split_cost(n: int, low: int, patterns: int) -> float:
    """Relative cost per neuron of the split engine: build ``M (log M + 6 D)``, query ``H (log M + 8)``."""
    M, H = 2.0**low, 2.0**(n - low)
    return M * (low + 6 * patterns) + H * (low + 8)


def choose_split(table: torch.Tensor, n: int):
    """The low-bit count (near n/2) with the cheapest split engine for this truth table, and its patterns."""
    best = None
    for low in range(max(1, n // 2 - 2), min(n, (n + 1) // 2 + 1) + 1):
        found = exact_patterns(table, n, low)
        if found is not None and (best is None or split_cost(n, low, found[0].shape[0]) < best[0]):
            best = (split_cost(n, low, found[0].shape[0]), low, found)
    return None if best is None else best[1:]
