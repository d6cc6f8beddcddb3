"""One rule for parts the tests need (haproxy, the container engine, the shared corpus, ...).

A test that needs a part of the environment calls ``require(part, reason)`` when the part is
missing, or carries ``requirement(part, present, reason)`` as a mark. Under CI (``CI`` set to
``1``, ``true`` or ``yes``; ``.ci/run`` sets ``CI=true``) a missing part fails the test and
names the part. Elsewhere the test skips, and the end of the run lists every missing part
with the number of tests it skipped (``tests/conftest.py``'s ``pytest_terminal_summary``).

Import it as ``tests.support.required`` everywhere, so there is one copy of the module.
"""

from __future__ import annotations

import os
import re
from typing import NoReturn

import pytest

CI_VALUES = frozenset({"1", "true", "yes"})
MARK = "requires"
# The message of a skip (and of a failure) starts with this, so the summary can group them.
_PREFIX = re.compile(r"\[requires (?P<part>[^\]]+)\] (?P<reason>[^\n]*)")


def in_ci() -> bool:
    """Whether ``CI`` says this is a CI run (``1``, ``true`` or ``yes``, any case)."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def require(part: str, reason: str) -> NoReturn:
    """``part`` is missing: fail under CI, naming it; skip elsewhere."""
    message = f"[requires {part}] {reason}"
    if in_ci():
        ci = os.environ.get("CI")
        pytest.fail(f"{message}; under CI={ci} a missing part fails", pytrace=False)
    pytest.skip(message)


def requirement(part: str, present: bool, reason: str) -> pytest.MarkDecorator:
    """A mark: when ``present`` is false, the test goes through ``require`` before it runs."""
    return getattr(pytest.mark, MARK)(part, reason=reason, present=present)


def check_marks(item: pytest.Item) -> None:
    """Apply ``requirement`` marks (called from ``pytest_runtest_setup``)."""
    for mark in item.iter_markers(MARK):
        if not mark.kwargs.get("present", True):
            require(str(mark.args[0]), str(mark.kwargs.get("reason", "")))


def parse_message(message: str) -> tuple[str, str] | None:
    """``(part, reason)`` from a message ``require`` wrote (found anywhere in it), else None."""
    found = _PREFIX.search(message)
    return (found["part"], found["reason"]) if found else None
