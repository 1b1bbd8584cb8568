"""Files land whole: write to a temporary name in the same directory, then rename."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dcn_cli.errors import DcnError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary name keeps ``path``'s suffix (Keras insists on ``.keras``).
    On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if path.is_dir():
        raise DcnError(f"{path}: is a directory; name a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=path.suffix)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, normal_mode(tmp_path))  # mkstemp's 0600 would hide it from others
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def staging_dir(path: Path) -> Path:
    """A new empty directory beside ``path``, to be renamed to it once whole."""
    return Path(tempfile.mkdtemp(dir=path.parent, prefix=temporary_prefix(path)))


def temporary_prefix(path: Path) -> str:
    """How the temporary names of :func:`atomic_path` and :func:`staging_dir` begin, for
    ``path``: hidden, then this host and this process (``.NAME.HOST-PID-``)."""
    return f".{path.name}.{_HOST}-{os.getpid()}-"


# A short, fixed-width token of this machine's name: process ids are only unique per host.
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def remove_leftovers(path: Path) -> None:
    """Delete the temporary files and directories that a killed writer of ``path`` left.

    A temporary name is ``.NAME.HOST-PID-XXXXXXXX`` (plus ``path``'s suffix for
    a file). Only this host's are considered, and only those whose process is
    gone: another host's, or another writer's still running, stay, and so does
    anything not named so.
    """
    if not path.parent.is_dir():
        return
    pattern = re.compile(
        re.escape(f".{path.name}.{_HOST}-")
        + r"(\d+)-[a-z0-9_]{8}(?:"
        + re.escape(path.suffix)
        + ")?"
    )
    for stray in path.parent.iterdir():
        match = pattern.fullmatch(stray.name)
        if match is None or running(int(match[1])):
            continue
        with contextlib.suppress(OSError):  # another user's, say: not ours to clean
            if stray.is_dir() and not stray.is_symlink():
                shutil.rmtree(stray)
            else:
                stray.unlink()


def running(pid: int) -> bool:
    """Whether process ``pid`` of this host may still be running (this one: no)."""
    if pid == os.getpid():
        return False  # this process writes one file at a time: what it left is done with
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or a number we cannot check: leave it be
    return True


def normal_mode(path: Path) -> int:
    """The mode a plain ``open`` or ``mkdir`` would give ``path``: 0644 or 0755 under umask 022."""
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if path.is_dir() else 0o666) & ~mask


def read_json(path: str | os.PathLike):
    """Parse a JSON file; a missing or malformed file is a :class:`DcnError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DcnError(f"{path}: no such file") from None
    except json.JSONDecodeError as err:
        raise DcnError(f"{path}:{err.lineno}:{err.colno}: not valid JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise DcnError(f"{path}: not a UTF-8 text file") from None
    except IsADirectoryError:
        raise DcnError(f"{path}: is a directory, not a JSON file") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj) -> None:
    # allow_nan=False: NaN or Infinity would make the file not JSON; it is a bug upstream.
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n")
