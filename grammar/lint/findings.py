"""What lint reports: a rule's ``Problem`` about a line, and the located ``Finding`` the
engine makes of it. Apart from the registry so that the semantic model can name a problem
without importing the rules' registry."""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ast import Source
from compiler.errors import Severity

__all__ = ["Finding", "Problem"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One diagnostic: a rule's code and severity, a one-line message, and where."""

    code: str
    severity: Severity
    message: str
    file: str
    line: int
    col: int
    name: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.severity} {self.code} {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "col": self.col,
        }


@dataclass(frozen=True, slots=True)
class Problem:
    """What a rule reports: a message about a line (``src``), pointing at word ``index``."""

    src: Source | None
    message: str
    index: int = 0
    line: int | None = None
    col: int | None = None
