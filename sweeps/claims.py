"""Claims: the cells a driver is computing, so that drivers of one study share its work.

Each driver of a study (two ``inal-sweep`` commands on overlapping grids, a resubmitted job while
the first still runs) puts, before it submits a training pack, a claim file

    <results_dir>/<study>/_claims/<host>~<pid>~<uuid>-<pack digest>.claim

holding the pack's run ids (an INAL task is claimed the same way, by its INAL id); when the pack's results are stored it puts the same ids as
``_claims/done/<same name>.done`` and deletes the ``.claim`` (every run ok or diverged), or only deletes it (a run failed: another
driver may retry it). Before submitting a pack, a driver leaves out the cells of other drivers'
live claims (it comes back to them at the end: done by then, or free again) and counts the cells
of ``.done`` files as complete (checked in the store before its study ends: a stale ``.done``
costs a recomputation, never a cell). A claim is live while its process runs (same host: the pid
exists) or, from another host, while younger than ``CLAIM_S`` (its owner rewrites it every
``CLAIM_S / 3``). Owner and state are in the file name, so liveness and clean-up need a listing
only; a claim's ids are read once per driver. A driver lists ``_claims/`` (the packs in flight)
before each pack and ``_claims/done/`` (which grows with the study) when a claim it saw running
has ended, and otherwise whenever the time since its last listing is ``DONE_LIST_SHARE`` times what
that listing took (the listing costs at most about 1/50 of the driver's time however large
``done/`` grows), and at least every ``DONE_LIST_S``: a pack another driver claimed and stored
between two of this driver's looks is still seen before this driver trains its cells again.

This is first-writer-wins without a lock: a put is atomic on every filesystem, so a claim is seen
whole or not at all, and two drivers that claim the same cells within the same moment (each
before the other's claim is listed) both compute them; the duplicated work is bounded by the
packs in flight at that moment, and the store keeps each cell once (``ResultsStore.compact``).
The end-of-study compaction removes ``.done`` files older than ``CLAIM_S`` (a driver that planned
before they were written and reaches their cells later still sees them meanwhile) and the claims
of dead drivers.
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
DONE_LIST_S = 5.0  # ``done/`` (one file per stored pack) is listed at least this often by one driver
DONE_LIST_SHARE = 50.0  # ... and more often while a listing costs under 1/50 of the time between them


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
        host = socket.gethostname().replace("/", "_").replace("~", "_")
        self.token = f"{host}~{os.getpid()}~{uuid.uuid4().hex[:8]}"  # this driver's claims start with it
        self._mine: Dict[str, Tuple[List[str], float]] = {}  # running claim path -> (run ids, time written)
        self._ids: Dict[str, List[str]] = {}  # other drivers' claim path -> its run ids
        self._done: Set[str] = set()  # cells other drivers stored, as of the last listing of done/
        self._done_listed = -DONE_LIST_S
        self._done_list_s = 0.0  # what the last listing of done/ took
        self._busy_paths: Set[str] = set()  # other drivers' running claims at the last look
        self._made = False

    # ------------------------------------------------------------------ this driver's claims

    def _put(self, path: str, ids: Iterable[str]) -> None:
        if not self._made:
            self.fs.create_dir(posixpath.join(self.dir, "done"), recursive=True)
            self._made = True
        with self.fs.open_output_stream(path) as out:  # one put: seen whole or not at all
            out.write((",".join(ids) + "\n").encode())

    def claim(self, ids: List[str]) -> str:
        """Claim the cells ``ids`` (a pack about to be submitted); the claim's path."""
        digest = hashlib.blake2b(",".join(sorted(ids)).encode(), digest_size=8).hexdigest()
        path = posixpath.join(self.dir, f"{self.token}-{digest}.claim")
        self._put(path, ids)
        self._mine[path] = (list(ids), time.time())
        return path

    def finish(self, path: str, ok: bool) -> None:
        """The pack of claim ``path`` is stored: ``.done`` when every run is ok or diverged, else released."""
        ids, _ = self._mine.pop(path, ([], 0.0))
        try:
            if ok:
                done = posixpath.join(self.dir, "done", posixpath.basename(path)[: -len(".claim")] + ".done")
                self._put(done, ids)  # before the delete: no moment unclaimed
            self.fs.delete_file(path)
        except OSError:  # a claim is a courtesy to other drivers: the results are stored already
            pass

    def renew(self) -> None:
        """Rewrite this driver's claims older than ``CLAIM_S / 3`` (they stay live on other hosts)."""
        now = time.time()
        for path, (ids, written) in list(self._mine.items()):
            if now - written > CLAIM_S / 3:
                self._put(path, ids)
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

    def _listing(self, where: str = "") -> List[Tuple[str, str, str, str, float]]:
        """``(path, state, host, pid, mtime)`` of the claim files of ``_claims/<where>``."""
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(posixpath.join(self.dir, where), recursive=False,
                                                            allow_not_found=True))
        except OSError:
            return []
        out = []
        for info in infos:
            stem, _, state = info.base_name.rpartition(".")
            owner = stem.split("~")
            if info.type != pafs.FileType.File or state not in ("claim", "done") or len(owner) != 3:
                continue
            mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
            out.append((info.path, state, owner[0], owner[1], mtime))
        return out

    def _live(self, host: str, pid: str, mtime: float) -> bool:
        alive = _alive_here(host, pid)
        return bool(alive) or (alive is None and time.time() - mtime < CLAIM_S)

    def _read(self, path: str) -> List[str]:
        ids = self._ids.get(path)
        if ids is None:
            try:
                with self.fs.open_input_stream(path) as handle:
                    ids = [i for i in handle.read().decode(errors="replace").strip().split(",") if i]
            except OSError:  # deleted meanwhile (a claim that became .done)
                return []
            self._ids[path] = ids
        return ids

    def others(self) -> Tuple[Set[str], Set[str]]:
        """``(cells claimed by live other drivers, cells other drivers stored)``: a listing of the
        running claims (and of ``done/``: see the module's doc), one read of each file not seen before."""
        busy: Set[str] = set()
        mine = self.token + "-"
        paths = set()
        for path, state, host, pid, mtime in self._listing():
            if state == "claim" and not posixpath.basename(path).startswith(mine) and self._live(host, pid, mtime):
                busy.update(self._read(path))
                paths.add(path)
        ended = bool(self._busy_paths - paths)  # a claim gone since the last look: its .done is new
        self._busy_paths = paths
        since = time.monotonic() - self._done_listed
        if ended or since >= min(DONE_LIST_S, DONE_LIST_SHARE * self._done_list_s):
            start = time.monotonic()
            for path, state, _, _, _ in self._listing("done"):
                if state == "done" and not posixpath.basename(path).startswith(mine):
                    self._done.update(self._read(path))
            self._done_listed = time.monotonic()
            self._done_list_s = self._done_listed - start
        return busy, self._done

    def remove_stale(self) -> int:
        """Delete ``.done`` files older than ``CLAIM_S`` and the claims of dead drivers (a listing,
        no reads); how many were deleted. Called at the end of a study, under the lease."""
        removed = 0
        for path, state, host, pid, mtime in self._listing() + self._listing("done"):
            old = time.time() - mtime > CLAIM_S
            if (state == "done" and old) or (state == "claim" and not self._live(host, pid, mtime)):
                try:
                    self.fs.delete_file(path)
                    removed += 1
                except OSError:
                    pass
        return removed
