"""Findings as text, JSON or SARIF 2.1.0: pure functions that return the document as a string.

``printable`` makes any text safe for an output stream (bytes that were not UTF-8 in the input
are shown as ``\\udcXX`` escapes); the CLI writes what these functions return through it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from grammar.lint.findings import Finding
from grammar.lint.registry import Rule

__all__ = ["DOCS_PAGE", "FORMATS", "json_report", "printable", "report", "sarif_log", "text_report"]

DOCS_PAGE = "docs/lint-rules.md"
FORMATS = ("text", "json", "sarif")


def printable(text: str) -> str:
    """Text that any output stream can take (undecodable bytes shown as escapes)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def text_report(findings: Sequence[Finding]) -> str:
    """One ``file:line:col: severity CODE message`` line per finding."""
    return "".join(f"{finding}\n" for finding in findings)


def json_report(
    findings: Sequence[Finding], unreadable: Sequence[str], summary: Mapping[str, int]
) -> str:
    """The findings, the inputs that could not be read, and the counts, as one JSON document."""
    document = {
        "findings": [finding.as_dict() for finding in findings],
        "unreadable": list(unreadable),
        "summary": dict(summary),
    }
    return json.dumps(document, indent=2) + "\n"


def _uri(path: str) -> str:
    return quote(path.replace("\\", "/"), safe="/:@-._~")


def _level(severity: str) -> str:
    return "error" if severity == "error" else "warning"


def sarif_log(
    findings: Sequence[Finding], rules: Sequence[Rule], unreadable: Sequence[str] = ()
) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run (for code-scanning UIs)."""
    ordered = sorted(rules, key=lambda rule_: rule_.code)
    index = {rule_.code: position for position, rule_ in enumerate(ordered)}
    results = []
    for finding in findings:
        results.append(
            {
                "ruleId": finding.code,
                "ruleIndex": index.get(finding.code, 0),
                "level": _level(finding.severity),
                "message": {"text": printable(finding.message)},
                "locations": [
                    {
                        "physicalLocation": {
                            "artifactLocation": {"uri": _uri(printable(finding.file))},
                            "region": {"startLine": finding.line, "startColumn": finding.col},
                        }
                    }
                ],
            }
        )
    notifications = [
        {"level": "error", "message": {"text": printable(problem)}} for problem in unreadable
    ]
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "lambda-registry lint",
                        "rules": [
                            {
                                "id": rule_.code,
                                "name": rule_.name,
                                "shortDescription": {"text": rule_.summary},
                                "help": {"text": f"See {DOCS_PAGE}, section {rule_.code}."},
                                "defaultConfiguration": {"level": _level(rule_.severity)},
                            }
                            for rule_ in ordered
                        ],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not unreadable,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": results,
            }
        ],
    }


def report(
    form: str,
    findings: Sequence[Finding],
    *,
    rules: Sequence[Rule],
    unreadable: Sequence[str],
    summary: Mapping[str, int],
) -> str:
    """The findings in ``form`` (one of ``FORMATS``); raises ``ValueError`` for another."""
    if form == "text":
        return text_report(findings)
    if form == "json":
        return json_report(findings, unreadable, summary)
    if form == "sarif":
        return json.dumps(sarif_log(findings, rules, unreadable), indent=2) + "\n"
    raise ValueError(f"unknown report format {form!r} (one of {', '.join(FORMATS)})")
