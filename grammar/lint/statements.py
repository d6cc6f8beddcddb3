"""A statement as the lint rules read it: its words, keyword and prefix, the condition that ends
it, and the names its words mention."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from compiler.ast import Condition, Line, Source, UseBackend
from compiler.errors import ConditionError
from compiler.statements import CONDITION_KEYWORDS, PREFIXES, parse_condition, statement_words

__all__ = ["CONDITIONAL_KEYWORDS", "Stmt", "is_dynamic", "split_condition", "to_stmt", "tokens"]

# Keywords whose statements may end with `if <cond>` / `unless <cond>`.
CONDITIONAL_KEYWORDS: frozenset[str] = frozenset(
    {
        "use_backend", "use-server", "http-request", "http-response", "http-after-response",
        "tcp-request", "tcp-response", "redirect", "force-persist", "ignore-persist", "stick",
        "monitor", "block", "stats", "errorloc", "quic-initial",
    }
)  # fmt: skip


# ... and those among them whose condition comes right after the keyword.
_CONDITION_FIRST: frozenset[str] = frozenset({"force-persist", "ignore-persist", "block"})


class Stmt(NamedTuple):
    """A statement with its words: ``words`` as HAProxy reads them (prefix included).

    A tuple, because a config has one per line and tuples are the cheapest to build.
    """

    node: Line
    words: tuple[str, ...]
    keyword: str
    prefix: str | None

    @property
    def args(self) -> tuple[str, ...]:
        """The words after the keyword."""
        return self.words[2:] if self.prefix else self.words[1:]

    @property
    def src(self) -> Source | None:
        return self.node.src

    @property
    def offset(self) -> int:
        """Index of the keyword in ``words`` (1 after a ``no``/``default`` prefix)."""
        return 1 if self.prefix else 0


_new_stmt = tuple.__new__


def to_stmt(line: Line) -> Stmt:
    """A line's ``Stmt``."""
    src = line.src
    # A parsed line's values are its words (the printer relies on the same identity).
    words = src.values if src is not None else statement_words(line)  # type: ignore[arg-type]
    first = words[0]
    if first in PREFIXES and len(words) > 1:
        return _new_stmt(Stmt, (line, words, words[1], first))
    return _new_stmt(Stmt, (line, words, first, None))


def split_condition(stmt: Stmt) -> tuple[Condition | None, int]:
    """The ``if``/``unless`` condition ending a rule statement, and the index of its first word.

    The condition starts at the first ``if`` or ``unless`` after the keyword's first argument
    (an action name such as ``deny``), and is parsed with HAProxy's rules
    (``compiler.statements.parse_condition``). Returns ``(None, -1)`` when there is none, or
    when the words after ``if`` do not form a condition.
    """
    node = stmt.node
    if isinstance(node, UseBackend):
        if node.condition is None:
            return None, -1
        return node.condition, 2
    if stmt.keyword not in CONDITIONAL_KEYWORDS:
        return None, -1
    words = stmt.words
    start = stmt.offset + (1 if stmt.keyword in _CONDITION_FIRST else 2)
    for index in range(start, len(words)):
        if words[index] in CONDITION_KEYWORDS:
            try:
                return parse_condition(words[index:]), index
            except ConditionError:
                return None, -1
    return None, -1


def is_dynamic(name: str) -> bool:
    """A name built at run time (a sample expression or an environment variable)."""
    return "%[" in name or "$" in name


_IDENT = re.compile(r"[A-Za-z0-9_.:-]+")


def tokens(words: Iterable[str]) -> set[str]:
    """Every identifier-like piece of ``words`` (used to find names referred to anywhere)."""
    found: set[str] = set()
    for word in words:
        found.update(_IDENT.findall(word))
        found.update(piece for piece in re.split(r"[,()/\s]", word) if piece)
    return found
