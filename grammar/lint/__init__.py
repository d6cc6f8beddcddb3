"""The linter: an HAProxy configuration in, findings out (rules: ``docs/lint-rules.md``).

``lint_text`` parses and lints; ``lint_config`` lints a parsed ``Config``. Findings are
``Finding`` objects; ``RULES`` maps a code to its ``Rule``; ``select_rules`` applies
``--select``/``--ignore`` patterns.
"""

from grammar.lint.engine import (
    LintOptions,
    UnknownRuleError,
    lint_config,
    lint_text,
    select_rules,
)
from grammar.lint.findings import Finding
from grammar.lint.registry import RULES, Rule

__all__ = [
    "RULES",
    "Finding",
    "LintOptions",
    "Rule",
    "UnknownRuleError",
    "lint_config",
    "lint_text",
    "select_rules",
]
