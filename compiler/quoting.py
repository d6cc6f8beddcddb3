"""Spelling argument values so HAProxy reads them back exactly.

HAProxy (``parse_line`` in src/tools.c) splits a line on unquoted blanks, ends it at an
unquoted ``#`` or any CR, expands ``$VAR`` only inside double quotes, and processes backslash
escapes outside single quotes. A value
printed by ``quote_arg`` can therefore never start a new word, a comment, a new statement or
an environment expansion. The parser's word splitter (``grammar.lexer``) is the inverse;
``tests/test_quoting.py`` holds them to that.
"""

from __future__ import annotations

import re

# Characters that mean nothing special to HAProxy's line splitter or condition parser when
# they stand in a word. `{`, `}` and `!` are left out (condition syntax), and so is `$`,
# which HAProxy expands inside double quotes.
_BARE = re.compile(r"[A-Za-z0-9_.:/@%+,=~*^()\[\]<>|&;?-]+")
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
    if _BARE.fullmatch(value):
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
    if not char.isprintable():
        code = ord(char)
        if code < 0x100:
            return f"\\x{code:02x}"
        # HAProxy has no escape for code points beyond a byte; UTF-8 passes through as is.
        return char
    return char
