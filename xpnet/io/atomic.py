"""Atomic writes: a file is replaced whole or not at all, and a failed write can go to a rescue file.

    >>> from xpnet.io.atomic import atomic_write
    >>> atomic_write("out.csv", lambda handle: handle.write(b"a,b\\n1,2\\n"))  # doctest: +SKIP

:func:`check_destination` refuses what cannot be written before any work is done;
:func:`atomic_write` writes to a locked temporary file next to the destination, flushes it
to disk, renames it over the destination and flushes the directory, so a crash or kill at
any point leaves the previous file whole. Temporary files of killed writers are removed by
the next write of the same name. :func:`write_rescue` puts data that could not be written
where asked into the current or the temporary directory (checkpoints use it so that a failed
save keeps the weights). docs/reliability.md lists each guarantee and its test.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
import tempfile
import time

from ..errors import XpnetValueError

KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def kind_of(mode: int) -> str | None:
    """What a file of ``st_mode`` ``mode`` is, in words (``"a FIFO (named pipe)"``...); None
    for a regular file or a kind without a name."""
    return next((kind for test, kind in KINDS if test(mode)), None)


def reason(exc: BaseException) -> str:
    """An error as a few words on one line: an OSError by its reason ("No space left on device")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())


def path_problem(path: str, exc: OSError) -> str:
    """Why ``path`` could not be looked at, in words."""
    if isinstance(exc, NotADirectoryError):
        return f"{os.path.dirname(os.path.abspath(path))!r} is not a directory"
    return exc.strerror or str(exc)


# -- the destination ---------------------------------------------------------------------------

def check_destination(path) -> str:
    """Check that ``path`` can be written safely; return the file that will really be replaced.

    Refused, with one clear :class:`~xpnet.XpnetValueError` and before any work: a
    destination that exists and is not a regular file (a directory, FIFO, device or socket);
    a symbolic link that dangles or points to such a file; an existing file that is not
    writable; a directory that does not exist or is not writable (including a read-only
    filesystem). A symbolic link to a regular file is accepted: the file it points to is
    replaced and the link is kept (the returned path is that file's).

    Call it before a long computation whose result goes to ``path`` (``xpnet train --save``
    does, before training); :func:`atomic_write` calls it again.
    """
    path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise XpnetValueError(f"cannot write {path!r}: name a file")
    target, shown, info = _resolve(path)
    if info is not None:
        kind = kind_of(info.st_mode)
        if kind is not None:
            raise XpnetValueError(f"cannot write {shown}: it is {kind}, not a regular file; name a file")
        if not stat.S_ISREG(info.st_mode):
            raise XpnetValueError(f"cannot write {shown}: it is not a regular file; name a file")
        if not os.access(target, os.W_OK):
            raise XpnetValueError(f"cannot write {shown}: the file is not writable ({_why_not_writable(target)}); "
                                  "make it writable or name another file")
    directory = os.path.dirname(os.path.abspath(target))
    if not os.path.exists(directory):
        raise XpnetValueError(f"cannot save to {path!r}: the directory {directory!r} does not exist; create it first")
    if not os.path.isdir(directory):
        raise XpnetValueError(f"cannot write {path!r}: {directory!r} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise XpnetValueError(f"cannot write {path!r}: the directory {directory!r} is not writable "
                              f"({_why_not_writable(directory)}); choose another directory")
    return os.path.abspath(target)


def _resolve(path: str) -> tuple:
    """``(file to replace, how errors show it, its stat or None when it does not exist)``;
    a symbolic link is followed, a dangling one refused."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return path, repr(path), None
    except OSError as exc:
        raise XpnetValueError(f"cannot write {path!r}: {path_problem(path, exc)}") from None
    if not stat.S_ISLNK(info.st_mode):
        return path, repr(path), info
    target = os.path.realpath(path)
    shown = f"{path!r} (a link to {target!r})"
    try:
        return target, shown, os.stat(path)
    except FileNotFoundError:
        raise XpnetValueError(f"cannot write {path!r}: it is a symbolic link to {os.readlink(path)!r}, which "
                              "does not exist; remove the link or name another file") from None
    except OSError as exc:
        raise XpnetValueError(f"cannot write {shown}: {path_problem(path, exc)}") from None


def _why_not_writable(path: str) -> str:
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "a read-only filesystem"
    except (OSError, AttributeError):
        pass
    return "permission denied"


# -- the write ---------------------------------------------------------------------------------

def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file next to ``path``, then rename it to ``path``.

    The destination is checked first (:func:`check_destination`). The temporary file is
    ``.<name>.<pid>.<random>.tmp`` in the destination's directory, locked while it is
    written; temporary files of writers that died (killed mid-write) are removed by the
    next write of the same name. A new file gets the permissions the umask gives
    (``0o666 & ~umask``); an existing one keeps its mode (and owner, where permitted).
    After the rename the directory is flushed to disk too. On any failure (including
    KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    """
    target = check_destination(path)
    directory, name = os.path.split(target)
    _remove_stale_temps(directory, name)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    temp, fd = _create_temp(directory, name)
    try:
        if existing is not None:
            _keep_mode_and_owner(fd, existing)
        with os.fdopen(fd, "wb") as handle:  # closing it releases the lock, after the rename
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(temp, target)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _temp_key(name: str) -> str:
    # a file name holds at most 255 bytes: leave room for ".<pid>.<8 hex>.tmp"
    return name if len(name.encode()) <= 200 else name.encode()[:200].decode(errors="ignore")


def _create_temp(directory: str, name: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        temp = os.path.join(directory, f".{_temp_key(name)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(temp, flags, 0o666)  # the kernel applies the umask
        except FileExistsError:
            continue
        _lock(fd, blocking=True)
        return temp, fd


def _lock(fd: int, blocking: bool) -> bool:
    """Take an exclusive flock on ``fd``; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: the pid alone decides
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # a filesystem without locks: the pid alone decides
        return True
    return True


def _remove_stale_temps(directory: str, name: str) -> None:
    """Remove ``.<name>.<pid>.<random>.tmp`` files left by writers that died mid-write.

    A temporary file is stale when its pid is not a running process here and nobody holds
    its lock (a writer on another machine sharing the directory holds it).
    """
    pattern = re.compile(re.escape(f".{_temp_key(name)}.") + r"(\d{1,10})\.[0-9a-f]{8}\.tmp")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for entry in names:
        match = pattern.fullmatch(entry)
        if match is None or _alive(int(match[1])):
            continue
        temp = os.path.join(directory, entry)
        try:
            fd = os.open(temp, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, blocking=False):
                os.unlink(temp)
        except OSError:
            pass
        finally:
            os.close(fd)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a writer's pid: leave the file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or not a pid at all: leave it
    return True


def _keep_mode_and_owner(fd: int, existing: os.stat_result) -> None:
    os.fchmod(fd, stat.S_IMODE(existing.st_mode))
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (existing.st_uid, existing.st_gid):
        try:
            os.fchown(fd, existing.st_uid, existing.st_gid)
        except OSError:  # only root may give a file away: the new file is then ours
            pass


def _fsync_directory(directory: str) -> None:
    """Flush the rename to disk (the new directory entry), where the OS allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)


# -- rescue files ------------------------------------------------------------------------------

def rescue_directories(failed: str) -> list:
    """Where :func:`write_rescue` puts what could not be written to ``failed`` (a directory):
    the current directory, then the system's temporary directory, never ``failed`` itself."""
    found = []
    for directory in (os.getcwd, tempfile.gettempdir):
        try:
            real = os.path.realpath(directory())
        except OSError:  # the current directory was removed
            continue
        if real != os.path.realpath(failed) and real not in found:
            found.append(real)
    return found


def write_rescue(path, write) -> tuple:
    """Write what could not go to ``path`` to a rescue file instead (atomically, like any write).

    The rescue file is ``xpnet-rescue-<date>-<time>-<pid>-<name of path>`` in the first of
    :func:`rescue_directories` that takes it. Returns ``(rescue path or None, what went
    wrong in each directory tried, as one string)``; never raises for a failed write.
    """
    path = os.fspath(path)
    name = f"xpnet-rescue-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{os.path.basename(path) or 'model.npz'}"
    failures = []
    for directory in rescue_directories(os.path.dirname(os.path.abspath(path))):
        target = os.path.join(directory, name)
        try:
            atomic_write(target, write)
        except (OSError, XpnetValueError) as again:
            failures.append(f"{directory}: {reason(again)}")
            continue
        return target, ""
    return None, "; ".join(failures) or "no other directory to try"
