"""AST -> haproxy.cfg text. Deterministic: the same AST always gives the same bytes.

Two layouts:

* ``canonical`` (what ``compile`` emits and ``fmt`` writes): section headers flush left,
  statements and comments inside a section indented four spaces, single spaces between
  words, one blank line between sections. Comments after a section's last statement belong
  visually to the next section and are printed flush left just above its header. Words keep
  their original spelling when the node came from a file, so formatting changes layout only.
* ``lossless``: every node that came from a file is printed exactly as it was read, so
  ``print(parse(text), layout="lossless") == text`` byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from compiler.ast import (
    Blank,
    Comment,
    Config,
    Directive,
    Line,
    Section,
    Source,
    section_header_words,
)
from compiler.quoting import UnprintableValueError, quote_arg
from compiler.statements import statement_words

Layout = Literal["canonical", "lossless"]
INDENT = "    "
# Generated configs repeat the same words (keywords, `check`, `cookie`, ...) all the time.
_spell = lru_cache(maxsize=1 << 14)(quote_arg)


def print_config(config: Config, layout: Layout = "canonical") -> str:
    if layout == "lossless":
        return _lossless(config)
    out: list[str] = []
    pending = _emit_body(out, config.preamble, indent="")
    for section in config.sections:
        if out:
            out.append("\n")
        for line in pending:
            out.append(_line_text(line, ""))
        out.append(_words_line(section_header_words(section), section.src, ""))
        pending = _emit_body(out, section.body, indent=INDENT)
    if pending:
        if out:
            out.append("\n")
        out.extend(_line_text(line, "") for line in pending)
    return "".join(out)


def _emit_body(out: list[str], body: Sequence[Line], indent: str) -> list[Comment]:
    """Emit a body; return its trailing comments, which the next section header takes."""
    end = len(body)
    while end and isinstance(body[end - 1], Comment | Blank):
        end -= 1
    previous_blank = True  # no blank line right after a header
    for line in body[:end]:
        if isinstance(line, Blank):
            if not previous_blank:
                out.append("\n")
            previous_blank = True
            continue
        previous_blank = False
        out.append(_line_text(line, "" if isinstance(line, Directive) else indent))
    return [line for line in body[end:] if isinstance(line, Comment)]


def _line_text(line: Line, indent: str) -> str:
    if isinstance(line, Comment):
        return f"{indent}#{line.text.rstrip()}\n"
    if isinstance(line, Blank):
        return "\n"
    if isinstance(line, Directive):
        return _words_line((line.name, *line.args), line.src, indent)
    return _words_line(statement_words(line), line.src, indent)


def _words_line(words: Sequence[str], src: Source | None, indent: str) -> str:
    if src is not None and src.values == tuple(words):
        # Unchanged since it was read: keep the author's spelling (formatting is layout only).
        spelled = " ".join(word.raw for word in src.words)
    else:
        if words and words[-1] == "":
            # HAProxy drops an empty last word (parse_line): it cannot be written.
            raise UnprintableValueError(f"an empty last argument cannot be printed: {words!r}")
        spelled = " ".join(map(_spell, words))
    if src is not None and src.comment is not None:
        spelled = f"{spelled} {src.comment.rstrip()}"
    return f"{indent}{spelled}\n"


def _lossless(config: Config) -> str:
    out: list[str] = []
    _lossless_body(out, config.preamble)
    for section in config.sections:
        _lossless_line(out, section.src, section_header_words(section), "")
        _lossless_body(out, section.body)
    return "".join(out)


def _lossless_body(out: list[str], body: Sequence[Line]) -> None:
    for line in body:
        if line.src is not None:
            out.append(line.src.text)
        else:
            out.append(_line_text(line, INDENT))


def _lossless_line(out: list[str], src: Source | None, words: Sequence[str], indent: str) -> None:
    out.append(src.text if src is not None else _words_line(words, None, indent))


def section_name(section: Section) -> str:
    return " ".join(section_header_words(section)[:2])
