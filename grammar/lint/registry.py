"""What a lint rule is: a registered check under a code, a name, a severity and a summary.

A rule is a pure function from a ``LintContext`` (``grammar.lint.model``) to ``Problem``
objects; ``rule()`` registers it under a stable code (``HAP020``), a name, a severity and a
one-line summary. The engine turns each problem into a located ``Finding``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from compiler.errors import Severity
from grammar.lint.findings import Problem

if TYPE_CHECKING:
    from grammar.lint.model import LintContext

__all__ = ["RULES", "Check", "Rule", "rule"]


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
