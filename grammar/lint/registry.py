"""What a lint rule is: a registered check, the problems it reports, the findings they become.

A rule is a pure function from a ``LintContext`` (``grammar.lint.model``) to ``Problem``
objects; ``rule()`` registers it under a stable code (``HAP020``), a name, a severity and a
one-line summary. The engine turns each problem into a located ``Finding``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compiler.ast import Source
from compiler.errors import Severity

if TYPE_CHECKING:
    from grammar.lint.model import LintContext

__all__ = ["RULES", "Check", "Finding", "Problem", "Rule", "rule"]


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


Check = Callable[["LintContext"], Iterable[Problem]]


@dataclass(frozen=True, slots=True)
class Rule:
    code: str
    name: str
    severity: Severity
    summary: str
    check: Check


RULES: dict[str, Rule] = {}


def rule(code: str, name: str, severity: Severity, summary: str) -> Callable[[Check], Check]:
    """Register a rule function under a stable code."""

    def register(check: Check) -> Check:
        if code in RULES:
            raise ValueError(f"rule code {code} registered twice")
        RULES[code] = Rule(code, name, severity, summary, check)
        return check

    return register
