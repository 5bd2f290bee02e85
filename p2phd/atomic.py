"""Everything p2phd writes goes through here: files and folders appear complete or not at
all, with the modes the umask gives (0644 and 0755 under umask 022), and a write the system
refuses (disk full, file-size limit, read-only, no permission, a file where a folder should
be) is one `WriteError` naming the path and the cause, with nothing half-written left behind.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from p2phd.errors import ConfigError, WriteError

if TYPE_CHECKING:
    from torch import Tensor

_FIXES = {
    errno.ENOSPC: "free some disk space",
    errno.EDQUOT: "free some space in your disk quota",
    errno.EFBIG: "the file is over this system's size limit (ulimit -f); raise the limit",
    errno.EROFS: "the file system is read-only; choose a writable folder",
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
    errno.ENOTDIR: "part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "a file is in the way; choose another path or move the file",
    errno.EISDIR: "a folder is in the way; choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
}


def write_error(path: Path, exc: OSError) -> WriteError:
    """The one-line error for a refused write of `path`."""
    cause = exc.strerror or str(exc) or type(exc).__name__
    return WriteError(path, cause, _FIXES.get(exc.errno or 0, "check the path and the disk"))


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """An `OSError` in the block becomes a `WriteError` naming `path`."""
    try:
        yield
    except OSError as exc:
        raise write_error(path, exc) from None


def make_dirs(path: Path) -> Path:
    """`path` and its parents as folders (mode 0777 less the umask)."""
    with writing(path):
        Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def _temp_name(path: Path, kind: str) -> Path:
    """A fresh hidden name beside `path`: prep's and synthesize's scans skip hidden files."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(tmp: Path, path: Path, durable: bool = True) -> None:
    """Flush `tmp` (a file, or a folder and its files) to disk, then rename it onto `path`;
    an old folder at `path` is moved aside first and removed once the new one is in place.
    Not `durable`: the rename alone (the caller flushes many files at once, `sync_folder`)."""
    if not durable:
        os.replace(tmp, path)
        return
    if tmp.is_dir():
        for child in tmp.iterdir():
            _fsync(child)
    _fsync(tmp)
    if tmp.is_dir() and path.is_dir():
        old = _temp_name(path, "old")
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)
    _fsync(path.parent)


@contextmanager
def atomic_path(path: Path, *, durable: bool = True) -> Iterator[Path]:
    """A fresh temporary name beside `path` for the block to create its file under; when the
    block ends the file is flushed (unless not `durable`) and renamed onto `path`. On any
    error it is removed, and `path` (old or absent) is untouched."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = _temp_name(path, "tmp")
    try:
        with writing(path):
            yield tmp
            _commit(tmp, path, durable)
    except BaseException:
        with suppress(OSError):  # a read-only folder refuses even this: the error is the write's
            tmp.unlink()
        raise


def check_apart(out: Path, inputs: Sequence[tuple[str, Path]], option: str) -> None:
    """Refuse an output folder that is, holds or lies inside one of the `inputs` ((what,
    path) pairs): writing there would overwrite what is read, or read what is written."""
    target = Path(os.path.abspath(out)).resolve()
    for what, path in inputs:
        source = Path(os.path.abspath(path)).resolve()
        if target == source or source.is_relative_to(target):
            raise ConfigError(f"{option} {out}: holds {what} {path}; pass a new folder")
        if source.is_dir() and target.is_relative_to(source):
            raise ConfigError(f"{option} {out}: is inside {what} {path}; pass a folder outside it")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """A fresh temporary folder beside `path` to fill; when the block ends its files are
    flushed and it replaces `path` in one rename. On any error it is removed."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = _temp_name(path, "tmp")
    try:
        with writing(path):
            tmp.mkdir()
            try:
                yield tmp
            except WriteError as exc:  # name the file where it was going, not the temporary
                if isinstance(exc.path, Path) and exc.path.is_relative_to(tmp):
                    raise WriteError(path / exc.path.relative_to(tmp), exc.cause, exc.fix) from None
                raise
            _commit(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sync_folder(path: Path) -> None:
    """Flush every file written under `path` to disk in one call (Linux's syncfs on its file
    system; elsewhere sync): for many files at once, where an fsync each would cost more."""
    with writing(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
            if libc is None or libc.syncfs(fd) != 0:
                os.sync()
        finally:
            os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Replace `path` with `text`, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so the file is either the old one or the complete new one."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_tensors(
    path: Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Write a safetensors file into place (contiguous CPU copies), atomically.

    safetensors writes through a private temporary file of mode 0600 and reports a refused
    write as a `SafetensorError` quoting the OS error: the file gets the mode the umask gives
    a new file, and the error becomes that `OSError` again, so the caller sees the path and
    the cause."""
    from safetensors import SafetensorError  # torch is imported by those who write tensors
    from safetensors.torch import save_file

    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        mode = os.fstat(fd).st_mode & 0o777  # 0666 less the umask, applied by the kernel
        os.close(fd)
        try:
            save_file(cpu, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            code = re.search(r"\(os error (\d+)\)", str(exc))
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1]))) from None
        os.chmod(tmp, mode)


def append_line(path: Path, line: str) -> None:
    """Append one line to a log; a refused write leaves the file as it was (no torn line)."""
    data = (line + "\n").encode()
    with writing(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            size = os.fstat(fd).st_size
            try:
                while data:
                    data = data[os.write(fd, data) :]
            except OSError:
                os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
