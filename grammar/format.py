"""``fmt``: parse, then print in the canonical layout, and prove nothing but layout changed.

``format_text`` is pure (text in, text out). The layout is the printer's ``canonical`` one:
section headers flush left, statements indented four spaces, single spaces between words,
one blank line between sections, comments kept in place (see ``compiler.printer``). Words
keep their spelling: quoting, escapes and ``"$VAR"`` are never rewritten. A file whose first
line ends with CRLF keeps CRLF line endings.

Safety, as in black: before anything is returned, the result is parsed again and compared
with the input's AST (statements, their values, directives, comments; blank lines are layout)
and formatted a second time, which must change nothing. Any difference raises
``UnsafeFormatError`` and the caller writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from compiler.ast import Comment, Config, Line, Section
from compiler.errors import InternalError
from compiler.printer import print_config
from grammar.parser import parse
from grammar.roundtrip import first_difference, without_layout

__all__ = ["UnsafeFormatError", "difference", "format_config", "format_text"]


class UnsafeFormatError(InternalError):
    """Formatting would change meaning, or is not stable: a bug; nothing is written."""


def format_config(config: Config, *, newline: str = "\n") -> str:
    """The canonical text of a parsed config (no safety checks; see ``format_text``)."""
    text = print_config(config, layout="canonical")
    if newline != "\n":
        text = text.replace("\n", newline)
    return text


def format_text(text: str, *, file: str = "<input>") -> str:
    """Format ``text``; raises ``ParseError`` (bad input) or ``UnsafeFormatError`` (a bug)."""
    original = parse(text, file=file)
    newline = "\r\n" if text.split("\n", 1)[0].endswith("\r") and "\n" in text else "\n"
    formatted = format_config(original, newline=newline)
    try:
        reparsed = parse(formatted, file=file)
    except Exception as error:  # the printer wrote something the parser refuses
        raise UnsafeFormatError(f"formatted text does not parse: {error}", file=file) from None
    problem = difference(original, reparsed)
    if problem is not None:
        raise UnsafeFormatError(f"formatting would change the config: {problem}", file=file)
    again = format_config(reparsed, newline=newline)
    if again != formatted:
        raise UnsafeFormatError("formatting is not stable (a second pass changes it)", file=file)
    return formatted


def difference(first: Config, second: Config) -> str | None:
    """What differs between two configs, ignoring layout; ``None`` when they are the same."""
    left = without_layout(first, strip_comments=True)
    right = without_layout(second, strip_comments=True)
    if left != right:
        return first_difference(left, right)
    left_comments, right_comments = list(_comments(first)), list(_comments(second))
    if left_comments != right_comments:
        for index, (want, got) in enumerate(zip(left_comments, right_comments, strict=False)):
            if want != got:
                return f"comment {index + 1}: expected {want!r}, got {got!r}"
        return f"expected {len(left_comments)} comments, got {len(right_comments)}"
    return None


def _comments(config: Config) -> Iterator[str]:
    """Every comment, full-line or trailing, in document order (right-stripped)."""

    def of(lines: Sequence[Line | Section]) -> Iterator[str]:
        for line in lines:
            if isinstance(line, Comment):
                yield line.text.rstrip()
            elif line.src is not None and line.src.comment is not None:
                yield line.src.comment[1:].rstrip()

    yield from of(config.preamble)
    for section in config.sections:
        yield from of((section,))
        yield from of(section.body)
