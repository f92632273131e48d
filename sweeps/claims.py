"""Claims: the cells a driver is computing, so that drivers of one study share its work.

Each driver of a study (two ``inal-sweep`` commands on overlapping grids, a resubmitted job while
the first still runs) puts, before it submits a training pack, a claim file

    <results_dir>/<study>/_claims/<owner>-<pack digest>.claim

whose first line is ``running <host> <pid> <unix time>`` and whose second line lists the pack's run
ids; when the pack's results are stored it rewrites the first line to ``done ...`` (every run ok
or diverged) or deletes the claim (a run failed: another driver may retry it). Before submitting
a pack, a driver leaves out the cells of other drivers' live ``running`` claims (it comes back to
them at the end: done by then, or given up) and counts the cells of ``done`` claims as complete.
A ``running`` claim is live while its process runs (same host: the pid exists) or, from another
host, while it is younger than ``CLAIM_S`` (its owner rewrites it every ``CLAIM_S / 3``).

This is first-writer-wins without a lock: a put is atomic on every filesystem, so a claim is seen
whole or not at all, and two drivers that claim the same cells within the same moment (each
before the other's claim is listed) both compute them; the duplicated work is bounded by the
packs in flight at that moment, and the store keeps each cell once (``ResultsStore.compact``).
Claims of finished drivers are removed by the end-of-study compaction.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import socket
import time
import uuid
from typing import Dict, Iterable, List, Set, Tuple

import pyarrow.fs as pafs

__all__ = ["StudyClaims", "CLAIM_S"]

CLAIM_S = 900.0  # a running claim from another host not rewritten for this long was left by a dead driver


def _alive_here(host: str, pid: str) -> "bool | None":
    """Whether process ``pid`` of ``host`` runs (None when ``host`` is another machine)."""
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        pass
    return True


class StudyClaims:
    """The claims of one study (``store``: a ``sweeps.store.ResultsStore``), seen by one driver."""

    def __init__(self, store) -> None:
        self.fs: pafs.FileSystem = store.fs
        self.dir = posixpath.join(store.root, "_claims")
        self.token = uuid.uuid4().hex[:12]  # this driver's claims start with it
        self._mine: Dict[str, Tuple[List[str], float]] = {}  # path -> (run ids, time written)
        self._seen: Dict[str, Tuple[int, float, str, List[str]]] = {}  # path -> (size, mtime, state, ids)
        self._made = False

    # ------------------------------------------------------------------ this driver's claims

    def _put(self, path: str, state: str, ids: Iterable[str]) -> None:
        if not self._made:
            self.fs.create_dir(self.dir, recursive=True)
            self._made = True
        text = f"{state} {socket.gethostname()} {os.getpid()} {time.time():.3f}\n{','.join(ids)}\n"
        with self.fs.open_output_stream(path) as out:  # one put: seen whole or not at all
            out.write(text.encode())

    def claim(self, ids: List[str]) -> str:
        """Claim the cells ``ids`` (a pack about to be submitted); the claim's path."""
        digest = hashlib.blake2b(",".join(sorted(ids)).encode(), digest_size=8).hexdigest()
        path = posixpath.join(self.dir, f"{self.token}-{digest}.claim")
        self._put(path, "running", ids)
        self._mine[path] = (list(ids), time.time())
        return path

    def finish(self, path: str, ok: bool) -> None:
        """The pack of claim ``path`` is stored: ``done`` when every run is ok or diverged, else released."""
        ids, _ = self._mine.pop(path, ([], 0.0))
        try:
            if ok:
                self._put(path, "done", ids)
            else:
                self.fs.delete_file(path)
        except OSError:  # a claim is a courtesy to other drivers: the results are stored already
            pass

    def renew(self) -> None:
        """Rewrite this driver's running claims older than ``CLAIM_S / 3`` (they stay live elsewhere)."""
        now = time.time()
        for path, (ids, written) in list(self._mine.items()):
            if now - written > CLAIM_S / 3:
                self._put(path, "running", ids)
                self._mine[path] = (ids, now)

    def release(self) -> None:
        """Delete this driver's running claims (the driver stops; its cells are free again)."""
        for path in list(self._mine):
            try:
                self.fs.delete_file(path)
            except OSError:
                pass
        self._mine.clear()

    # ------------------------------------------------------------------ other drivers' claims

    def others(self) -> Tuple[Set[str], Set[str]]:
        """``(cells claimed by live other drivers, cells other drivers stored)``: one listing, and
        a read of each claim file new or changed since the last call."""
        busy: Set[str] = set()
        done: Set[str] = set()
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.dir, recursive=False, allow_not_found=True))
        except OSError:
            return busy, done
        now = time.time()
        for info in infos:
            if info.type != pafs.FileType.File or not info.base_name.endswith(".claim") \
                    or info.base_name.startswith(self.token):
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else now
            seen = self._seen.get(info.path)
            if seen is None or seen[:2] != (info.size, mtime):
                try:
                    with self.fs.open_input_stream(info.path) as handle:
                        head, _, rest = handle.read().decode(errors="replace").partition("\n")
                except (FileNotFoundError, OSError):
                    continue
                words = head.split()
                ids = [i for i in rest.strip().split(",") if i]
                if len(words) < 3 or not ids:
                    continue
                seen = self._seen[info.path] = (info.size, mtime, " ".join(words[:3]), ids)
            state, host, pid = seen[2].split()
            if state == "done":
                done.update(seen[3])
            elif state == "running":
                alive = _alive_here(host, pid)
                if alive or (alive is None and now - mtime < CLAIM_S):
                    busy.update(seen[3])
        return busy, done

    def remove_finished(self, complete: Set[str]) -> int:
        """Delete running claims of dead drivers and, when no other driver is running, ``done``
        claims whose cells are all in ``complete`` (a running driver may still be about to take
        their cells); how many were deleted. Called at the end of a study, under the lease."""
        busy, _ = self.others()
        removed = 0
        for path, (_, mtime, head, ids) in list(self._seen.items()):
            state, host, pid = head.split()
            dead = state == "running" and (_alive_here(host, pid) is False or
                                           (_alive_here(host, pid) is None and time.time() - mtime > CLAIM_S))
            if (state == "done" and not busy and set(ids) <= complete) or dead:
                try:
                    self.fs.delete_file(path)
                    removed += 1
                except OSError:
                    pass
                self._seen.pop(path, None)
        return removed
