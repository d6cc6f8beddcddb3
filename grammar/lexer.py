"""HAProxy's line splitter, in pure Python.

``lex(text)`` cuts a configuration into physical lines and each line into words the way
HAProxy 2.6 does (``readcfgfile`` in ``src/cfgparse.c`` and ``parse_line`` in
``src/tools.c``), keeping every byte so that a line can be spelled back exactly:

* blanks (space, tab, vertical tab, form feed) separate words; a run of blanks may also
  contain carriage returns; leading blanks and carriage returns are the indent;
* an unquoted ``#`` starts a comment that runs to the end of the line, even inside a word;
* ``'...'`` is literal up to the next ``'``: no escapes, no ``$``;
* ``"..."`` allows backslash escapes and ``$`` environment references;
* quoted and unquoted parts join into one word (``abc"d e"'f'`` is ``abcd ef``);
* outside single quotes a backslash escapes the next character: ``\\ `` ``\\#`` ``\\\\``
  ``\\'`` ``\\"`` give the character itself, ``\\$`` gives ``$`` inside double quotes only
  (outside them it stays ``\\$``), ``\\t`` ``\\n`` ``\\r`` give TAB LF CR, ``\\xHH`` gives
  ``chr(0xHH)``; any other ``\\c`` keeps both characters (``\\.`` survives for regexes);
* environment references (``$NAME``, ``${NAME}``, ``${NAME-default}``, ``${NAME[*]}``)
  are checked the way HAProxy checks them but **not expanded**: a word's value keeps them as
  written (outside double quotes HAProxy does not expand them either);
* a carriage return that ends a word (not one in a run of blanks) ends what HAProxy reads of
  the line: the rest is ignored, like a comment;
* an empty word at the very end of the line (``k ""``, not followed by a blank) is dropped by
  HAProxy: it is kept in ``LexedLine.words`` but not in ``LexedLine.values``.

Errors HAProxy reports for a line (unterminated quote, bad ``\\x`` sequence, bad variable
name, unmatched ``${``) raise ``ParseError`` with the 1-based column HAProxy points at.
Columns count characters of the decoded text, not bytes.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from compiler.ast import SourceWord, plain_words
from compiler.errors import ParseError

__all__ = ["LexedLine", "Word", "lex", "lex_line"]

# Any character that needs the character scanner. Besides HAProxy's own special characters
# (quotes, backslash, '#', CR, NUL) this holds every character Python's str.split() treats as
# whitespace but HAProxy (isspace() in the C locale) does not, so that the fast path can use
# str.split(). tests/grammar/test_grammar.py checks this list against str.isspace().
_NEEDS_SCANNER = re.compile(
    "['\"\\\\#\r\x00\x1c-\x1f\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)
_BLANKS = " \t\v\f"
_INDENT_CHARS = " \t\v\f\r"
# A run of ordinary characters outside quotes, inside double quotes.
_PLAIN = re.compile("[^ \t\v\f\r\x00'\"\\\\#]+")
_PLAIN_DQ = re.compile('[^"\\\\$\r\x00]+')
# A separator: one blank, then any blanks or carriage returns (HAProxy's isspace() loop).
_SEPARATOR = re.compile("[ \t\v\f][ \t\v\f\r]*")
_HEX = frozenset("0123456789abcdefABCDEF")
_SIMPLE_ESCAPES = {
    " ": " ", "\\": "\\", "t": "\t", "n": "\n", "r": "\r", "#": "#", "'": "'", '"': '"'
}  # fmt: skip
_VAR_NAME_REST = re.compile("[A-Za-z0-9_]*")
_PSEUDO_VARIABLES = frozenset({".LINE", ".FILE", ".SECTION"})


class Word(NamedTuple):
    """One word: ``value`` is what HAProxy reads, ``raw`` the spelling, ``col`` 1-based."""

    value: str
    raw: str
    col: int


class LexedLine(NamedTuple):
    """One physical line, split into words.

    ``text`` is the whole line including its ending ``newline`` (``"\\n"``, ``"\\r\\n"`` or
    ``""`` for a last line without one). ``indent`` is the leading blanks, ``raw_words`` the
    words as written (``SourceWord`` objects, shared with the AST's ``Source``), ``values``
    the words HAProxy reads (see the module docstring for the one case where there are fewer
    values than raw words), ``comment`` the raw text HAProxy ignores at the end of the line:
    from an unquoted ``#`` (or, rarely, from a carriage return that ends a word) up to the
    line ending, or ``None``. ``number`` is the 1-based line number.

    Everything between these parts is blanks; ``separators`` recovers them, so that
    ``indent + w0 + s0 + w1 + ... + trailing + (comment or "") + newline == text``.
    """

    number: int
    text: str
    newline: str
    indent: str
    # None for a plain line (see compiler.ast.Source.spelled): `raw_words` finds them then.
    source_words: tuple[SourceWord, ...] | None
    values: tuple[str, ...]
    comment: str | None

    def __str__(self) -> str:
        return self.text

    @property
    def raw_words(self) -> tuple[SourceWord, ...]:
        if self.source_words is not None:
            return self.source_words
        return plain_words(self.text, self.values, len(self.indent))

    @property
    def words(self) -> tuple[Word, ...]:
        """All words as written, each with its value (``""`` for a dropped trailing word)."""
        values = self.values
        return tuple(
            Word(values[index] if index < len(values) else "", word.raw, word.col)
            for index, word in enumerate(self.raw_words)
        )

    @property
    def separators(self) -> tuple[tuple[str, ...], str]:
        """The blanks between consecutive words, and the blanks after the last word."""
        content = self.text[: len(self.text) - len(self.newline)]
        end = len(content) - (len(self.comment) if self.comment is not None else 0)
        if not self.raw_words:
            return (), content[len(self.indent) : end]
        gaps: list[str] = []
        previous_end = 0
        for index, word in enumerate(self.raw_words):
            start = word.col - 1
            if index:
                gaps.append(content[previous_end:start])
            previous_end = start + len(word.raw)
        return tuple(gaps), content[previous_end:end]


# Everything of a LexedLine but its number: the same text always lexes the same way, so
# repeated lines (blank lines, "    check", "    mode http") are lexed once per call.
_Layout = tuple[str, str, str, tuple[SourceWord, ...] | None, tuple[str, ...], str | None]
_Interned = dict[tuple[str, int], SourceWord]
_new_line = tuple.__new__


def lex(text: str, file: str | None = None) -> list[LexedLine]:
    """Split ``text`` into physical lines and each line into words (see the module doc).

    Raises ``ParseError`` for a line HAProxy would reject (see the module doc).
    """
    pieces = text.split("\n")
    last = pieces.pop()
    lines: list[LexedLine] = []
    append = lines.append
    layouts: dict[str, _Layout] = {}
    known = layouts.get
    interned: _Interned = {}
    number = 0
    # One search of the whole text instead of one per line: with nothing for the scanner
    # anywhere (no CR either, so no CRLF endings), every line takes the plain path.
    plain = _NEEDS_SCANNER.search(text) is None
    for piece in pieces:
        number += 1
        layout = known(piece)
        if layout is None:
            if plain:
                layout = _plain_layout(piece, "\n")
            elif piece[-1:] == "\r":
                layout = _layout(piece[:-1], "\r\n", number, file, interned)
            else:
                layout = _layout(piece, "\n", number, file, interned)
            layouts[piece] = layout
        append(_new_line(LexedLine, (number, *layout)))
    if last:
        number += 1
        append(LexedLine(number, *_layout(last, "", number, file, interned)))
    return lines


def lex_line(
    content: str, number: int = 1, file: str | None = None, newline: str = ""
) -> LexedLine:
    """Lex one line: ``content`` without its ending, which is given as ``newline``."""
    return LexedLine(number, *_layout(content, newline, number, file, {}))


def _layout(
    content: str, newline: str, number: int, file: str | None, interned: _Interned
) -> _Layout:
    if _NEEDS_SCANNER.search(content) is not None:
        return _scan(content, newline, number, file, interned)
    return _plain_layout(content, newline)


def _plain_layout(content: str, newline: str) -> _Layout:
    """Fast path: nothing but blanks and ordinary characters, so every word is spelled as its
    value; columns are found later, and only if someone asks (an error, a lint finding)."""
    words = content.split()
    if not words:
        return content + newline, newline, content, (), (), None
    indent = content[: len(content) - len(content.lstrip())] if content[0] in _BLANKS else ""
    return content + newline, newline, indent, None, tuple(words), None


def _scan(
    content: str, newline: str, number: int, file: str | None, interned: _Interned
) -> _Layout:
    """The character scanner, for lines with quotes, escapes, comments or odd characters."""
    length = len(content)
    position = len(content) - len(content.lstrip(_INDENT_CHARS))
    indent = content[:position]
    raw_words: list[SourceWord] = []
    values: list[str] = []
    comment: str | None = None
    separated = True  # whether the last word was followed by a separator
    plain = _PLAIN.match
    while position < length:
        char = content[position]
        if char == "#" or char == "\r" or char == "\x00":
            comment = content[position:]
            break
        start = position
        parts: list[str] = []
        separated = False
        while position < length:
            match = plain(content, position)
            if match is not None:
                parts.append(match.group())
                position = match.end()
                if position >= length:
                    break
            char = content[position]
            if char in _BLANKS or char == "#" or char == "\r" or char == "\x00":
                break
            if char == "'":
                close = content.find("'", position + 1)
                if close < 0 or _stops(content, position + 1, close):
                    raise _error("unmatched quote", file, number, position)
                parts.append(content[position + 1 : close])
                position = close + 1
            elif char == '"':
                position = _double_quoted(content, position, parts, file, number)
            else:  # backslash outside quotes
                position = _escape(content, position, parts, False, file, number)
        key = (content[start:position], start + 1)
        source_word = interned.get(key)
        if source_word is None:
            source_word = interned[key] = SourceWord(*key)
        raw_words.append(source_word)
        values.append("".join(parts))
        if position < length and content[position] in _BLANKS:
            separated = True
            separator = _SEPARATOR.match(content, position)
            assert separator is not None
            position = separator.end()
    if raw_words and not separated and not values[-1]:
        # HAProxy does not count an empty last word that no blank follows.
        values.pop()
    return content + newline, newline, indent, tuple(raw_words), tuple(values), comment


def _stops(content: str, start: int, end: int) -> bool:
    """Whether a carriage return or NUL (where HAProxy stops reading) lies in start:end."""
    return "\r" in content[start:end] or "\x00" in content[start:end]


def _double_quoted(
    content: str, quote: int, parts: list[str], file: str | None, number: int
) -> int:
    """Scan ``"..."`` starting at the opening quote; return the index after the closing one."""
    length = len(content)
    position = quote + 1
    plain = _PLAIN_DQ.match
    while True:
        match = plain(content, position)
        if match is not None:
            parts.append(match.group())
            position = match.end()
        if position >= length:
            raise _error("unmatched quote", file, number, quote)
        char = content[position]
        if char == '"':
            return position + 1
        if char == "\\":
            position = _escape(content, position, parts, True, file, number)
        elif char == "$":
            position = _variable(content, position, parts, file, number)
        else:  # CR or NUL: HAProxy stops reading the line inside the quotes
            raise _error("unmatched quote", file, number, quote)


def _escape(
    content: str,
    position: int,
    parts: list[str],
    in_double_quotes: bool,
    file: str | None,
    number: int,
) -> int:
    """Unescape the backslash at ``position``; return the index after the sequence."""
    following = content[position + 1 : position + 2]
    simple = _SIMPLE_ESCAPES.get(following)
    if simple is not None:
        parts.append(simple)
        return position + 2
    if following == "$" and in_double_quotes:
        parts.append("$")
        return position + 2
    if following == "x":
        digits = content[position + 2 : position + 4]
        if len(digits) != 2 or digits[0] not in _HEX or digits[1] not in _HEX:
            raise _error("truncated or invalid hexadecimal sequence", file, number, position)
        parts.append(chr(int(digits, 16)))
        return position + 4
    # Not an escape sequence: the backslash stays, the next character is read normally.
    parts.append("\\")
    return position + 1


def _variable(content: str, dollar: int, parts: list[str], file: str | None, number: int) -> int:
    """Check the environment reference at ``dollar`` (inside double quotes), keep it as is."""
    position = dollar + 1
    brace = -1
    if content.startswith("{", position):
        brace = position
        position += 1
    first = content[position : position + 1]
    if not first or not (first.isascii() and (first.isalpha() or first in "_.")):
        raise _error("forbidden first char in environment variable name", file, number, position)
    name_start = position
    if first == ".":
        position += 1
    name_end = _VAR_NAME_REST.match(content, position)
    assert name_end is not None
    position = name_end.end()
    if first == "." and content[name_start:position] not in _PSEUDO_VARIABLES:
        raise _error("forbidden first char in environment variable name", file, number, name_start)
    if brace >= 0:
        if content.startswith("[", position):
            if not content.startswith("[*]", position):
                raise _error("truncated or invalid word expansion sequence", file, number, position)
            position += 3
        if content.startswith("-", position):
            close = content.find("}", position)
            if close < 0:
                raise _error("unmatched brace in environment variable name", file, number, brace)
            position = close
        if not content.startswith("}", position):
            raise _error("unmatched brace in environment variable name", file, number, brace)
        position += 1
    parts.append(content[dollar:position])
    return position


def _error(message: str, file: str | None, number: int, index: int) -> ParseError:
    return ParseError(message, file=file, line=number, col=index + 1)
