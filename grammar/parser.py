"""HAProxy configuration text -> ``compiler.ast.Config``.

Three steps: ``grammar.lexer.lex`` splits the text into lines and words exactly as HAProxy
does; each line is typed by its first word (section header, directive, comment, blank or
statement); ``parse_lines`` groups the lines into sections as ``haproxy.lark`` defines it,
building each node as it goes. What a statement means is recognised by
``compiler.statements.build_statement``, not by the grammar. ``grammar.lalr`` is Lark's
LALR parser for the same grammar, the reference ``parse_lines`` is tested against.

Every node keeps its line's ``Source``; concatenating ``src.text`` over all nodes in document
order (preamble, then each section's header and body) gives back the input exactly.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from compiler.ast import (
    Backend,
    Blank,
    Comment,
    Config,
    Defaults,
    Directive,
    Frontend,
    GenericSection,
    Global,
    Line,
    Section,
    Source,
)
from compiler.perf import paused_gc
from compiler.statements import build_statement
from grammar.lexer import LexedLine, lex
from grammar.sections import SECTION_KEYWORDS

if TYPE_CHECKING:
    from lark import Lark

__all__ = ["parse", "parse_file", "parse_lines", "parse_lines_lark"]

_SET = object.__setattr__  # nodes are frozen; the builder sets ``src`` once, right after creation


def _source(line: LexedLine) -> Source:
    comment = line.comment
    if comment is not None and comment[:1] != "#":
        # Text after a stray carriage return: HAProxy ignores it, but it is no comment and
        # a printer must not move it after a blank (where HAProxy would read it).
        comment = None
    # tuple.__new__ skips the named tuple's Python-level __new__: one Source per line.
    number, text, newline, indent, spelled, values, _ = line
    return _new_tuple(Source, (number, text, indent, spelled, comment, newline, values))


_new_tuple = tuple.__new__


def _section(line: LexedLine, body: tuple[Line, ...], sources: bool = True) -> Section:
    values = line.values
    kind = values[0]
    src = _source(line) if sources else None
    if kind == "global":
        return Global(body, values[1:], src)
    if kind == "defaults":
        return Defaults(body, values[1:], src)
    if len(values) > 1:
        if kind == "frontend":
            return Frontend(values[1], body, values[2:], src)
        if kind == "backend":
            return Backend(values[1], body, values[2:], src)
    return GenericSection(kind, values[1:], body, src)


def parse_lines(lines: list[LexedLine], *, file: str | None = None, sources: bool = True) -> Config:
    """Group already lexed lines into a ``Config``.

    ``sources=False`` leaves every ``src`` out (``None``): for a caller that only compares
    nodes, which ignores ``src`` (the round trip), that is a tenth of the parse saved.

    ``haproxy.lark`` is the definition of the grouping; this is its fast implementation. The
    grammar's language is every sequence of line tokens (lines before the first header form
    the preamble, each header starts a section that holds the lines up to the next one), so
    a plain loop recognises it exactly and builds the same nodes as the LALR parser's
    callbacks, without Lark's per-token machinery (a third of the parse time, measured).
    tests/test_grammar.py checks that both give the same ``Config`` (``parse_lines_lark``).
    """
    sections: list[Section] = []
    preamble: list[Line] = []
    body: list[Line] = preamble
    header: LexedLine | None = None
    keywords = SECTION_KEYWORDS
    append = body.append
    # Without sources, nodes are immutable values of their line's words, so lines the lexer
    # gave the same words (the same tuple: it lexes each distinct line once) share one node.
    shared: dict[int, Line] | None = None if sources else {}
    for line in lines:
        values = line.values
        node: Line
        if shared is not None:
            found = shared.get(id(values))
            if found is not None:
                append(found)
                continue
        if values:
            first = values[0]
            if first in keywords:
                if header is not None:
                    sections.append(_section(header, tuple(body), sources))
                header = line
                body = []
                append = body.append
                continue
            node = Directive(first, values[1:]) if first[:1] == "." else build_statement(values)
        elif line.comment is not None and line.comment[:1] == "#":
            node = Comment(line.comment[1:])
        else:
            node = Blank()
        if shared is None:
            _SET(node, "src", _source(line))
        elif values:  # `()` is one shared tuple for blank and comment lines alike
            shared[id(values)] = node
        append(node)
    if header is not None:
        sections.append(_section(header, tuple(body), sources))
    return Config(tuple(sections), tuple(preamble))


def load_parser(cache: str | bool = True) -> Lark:
    """Lark's LALR parser for ``haproxy.lark`` (``grammar.lalr``), built at its first use."""
    from grammar.lalr import load_parser as load

    return load(cache)


def parse_lines_lark(lines: list[LexedLine], *, file: str | None = None) -> Config:
    """``parse_lines`` through Lark's LALR parser for ``haproxy.lark`` (``grammar.lalr``):
    the reference the fast loop is tested against."""
    from grammar.lalr import parse_lines_lark as parse_with_lark

    return parse_with_lark(lines, file=file)


def parse(text: str, *, file: str | None = None, sources: bool = True) -> Config:
    """Parse a configuration; ``file`` only names it in errors. Raises ``ParseError``.
    ``sources=False``: no ``src`` on the nodes (see ``parse_lines``).

    The cyclic garbage collector is paused meanwhile: parsing allocates about ten objects
    per line, none of them in a cycle, and the collector's passes over that growing heap
    would roughly double the time (measured on a 100k-line config).
    """
    with paused_gc():
        return parse_lines(lex(text, file), file=file, sources=sources)


def parse_file(path: str | PathLike[str]) -> Config:
    """Read and parse a file. Bytes that are not UTF-8 are kept (``surrogateescape``)."""
    text = Path(path).read_bytes().decode("utf-8", "surrogateescape")
    return parse(text, file=str(path))
