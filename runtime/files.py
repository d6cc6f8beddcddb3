"""File I/O at the edge: reading inputs, writing outputs atomically, where local state lives."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from compiler.errors import LocatedError


class InputError(LocatedError):
    """An input file cannot be read."""


def read_input(path: str) -> bytes:
    """The bytes of ``path``, or of standard input for ``-``."""
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as error:
        raise InputError(f"cannot read: {error.strerror or error}", file=path) from None


CONFIG_SUFFIXES = (".cfg", ".conf", ".config")


def config_inputs(names: Sequence[str]) -> Iterable[str]:
    """Files named, and the config files under named directories (sorted); ``-`` is stdin."""
    for name in names:
        path = Path(name)
        if name != "-" and path.is_dir():
            yield from sorted(
                str(child)
                for child in path.rglob("*")
                if child.is_file() and child.name.endswith(CONFIG_SUFFIXES)
            )
        else:
            yield name


def read_text(name: str) -> str:
    """A config file (or stdin) as text; bytes that are not UTF-8 are kept (surrogateescape)."""
    return read_input(name).decode("utf-8", "surrogateescape")


class TooOpenError(OSError):
    """A file that holds a secret, which others than its owner may read or write."""


def read_private(path: Path) -> str:
    """The text of a file that holds a secret (a token), refused with ``TooOpenError`` when
    its group or others have any access to it, as ssh refuses such a private key: the mode is
    read from the file opened, so a file swapped in between cannot slip through."""
    with open(path, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode & 0o777
        if mode & 0o077:
            raise TooOpenError(
                f"{path} is open to others (mode {mode:04o}): anyone in its group or on this "
                f"machine could read the token; run 'chmod 600 {path}'"
            )
        return handle.read().decode("utf-8")


def write_atomic(path: str, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never a partial file.

    The file gets ``mode``; without it, an existing file keeps its permissions and a new one
    is 0644.
    """
    directory = os.path.dirname(os.path.abspath(path))
    if mode is None:
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    try:
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
        )
    except OSError as error:
        raise InputError(f"cannot write: {error.strerror or error}", file=path) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise InputError(f"cannot write: {error.strerror or error}", file=path) from None


def state_home(environ: Mapping[str, str] | None = None) -> Path:
    """Where a program of this project keeps its local state, each in a folder of its own
    name: ``$XDG_STATE_HOME``, else ``~/.local/state``. As the XDG spec says, an empty or
    relative ``XDG_STATE_HOME`` is ignored."""
    env = os.environ if environ is None else environ
    configured = env.get("XDG_STATE_HOME", "")
    return Path(configured) if os.path.isabs(configured) else Path.home() / ".local" / "state"
