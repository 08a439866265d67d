"""Granted host paths: copied into the sandbox at start, written back after each call.

The Deno process gets no access to granted paths at all: the host reads them and sends
their contents to the runner, and the runner sends the files under a writable grant back
for the host to write. Grants are resolved with ``realpath`` when the interpreter is
built; inside a granted directory

* a symbolic link is followed only when it resolves to a regular file inside the same
  grant; links that leave the grant (or point at directories) are skipped;
* a file with more than one hard link is skipped (one of its other names may be outside
  the grant), and never written through;
* writes open every path component relative to the grant's directory descriptor with
  ``O_NOFOLLOW``, so a link swapped in after the sandbox started is refused, not followed.

Reads and writes that are refused are reported (a warning for reads, a
``SandboxPermissionError`` for writes); nothing outside the grant is touched.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

__all__ = ["CHUNK_BYTES", "Grant", "GrantWriter", "read_grant"]

CHUNK_BYTES = 1 << 20
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


@dataclass(frozen=True)
class Grant:
    """One granted path: ``/sandbox/<name>`` in the sandbox, ``host`` (a realpath) on the host."""

    name: str
    host: str
    writable: bool


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _read_fd(fd: int) -> Iterator[bytes]:
    first = True
    while True:
        data = os.read(fd, CHUNK_BYTES)
        if not data:
            if first:
                yield b""
            return
        first = False
        yield data


def _open_regular(path: str, *, dir_fd: int | None = None, single_link: bool) -> int | None:
    """Open a regular file without following a final symlink; None (logged) if it is anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        logger.warning("Not granting %s to the sandbox: %s", path, exc)
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (single_link and info.st_nlink > 1):
        os.close(fd)
        why = "it has several hard links" if stat.S_ISREG(info.st_mode) else "it is not a regular file"
        logger.warning("Not granting %s to the sandbox: %s.", path, why)
        return None
    return fd


def read_grant(host: str) -> Iterator[tuple[str, bool, bytes, bool]]:
    """Yield ``(relative path, is_dir, chunk, first_chunk)`` for everything a grant shows the sandbox.

    ``host`` is the grant's realpath; a granted file yields one entry with the path ``""``.
    """
    if not os.path.isdir(host):
        fd = _open_regular(host, single_link=False)  # named explicitly by the caller
        if fd is not None:
            try:
                for i, chunk in enumerate(_read_fd(fd)):
                    yield "", False, chunk, i == 0
            finally:
                os.close(fd)
        return
    for dirpath, dirnames, filenames, dirfd in os.fwalk(host, follow_symlinks=False):
        rel_dir = os.path.relpath(dirpath, host)
        rel_dir = "" if rel_dir == "." else rel_dir
        keep_dirs = []
        for name in sorted(dirnames + filenames):
            rel = os.path.join(rel_dir, name)
            try:
                info = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            except OSError:
                continue
            fd: int | None = None
            if stat.S_ISDIR(info.st_mode):
                keep_dirs.append(name)
                yield rel, True, b"", True
                continue
            if stat.S_ISLNK(info.st_mode):
                target = os.path.realpath(os.path.join(dirpath, name))
                if not _inside(target, host) or not os.path.isfile(target):
                    logger.warning("Not granting %s to the sandbox: the link leads outside %s (or to a directory).",
                                   os.path.join(dirpath, name), host)
                    continue
                fd = _open_regular(target, single_link=True)
            elif stat.S_ISREG(info.st_mode):
                fd = _open_regular(name, dir_fd=dirfd, single_link=True)
            if fd is None:
                continue
            try:
                for i, chunk in enumerate(_read_fd(fd)):
                    yield rel, False, chunk, i == 0
            finally:
                os.close(fd)
        dirnames[:] = [d for d in dirnames if d in keep_dirs]


def _safe_parts(rel: str) -> list[str] | None:
    if not rel:
        return []
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\x00" in p or os.sep in p for p in parts):
        return None
    return parts


@dataclass
class GrantWriter:
    """Writes the files the runner sends back for one writable grant, refusing anything that leaves it."""

    grant: Grant
    refused: list[str] = field(default_factory=list)
    _fd: int | None = None
    _path: str | None = None

    def _refuse(self, rel: str, why: str) -> None:
        shown = os.path.join(self.grant.host, rel) if rel else self.grant.host
        self.refused.append(f"/sandbox/{self.grant.name}{'/' + rel if rel else ''} -> {shown}: {why}")

    def _open_parent(self, parts: list[str], create: bool) -> int:
        """A descriptor of the directory that holds ``parts[-1]``, walked without following links."""
        if os.path.isdir(self.grant.host):
            fd = os.open(self.grant.host, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
            names = parts[:-1]
        else:  # a granted file: its parent directory, then the file's own name
            fd = os.open(os.path.dirname(self.grant.host), os.O_RDONLY | _DIRECTORY)
            names = []
        try:
            for name in names:
                if create:
                    try:
                        os.mkdir(name, dir_fd=fd)
                    except FileExistsError:
                        pass
                child = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError:
            os.close(fd)
            raise
        return fd

    def directory(self, rel: str) -> None:
        parts = _safe_parts(rel)
        if parts is None or not os.path.isdir(self.grant.host):
            self._refuse(rel, "not a path inside the granted directory")
            return
        if not parts:
            return
        try:
            os.close(self._open_parent([*parts, "."], create=True))
        except OSError as exc:
            self._refuse(rel, f"a path component is a link or not a directory ({exc.strerror})")

    def chunk(self, rel: str, data_b64: str, first: bool, last: bool) -> None:
        if first:
            self._close()
            self._path = None
            parts = _safe_parts(rel)
            single = not os.path.isdir(self.grant.host)
            if parts is None or (single and parts) or (not single and not parts):
                self._refuse(rel, "not a path inside the grant")
                return
            name = os.path.basename(self.grant.host) if single else parts[-1]
            try:
                parent = self._open_parent(parts, create=True)
            except OSError as exc:
                self._refuse(rel, f"a path component is a link or not a directory ({exc.strerror})")
                return
            try:
                fd = os.open(name, os.O_WRONLY | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o666, dir_fd=parent)
            except OSError as exc:
                self._refuse(rel, f"it is a symbolic link or cannot be opened ({exc.strerror})")
                return
            finally:
                os.close(parent)
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or (not single and info.st_nlink > 1):
                os.close(fd)
                self._refuse(rel, "it is not a regular file with a single link")
                return
            os.ftruncate(fd, 0)
            self._fd, self._path = fd, rel
        if self._fd is None or self._path != rel:
            return  # the first chunk was refused
        data = base64.b64decode(data_b64)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if last:
            self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def finish(self) -> list[str]:
        self._close()
        return self.refused
