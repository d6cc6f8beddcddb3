"""HAProxy configuration text -> ``compiler.ast.Config``.

Three steps: ``grammar.lexer.lex`` splits the text into lines and words exactly as HAProxy
does; each line is typed by its first word (section header, directive, comment, blank or
statement); ``parse_lines`` groups the lines into sections as ``haproxy.lark`` defines it,
building each node as it goes. What a statement means is recognised by
``compiler.statements.build_statement``, not by the grammar. ``grammar.lalr`` holds the Lark
machinery (line lexer, callbacks, the parser built at first use).

Every node keeps its line's ``Source``; concatenating ``src.text`` over all nodes in document
order (preamble, then each section's header and body) gives back the input exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from compiler.ast import Config
from compiler.perf import paused_gc
from grammar.lexer import LexedLine, lex

if TYPE_CHECKING:
    from lark import Lark

__all__ = ["load_parser", "parse", "parse_lines"]


def parse_lines(lines: list[LexedLine], *, file: str | None = None) -> Config:
    """Group already lexed lines into a ``Config`` with Lark's LALR parser for
    ``haproxy.lark`` (``grammar.lalr``), which builds each node as it reduces its line."""
    from grammar.lalr import parse_lines_lark

    return parse_lines_lark(lines, file=file)


def load_parser(cache: str | bool = True) -> Lark:
    """Lark's LALR parser for ``haproxy.lark`` (``grammar.lalr``), built at its first use."""
    from grammar.lalr import load_parser as load

    return load(cache)


def parse(text: str, *, file: str | None = None) -> Config:
    """Parse a configuration; ``file`` only names it in errors. Raises ``ParseError``.

    The cyclic garbage collector is paused meanwhile: parsing allocates about ten objects
    per line, none of them in a cycle, and the collector's passes over that growing heap
    would roughly double the time (measured on a 100k-line config).
    """
    with paused_gc():
        return parse_lines(lex(text, file), file=file)
