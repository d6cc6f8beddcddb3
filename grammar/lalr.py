"""Lark's LALR parser for ``haproxy.lark``: the definition of how lines group into sections.

``grammar.parser.parse_lines`` runs every parse through it: the round trip of each compile,
``lint`` and ``fmt``. ``_LineLexer`` types each line by its first word and hands one token per
line to the parser; ``_Builder`` turns the groups into AST nodes as the parser reduces them,
so no parse tree is built. Imported at the first parse, not at import time (the handler's
cold start does not pay for Lark).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput
from lark.lexer import Lexer, LexerState

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
from compiler.errors import ParseError
from compiler.statements import build_statement
from grammar.lexer import LexedLine
from grammar.sections import SECTION_KEYWORDS

__all__ = ["load_parser", "parse_lines_lark"]

_GRAMMAR = Path(__file__).with_name("haproxy.lark")
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


def _section(line: LexedLine, body: tuple[Line, ...]) -> Section:
    values = line.values
    kind = values[0]
    src = _source(line)
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


class _LineLexer(Lexer):
    """One token per physical line, typed by the line's first word; the value is the line."""

    __future_interface__ = 2  # lex(lexer_state, parser_state); lexer_state.text is our input

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Token]:
        lines = cast(list[LexedLine], lexer_state.text)  # parse_lines() passes the lines
        sections = SECTION_KEYWORDS
        for line in lines:
            values = line.values
            if values:
                first = values[0]
                if first in sections:
                    yield Token("SECTION_HEADER", line)
                elif first[:1] == ".":
                    yield Token("DIRECTIVE", line)
                else:
                    yield Token("STATEMENT", line)
            elif line.comment is not None and line.comment[:1] == "#":
                yield Token("COMMENT", line)
            else:
                yield Token("BLANK", line)


def _line_node(token: Token) -> Line:
    line: LexedLine = token.value
    kind = token.type
    node: Line
    if kind == "STATEMENT":
        node = build_statement(line.values)
    elif kind == "COMMENT":
        assert line.comment is not None
        node = Comment(line.comment[1:])
    elif kind == "BLANK":
        node = Blank()
    else:  # DIRECTIVE (a section header never reaches here: the grammar starts a section)
        values = line.values
        node = Directive(values[0], values[1:])
    _SET(node, "src", _source(line))
    return node


class _Document:
    """The parse so far: the preamble, then the finished sections."""

    __slots__ = ("preamble", "sections")

    def __init__(self, preamble: list[Line]) -> None:
        self.preamble = preamble
        self.sections: list[Section] = []


class _Builder(Transformer[Token, _Document]):
    """The LALR parser's callbacks: one per reduction, i.e. one per line (no parse tree).

    A section grows as ``[header line, node, node, ...]`` and becomes a ``Section`` once the
    next section (or the end of the input) closes it.
    """

    def preamble(self, children: list[Any]) -> list[Line]:
        if not children:
            return []
        lines: list[Line] = children[0]
        lines.append(_line_node(children[1]))
        return lines

    def section(self, children: list[Any]) -> list[Any]:
        if len(children) == 1:
            return [children[0].value]
        growing: list[Any] = children[0]
        growing.append(_line_node(children[1]))
        return growing

    def start(self, children: list[Any]) -> _Document:
        if len(children) == 1:
            return _Document(children[0])
        document: _Document = children[0]
        header, *body = children[1]
        document.sections.append(_section(header, tuple(body)))
        return document


_PARSER: Lark | None = None


def load_parser(cache: str | bool = True) -> Lark:
    """The LALR parser, built at its first use; the first call's ``cache`` wins.

    ``cache=True`` keeps Lark's cache of the tables in the temp dir; a path reads the cache
    from that file (a read-only one included: Lark then only fails to refresh it).
    """
    global _PARSER
    if _PARSER is None:
        _PARSER = Lark(
            _GRAMMAR.read_text(encoding="utf-8"),
            parser="lalr",
            lexer=_LineLexer,
            transformer=_Builder(),
            cache=cache,
        )
    return _PARSER


def parse_lines_lark(lines: list[LexedLine], *, file: str | None = None) -> Config:
    """Group already lexed lines into a ``Config`` with Lark's LALR parser."""
    try:
        document = cast(_Document, (_PARSER or load_parser()).parse(lines))
    except UnexpectedInput as error:
        raise _parse_error(error, lines, file) from None
    return Config(tuple(document.sections), tuple(document.preamble))


def _parse_error(error: UnexpectedInput, lines: list[LexedLine], file: str | None) -> ParseError:
    """A Lark error (which this grammar should never raise) as a located ``ParseError``."""
    token = getattr(error, "token", None)
    if isinstance(token, Token) and isinstance(token.value, LexedLine):
        line: LexedLine = token.value
        kind = token.type.lower().replace("_", " ")
        col = line.raw_words[0].col if line.raw_words else len(line.indent) + 1
        return ParseError(f"unexpected {kind}", file=file, line=line.number, col=col)
    last = lines[-1].number if lines else None
    return ParseError(
        "unexpected end of input", file=file, line=last, col=None if last is None else 1
    )
