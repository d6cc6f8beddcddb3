"""Errors and diagnostics: every user-facing problem says what and where.

``LocatedError`` is the one base class the CLI, the Lambda handler and Cosmonaut catch: its
``str()`` reads ``file:line:col: message`` or ``$.json.path: message``. Anything else that
escapes is a bug in this program, not a user mistake.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem with one part of the input that was left out (or, as a warning, kept)."""

    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message, "severity": self.severity}


class LocatedError(Exception):
    """A user-facing error that knows where it happened."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        json_path: str | None = None,
        diagnostics: tuple[Diagnostic, ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.json_path = json_path
        self.diagnostics = diagnostics

    @property
    def location(self) -> str:
        if self.line is not None:
            parts = [self.file or "<input>", str(self.line)]
            if self.col is not None:
                parts.append(str(self.col))
            return ":".join(parts)
        if self.json_path is not None:
            return f"{self.file}: {self.json_path}" if self.file else self.json_path
        return self.file or ""

    def __str__(self) -> str:
        where = self.location
        return f"{where}: {self.message}" if where else self.message


class PayloadError(LocatedError):
    """The payload as a whole cannot be used (not JSON, wrong envelope)."""


class OptionsError(LocatedError):
    """The render options are invalid."""


class ParseError(LocatedError):
    """A configuration file cannot be read."""


class InternalError(LocatedError):
    """A self-check failed (e.g. the round trip); nothing is written. A bug, reported clearly."""


class ConditionError(ValueError):
    """An ``if``/``unless`` condition is malformed; ``index`` is the offending word's index."""

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
