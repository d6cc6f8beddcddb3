"""What Cosmonaut keeps on the host: the last N applied configs and the status of the last pass.

Layout of the state directory (``--state-dir``):

* ``history/NNNNNN-<UTC time>-<sha256 prefix>.cfg``: every applied config, the newest N kept;
* ``status.json``: what the last reconcile saw and did (read by ``cosmonaut status``);
* ``registry.db``: the embedded registry's store (SQLite), unless ``--store`` says otherwise;
* ``acme.db``, ``acme-holder``: ACME state, when ``--acme-store`` names no other store.

Configs and status hold userlist hashes and header values: the folder is owner-only (0700)
and every file in it 0600 (``make_private`` tightens what an older release or a hand left
looser). Files are written through a temporary file and a rename.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cosmonaut import logs
from cosmonaut.errors import UsageError
from runtime.files import state_home, write_atomic

STATE_DIR_ENV = "COSMONAUT_STATE_DIR"
_ENTRY = re.compile(r"(\d{6})-[0-9TZ]+-([0-9a-f]{12})\.cfg")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# What Cosmonaut writes in its folder (SQLite adds -journal, -wal and -shm beside a database).
_OWN_FILES = re.compile(r"status\.json|acme-holder|(registry|acme)\.db(-journal|-wal|-shm)?")


def default_state_dir() -> Path:
    """``$COSMONAUT_STATE_DIR``; else ``/var/lib/cosmonaut`` for root, else
    ``$XDG_STATE_HOME/cosmonaut`` (``~/.local/state/cosmonaut``)."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/cosmonaut")
    return state_home() / "cosmonaut"


def make_private(directory: Path) -> list[str]:
    """Make the state folder owner-only: create it 0700, or tighten it, its ``history``
    folder and the files Cosmonaut wrote in them when they are open to others (an older
    release wrote 0644 files in a 0755 folder); each change is logged and returned. A folder
    that is not this user's own or is shared (sticky, as /tmp) keeps its mode, with a
    warning: Cosmonaut's own files in it are still tightened."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    except OSError as error:
        raise UsageError(
            f"cannot create the state folder {directory}: {error.strerror or error}",
            file="--state-dir",
        ) from None
    changed: list[str] = []
    info = directory.stat()
    if info.st_mode & 0o077:
        if info.st_uid != os.geteuid() or info.st_mode & stat.S_ISVTX:
            logs.warning(
                "state folder open to others",
                folder=str(directory),
                mode=f"{stat.S_IMODE(info.st_mode):04o}",
                hint="give --state-dir a folder of Cosmonaut's own",
            )
        else:
            changed += _tighten(directory)
    history = directory / "history"
    if history.is_dir() and not history.is_symlink():
        changed += _tighten(history)
        for entry in history.iterdir():
            if _ENTRY.fullmatch(entry.name):
                changed += _tighten(entry)
    for entry in directory.iterdir():
        if _OWN_FILES.fullmatch(entry.name):
            changed += _tighten(entry)
    if changed:
        logs.warning("state made private", folder=str(directory), tightened=changed)
    return changed


def _tighten(path: Path) -> list[str]:
    """Take every access of group and others away from ``path`` (not a link): ``[what
    changed]``, or ``[]`` when there was none to take."""
    try:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
            return []
        path.chmod(mode & 0o700)
    except OSError as error:
        logs.warning("cannot make private", path=str(path), error=error.strerror or str(error))
        return []
    return [f"{path} ({mode:04o} -> {mode & 0o700:04o})"]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class History:
    """The last ``keep`` applied configs, oldest pruned first."""

    def __init__(self, directory: Path, keep: int = 10) -> None:
        self.directory = directory
        self.keep = max(1, keep)

    def entries(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if _ENTRY.fullmatch(p.name))

    def record(self, text: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
        numbers = [int(m.group(1)) for p in self.entries() if (m := _ENTRY.fullmatch(p.name))]
        number = max(numbers) + 1 if numbers else 1
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = self.directory / f"{number % 1_000_000:06d}-{stamp}-{digest(text)[:12]}.cfg"
        write_atomic(str(path), text, mode=PRIVATE_FILE)
        for old in self.entries()[: -self.keep]:
            old.unlink(missing_ok=True)
        return path


def write_status(path: Path, status: dict[str, Any]) -> None:
    """``status.json``, owner-only, with any URL's password masked (as in the logs)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    text = logs.redacted(json.dumps(status, indent=2, sort_keys=True))
    write_atomic(str(path), text + "\n", mode=PRIVATE_FILE)


def read_status(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def status_text(status: dict[str, Any]) -> str:
    """``cosmonaut status`` as text: what ``status.json`` says, for a person."""
    last = status.get("last_pass") or {}
    applied = last.get("apply") or {}
    lines = [f"table:      {status.get('table')}"]
    if status.get("host"):
        lines.append(f"host:       {status['host']} (fleet mode)")
    lines += [
        f"registry:   {status.get('registry')}" + _health_text(status.get("registry_health")),
        f"haproxy:    {status.get('haproxy_container')}",
        f"last pass:  {last.get('time')}  {'ok' if last.get('ok') else 'FAILED'}"
        + (f"  {applied.get('outcome')}" if applied else "")
        + (f"  ({last.get('failure')}: {last.get('error')})" if last.get("failure") else ""),
    ]
    if applied and not last.get("ok"):
        lines.append(f"            {applied.get('message')}")
    success = status.get("last_success") or {}
    lines.append(f"last ok:    {success.get('time', 'never')}")
    change = status.get("change_path")
    if change:
        reason = f" ({change['reason']})" if change.get("reason") else ""
        lines.append(f"last change: {change['path']}{reason}")
    routed = status.get("routed") or []
    lines.append(f"routed:     {len(routed)} container(s)")
    for item in routed:
        lines.append(
            f"  {item['name']:<24} {item['service']:<16} {item['mode']} {item['predicate']}"
            f"  -> {item['address']}" + (f"  cookie {item['cookie']}" if item.get("cookie") else "")
        )
    for problem in status.get("problems") or []:
        lines.append(
            f"  left out: {problem['container']}: {problem['setting']}: {problem['reason']}"
        )
    for item in applied.get("left_out") or []:
        lines.append(f"  left out by haproxy -c: {item['service']}: {item['reason']}")
    for item in status.get("excluded") or []:
        lines.append(f"  out of rotation: {item['container']}: {item['reason']}")
    acme = status.get("acme")
    if acme is not None:
        lines.append(f"acme:       {len(acme)} name(s)")
    for entry in acme or []:
        line = f"  {entry['name']:<32} {entry['state']:<9} expires {entry.get('not_after') or '-'}"
        if entry.get("lease_holder"):
            line += f"  (host {entry['lease_holder']} is ordering)"
        if entry.get("last_error"):
            line += (
                f"  failed {entry['failures']}x: {entry['last_error']}"
                f"  (next try {entry.get('next_attempt')})"
            )
        lines.append(line)
    return "\n".join(lines)


def _health_text(health: Any) -> str:
    """``  up``, or ``  UNREACHABLE since T (N failed calls: error)``; empty when unknown."""
    if not isinstance(health, dict) or health.get("up") is None:
        return ""
    if health["up"]:
        return "  up"
    return (
        f"  UNREACHABLE since {health.get('since')} "
        f"({health.get('consecutive_failures')} failed call(s): {health.get('last_error')}); "
        "HAProxy keeps its last config"
    )
