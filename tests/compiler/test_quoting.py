"""``quote_arg`` and the parser's word splitter are inverses."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from compiler.ast import Config, GenericSection, Statement
from compiler.printer import print_config
from compiler.quoting import UnprintableValueError, quote_arg
from grammar.lexer import lex

# Any text HAProxy can hold: everything but NUL (surrogates are not text).
VALUES = st.text(st.characters(exclude_characters="\x00"))


def words_of(line: str) -> tuple[str, ...]:
    (lexed,) = lex(line + "\n")
    return lexed.values


@given(VALUES.filter(bool))
@example("a b")
@example("#")
@example("it's")
@example("$HOME")
@example("${X-a b}")
@example("it's $HOME")
@example("\\")
@example("\\.")
@example("a\\'b")
@example('"')
@example("\t\r\n\x1c\x85\xa0\u3000")
@example("{")
@example(".if")
@example("é")
def test_quoted_value_reads_back(value: str) -> None:
    assert words_of("k " + quote_arg(value)) == ("k", value)
    assert words_of("k " + quote_arg(value) + " x") == ("k", value, "x")
    assert words_of("k " + quote_arg(value) + " # c") == ("k", value)


def test_printer_refuses_an_empty_last_word() -> None:
    # HAProxy drops an empty word at the end of a line, so no spelling of it exists.
    config = Config((GenericSection("program", ("p",), (Statement("command", ("x", "")),)),))
    with pytest.raises(UnprintableValueError):
        print_config(config)


def test_empty_value_survives_before_another_word() -> None:
    assert words_of("k " + quote_arg("") + " x") == ("k", "", "x")


def test_nul_is_refused() -> None:
    with pytest.raises(UnprintableValueError):
        quote_arg("a\x00b")


@given(st.lists(VALUES, min_size=1, max_size=4))
@example(["set-header", "Strict-Transport-Security", "max-age=31536000; includeSubDomains"])
@example(["a b", "c"])
def test_printed_statement_reads_back_word_for_word(words: list[str]) -> None:
    # The printer's all-bare fast path must not take a word holding a space for two words.
    if words[-1] == "":
        words = [*words, "x"]  # an empty last word has no spelling (test above)
    config = Config((GenericSection("program", ("p",), (Statement("command", tuple(words)),)),))
    (line,) = [line for line in print_config(config).split("\n") if "command" in line]
    assert words_of(line) == ("command", *words)
