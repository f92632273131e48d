"""A dependency-free progress bar for streamed Ray results.

On a terminal it redraws one line in place::

    [inal_ray] |##########..........|  64/128  50%  12.3 cells/s  ETA 0:00:05  (1 failed)

When stderr is not a TTY (CI logs, redirected output) it prints plain lines instead, at most one
every ``line_interval_s`` seconds plus the final one, so logs stay short.

Rate = done / elapsed; ETA = (total - done) / rate, or ``eta_fn()`` when given (the launcher passes
the plan's estimated task-seconds left divided by the rate at which the study has finished
estimated task-seconds so far: packs of unequal cost make cells/s a poor guide).

Why not tqdm: it is not a dependency of Hydra, Ray or the rest of the project, and what is needed
here is small: counts that arrive in chunks (a pack completes many cells at once) with a failure
count, and in non-TTY logs (CI, SLURM, Ray Jobs) a bounded number of whole lines rather than
carriage-return redraws. That is the 100 lines below.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Callable, Optional


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` for a duration in seconds (``--:--`` when unknown)."""
    if seconds != seconds or seconds == float("inf") or seconds < 0:
        return "--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{(s % 3600) // 60:02d}:{s % 60:02d}"


class ProgressBar:
    """Progress of ``total`` units of work (jobs, cells) finishing in any order.

    Parameters
    ----------
    total
        Number of units expected.
    label
        Prefix of every line.
    unit
        Name of a unit in the rate (``cells/s``).
    stream
        Where to draw (default ``sys.stderr``).
    enabled
        ``False`` makes every method a no-op.
    line_interval_s
        Minimum seconds between two plain lines when the stream is not a TTY.
    eta_fn
        Seconds left, computed elsewhere (``None``: from the rate of units).
    """

    width = 20

    def __init__(
        self,
        total: int,
        *,
        label: str = "inal_ray",
        unit: str = "jobs",
        stream: Optional[IO[str]] = None,
        enabled: bool = True,
        line_interval_s: float = 5.0,
        eta_fn: Optional[Callable[[], float]] = None,
    ) -> None:
        self.total = int(total)
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 0
        self.line_interval_s = line_interval_s
        self.eta_fn = eta_fn
        self.done = 0
        self.failed = 0
        self.start = time.perf_counter()
        self._last_line = -float("inf")
        self._closed = False
        try:
            self.is_tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.is_tty = False
        if self.enabled and not self.is_tty:
            self._write_line(force=True)

    def render(self) -> str:
        """The current status line (no line ending)."""
        elapsed = time.perf_counter() - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        if self.eta_fn is not None:  # the plan's cost model, refined by the tasks finished so far
            eta = self.eta_fn()
        else:
            eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        frac = self.done / self.total if self.total else 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        digits = len(str(self.total))
        text = (
            f"[{self.label}] |{bar}| {self.done:>{digits}}/{self.total} {100 * frac:3.0f}%"
            f"  {rate:.2f} {self.unit}/s"
        )
        text += f"  elapsed {format_duration(elapsed)}" if self.done >= self.total else f"  ETA {format_duration(eta)}"
        if self.failed:
            text += f"  ({self.failed} failed)"
        return text

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        """Count ``n`` more finished units, ``failed`` of which failed."""
        if not self.enabled or self._closed:
            return
        self.done = min(self.total, self.done + n)
        self.failed += failed
        if self.is_tty:
            self.stream.write("\r" + self.render())
            self.stream.flush()
        else:
            self._write_line(force=self.done >= self.total)

    def _write_line(self, force: bool) -> None:
        now = time.perf_counter()
        if force or now - self._last_line >= self.line_interval_s:
            self._last_line = now
            self.stream.write(self.render() + "\n")
            self.stream.flush()

    def close(self) -> None:
        """Finish the display (final state, newline on a TTY)."""
        if not self.enabled or self._closed:
            return
        self._closed = True
        if self.is_tty:
            self.stream.write("\r" + self.render() + "\n")
            self.stream.flush()
        elif self.done < self.total:
            self._write_line(force=True)

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt):
            # interrupted: end the bar's line, and leave the last word to the program
            if self.enabled and not self._closed and self.is_tty:
                self.stream.write("\n")
                self.stream.flush()
            self._closed = True
            return
        self.close()
