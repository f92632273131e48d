"""A results location: a local path, or a ``pyarrow.fs`` URI with its query, as one value.

``results_dir`` may be a local path (``results``, ``/shared/inal``, ``~/inal``) or a URI that
``pyarrow.fs.FileSystem.from_uri`` accepts, for example::

    file:///shared/inal
    s3://my-bucket/inal                                   (AWS; region found from the bucket)
    s3://my-bucket/inal?region=eu-west-1
    s3://bkt/inal?endpoint_override=127.0.0.1:9000&scheme=http   (an S3-compatible server)
    gs://my-bucket/inal

The query belongs to the location: ``endpoint_override`` (host[:port] of an S3-compatible
server: MinIO, Ceph, a loopback test server), ``scheme`` (``http`` or ``https``, the default),
``region`` and the other options of ``S3FileSystem``/``GcsFileSystem``. Dropping it would send
the same bucket name to another endpoint, so a :class:`Location` keeps the string as given and
derives every child location (a study, a dataset) by inserting path components before the query.
Credentials are never part of it: pyarrow's S3 and GCS filesystems take them from the standard
environment and provider chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, an instance profile; ``GOOGLE_APPLICATION_CREDENTIALS``, the metadata server).

This module imports pyarrow and the standard library only: the store (``sweeps.store``), the
launcher and the analysis (``analysis.load``, ``analysis.report``) all parse locations here.
"""

from __future__ import annotations

import functools
import os
import posixpath
from typing import Tuple
from urllib.parse import urlsplit, urlunsplit

import pyarrow.fs as pafs

__all__ = ["Location", "is_uri"]


def is_uri(value: str) -> bool:
    """Whether ``value`` is a URI (``scheme://...``) rather than a local path."""
    return "://" in str(value)


@functools.lru_cache(maxsize=64)
def _from_uri(uri: str) -> Tuple[pafs.FileSystem, str]:
    # one filesystem per distinct URI in a process (an S3 client is not free to build)
    return pafs.FileSystem.from_uri(uri)


class Location:
    """One results location: ``text`` (the value as given, the query kept; local paths made
    absolute), ``fs`` and ``path`` (the pyarrow filesystem and the path inside it).

    ``Location("s3://bkt/studies?scheme=http").child("s3s").text`` is
    ``"s3://bkt/studies/s3s?scheme=http"``; ``str(location)`` is ``text``, which is what is
    printed in hints and passed to workers, ``inal-report`` and ``python -m sweeps.store``.
    """

    __slots__ = ("text", "fs", "path", "_parts")

    def __init__(self, value: "str | Location") -> None:
        if isinstance(value, Location):
            self.text, self.fs, self.path, self._parts = value.text, value.fs, value.path, value._parts
            return
        value = str(value)
        if not value.strip():
            raise ValueError("a results location must be a non-empty local path or URI")
        if is_uri(value):
            parts = urlsplit(value)
            fs, path = _from_uri(value)
            self.text, self.fs, self.path, self._parts = value, fs, path.rstrip("/") or path, parts
        else:
            path = os.path.abspath(os.path.expanduser(value))
            self.text, self.fs, self.path, self._parts = path, pafs.LocalFileSystem(), path, None

    # ------------------------------------------------------------------ what it is

    @property
    def is_local(self) -> bool:
        """Whether the files live on this machine's filesystem (a path or a ``file://`` URI)."""
        return self.fs.type_name == "local"

    @property
    def name(self) -> str:
        """The last path component (a study's name for a study location), without the query."""
        return posixpath.basename(self.path.rstrip("/"))

    @property
    def local_path(self) -> "str | None":
        """The path on this machine for a local location, else None."""
        return self.path if self.is_local else None

    # ------------------------------------------------------------------ other locations

    def child(self, *names: str) -> "Location":
        """The location ``names`` below this one, the URI's query kept."""
        names = tuple(n.strip("/") for n in names if n.strip("/"))
        if not names:
            return self
        if self._parts is None:
            return Location(os.path.join(self.text, *names))
        p = self._parts
        path = posixpath.join(p.path or "/", *names)
        return Location(urlunsplit((p.scheme, p.netloc, path, p.query, p.fragment)))

    def parent(self) -> "Location":
        """The location one level up (a study's results directory), the URI's query kept."""
        if self._parts is None:
            return Location(os.path.dirname(self.text.rstrip("/")) or "/")
        p = self._parts
        path = posixpath.dirname(p.path.rstrip("/"))
        return Location(urlunsplit((p.scheme, p.netloc, path, p.query, p.fragment)))

    def split(self) -> Tuple["Location", str]:
        """``(parent, name)``: a study location as ``(results_dir, study)``."""
        return self.parent(), self.name

    # ------------------------------------------------------------------ dunder

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Location({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)
