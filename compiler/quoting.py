"""Spelling argument values so HAProxy reads them back exactly.

HAProxy (``parse_line`` in src/tools.c) splits a line on unquoted blanks, ends it at an
unquoted ``#`` or any CR, expands ``$VAR`` only inside double quotes, and processes backslash
escapes outside single quotes. A value
printed by ``quote_arg`` can therefore never start a new word, a comment, a new statement or
an environment expansion. The parser's word splitter (``grammar.lexer``) is the inverse;
``tests/compiler/test_quoting.py`` holds them to that.
"""

from __future__ import annotations

import re

# Characters that mean nothing special to HAProxy's line splitter. `$` is left out (HAProxy
# expands it inside double quotes; quoting it keeps it literal on every version), and so are
# `{`, `}` and `!` for readability only: quoting does not hide them from the condition
# parser, which sees unquoted words.
BARE_WORD = re.compile(r"[A-Za-z0-9_.:/@%+,=~*^()\[\]<>|&;?-]+")
_DOUBLE_QUOTE_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "$": "\\$",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


class UnprintableValueError(ValueError):
    """A value HAProxy cannot represent in a config file (a NUL byte)."""


def quote_arg(value: str) -> str:
    """The shortest safe spelling of ``value`` as one HAProxy word."""
    if BARE_WORD.fullmatch(value):
        return value
    if "\x00" in value:
        raise UnprintableValueError("a NUL byte cannot appear in an HAProxy configuration")
    if "'" not in value and value.isprintable():
        return f"'{value}'"
    return '"' + "".join(_escape(char) for char in value) + '"'


def _escape(char: str) -> str:
    escaped = _DOUBLE_QUOTE_ESCAPES.get(char)
    if escaped is not None:
        return escaped
    if char.isascii() and not char.isprintable():
        return f"\\x{ord(char):02x}"
    # `\xHH` is one raw byte to HAProxy, not a code point: anything beyond ASCII passes
    # through as UTF-8, which HAProxy never treats as a blank or a quote.
    return char
