"""What a study's run came to, and the exit status ``inal-sweep`` returns for it.

Hydra's ``@hydra.main`` drops the task's and the launcher's return values, so the pieces that
know the outcome record it here and :func:`sweeps.run.main` turns it into the exit status:

====  ==========================================================================================
0     every cell ok or diverged (or already complete)
1     at least one cell failed (its ``failed`` row holds the error; a rerun retries it), or the
      results location is full or cannot be read (one line; the same command resumes)
2     a configuration error, before any work: one line naming the key, the value, what is allowed
130   interrupted by SIGINT (Ctrl-C), 143 by SIGTERM: one line ``k of N cells stored; run the same
      command to resume``, no traceback
====  ==========================================================================================

Recorded by: the ``inal_ray`` launcher's fast path (:meth:`StudyTally.add_plan` once per batch
and :meth:`StudyTally.add_finished` per result), ``sweeps.run``'s task under Hydra's basic
launcher (:meth:`StudyTally.add_cell`), the ``inal`` sweeper (configuration errors) and the
signal handler installed by :func:`install_signal_handlers`.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["JobOutcome", "storage_error_line", "EXIT_OK", "EXIT_FAILED", "EXIT_CONFIG", "StudyTally", "TALLY",
           "install_signal_handlers", "signal_exit_code"]


@dataclass(frozen=True)
class JobOutcome:
    """What became of one job: ``status`` is ``ok``, ``diverged`` or ``failed`` (``error`` then holds
    the text). Returned by ``sweeps.execute.run_training_pack`` in a worker and read by the launcher's
    driver, which therefore never imports the engines (nor torch)."""

    run_id: str
    status: str
    wall_s: float
    error: str = ""


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2


def signal_exit_code(signum: int) -> int:
    """The shell's convention: 128 + the signal number (130 SIGINT, 143 SIGTERM)."""
    return 128 + int(signum)


@dataclass
class StudyTally:
    """Counts of the cells of the study being run in this process (one ``inal-sweep`` command).

    ``cells`` are the distinct cells planned; ``complete_before`` those found complete in the
    store; ``finished`` the cells whose tasks all came back this time, ``failed`` of which failed.
    """

    cells: int = 0
    complete_before: int = 0
    finished: int = 0
    failed: int = 0
    planned: bool = False
    config_error: str = ""
    signal: int = 0
    cli: bool = False  # set by sweeps.run.main: expected errors become one line and an exit status

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]

    def add_plan(self, cells: int, complete: int) -> None:
        """A batch planned: ``cells`` distinct cells, ``complete`` of them already stored."""
        self.planned = True
        self.cells += int(cells)
        self.complete_before += int(complete)

    def add_finished(self, finished: int, failed: int) -> None:
        self.finished += int(finished)
        self.failed += int(failed)

    def add_cell(self, status: str) -> None:
        """One cell run in-process (Hydra's basic launcher): ``ok``/``diverged``/``failed``/``skipped``."""
        self.add_plan(1, int(status == "skipped"))
        if status != "skipped":
            self.add_finished(1, int(status == "failed"))

    @property
    def stored(self) -> int:
        """Cells complete in the store now (failed cells are not: a rerun retries them)."""
        return self.complete_before + self.finished - self.failed

    def exit_code(self) -> int:
        if self.signal:
            return signal_exit_code(self.signal)
        if self.config_error:
            return EXIT_CONFIG
        return EXIT_FAILED if self.failed else EXIT_OK

    def interrupted_line(self) -> str:
        """The one line printed on SIGINT/SIGTERM."""
        if not self.planned:
            return "interrupted before any cell was scheduled; run the same command to resume"
        return f"{self.stored} of {self.cells} cells stored; run the same command to resume"


#: The tally of this process's study (``inal-sweep`` runs one study per process).
TALLY = StudyTally()


#: errno values that mean "the results location cannot take more" (disk full, quota, read-only).
STORAGE_ERRNOS = {28: "no space left on the device", 122: "disk quota exceeded", 30: "read-only file system"}


def storage_error_line(exc: BaseException) -> str | None:
    """One line for a results write that failed for lack of room or rights, else ``None``."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS:
            where = f" ({exc.filename})" if exc.filename else ""
            return (f"cannot write results: {STORAGE_ERRNOS[exc.errno]}{where}; {TALLY.stored} of "
                    f"{TALLY.cells} cells stored; make room and run the same command to resume")
        text = str(exc)
        for errno_, what in STORAGE_ERRNOS.items():
            # pyarrow raises OSError without errno, naming it in the text: "[errno 28] No space left"
            if isinstance(exc, OSError) and (f"errno {errno_}]" in text.lower() or what in text.lower()):
                return (f"cannot write results: {what}; {TALLY.stored} of {TALLY.cells} cells stored; "
                        "make room and run the same command to resume")
        exc, seen = exc.__cause__ or exc.__context__, seen + 1  # type: ignore[assignment]
    return None


def _interrupt(signum: int, frame: Optional[Any]) -> None:
    TALLY.signal = signum
    raise KeyboardInterrupt(signal.Signals(signum).name)


def install_signal_handlers() -> dict:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` and remember the signal (main thread only).

    SIGTERM's default would kill the process without unwinding (and once Ray is initialized its
    handler dumps a stack and aborts, exit 134); raising lets progress bars close and Ray shut down.
    Returns the previous handlers, for :func:`restore_signal_handlers`.
    """
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, _interrupt)
    return previous


def restore_signal_handlers(previous: dict) -> None:
    """Put back the handlers :func:`install_signal_handlers` replaced (in-process callers)."""
    for signum, handler in previous.items():
        signal.signal(signum, handler)
