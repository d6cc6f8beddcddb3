"""AST -> haproxy.cfg text. Deterministic: the same AST always gives the same bytes.

Two layouts:

* ``canonical`` (what ``compile`` emits and ``fmt`` writes): section headers flush left,
  statements and comments inside a section indented four spaces, single spaces between
  words, one blank line between sections. Comments after a section's last statement belong
  visually to the next section and are printed flush left just above its header, except
  comments read from a file that were indented deeper than that header: those stay, indented,
  at the end of their section (a commented-out server, say). Words keep their original
  spelling when the node came from a file, so formatting changes layout only.
* ``lossless``: every node that came from a file is printed exactly as it was read, so
  ``print(parse(text), layout="lossless") == text`` byte for byte.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Literal

from compiler.ast import (
    Blank,
    Bundle,
    Comment,
    Config,
    Directive,
    Line,
    MapEntry,
    MapFile,
    Source,
    section_header_words,
)
from compiler.quoting import BARE_WORD, UnprintableValueError, quote_arg
from compiler.statements import STATEMENT_SPELLERS, statement_words

Layout = Literal["canonical", "lossless"]
CONFIG_NAME = "haproxy.cfg"  # the config's name in a bundle when it is not written to a file
INDENT = "    "
# Generated configs repeat the same words (keywords, `check`, `cookie`, ...) all the time.
_spell = lru_cache(maxsize=1 << 14)(quote_arg)
# Words that quote_arg leaves bare (compiler.quoting.BARE_WORD), non-empty, joined by one space.
_BARE_WORDS = re.compile(rf"{BARE_WORD.pattern}(?: {BARE_WORD.pattern})*")


def print_config(config: Config, layout: Layout = "canonical") -> str:
    if layout == "lossless":
        return _lossless(config)
    out: list[str] = []
    sections = config.sections
    pending = _emit_body(out, config.preamble, indent="", next_header=None)
    for index, section in enumerate(sections):
        if out:
            out.append("\n")
        for line in pending:
            out.append(_line_text(line, ""))
        out.append(_words_line(section_header_words(section), section.src, ""))
        following = sections[index + 1] if index + 1 < len(sections) else section
        pending = _emit_body(out, section.body, indent=INDENT, next_header=following.src)
    if pending:
        if out:
            out.append("\n")
        out.extend(_line_text(line, "") for line in pending)
    return "".join(out)


def _emit_body(
    out: list[str], body: Sequence[Line], indent: str, next_header: Source | None
) -> list[Comment]:
    """Emit a body; return its trailing comments, which the next section header takes."""
    end = len(body)
    while end and isinstance(body[end - 1], Comment | Blank):
        end -= 1
    if indent:
        end = _kept_trailing_comments(body, end, next_header)
    previous_blank = True  # no blank line right after a header
    blank_due = False  # a blank line is printed only if something follows it
    for line in body[:end]:
        if isinstance(line, Blank):
            if not previous_blank:
                blank_due = True
            previous_blank = True
            continue
        if blank_due:
            out.append("\n")
            blank_due = False
        previous_blank = False
        out.append(_line_text(line, "" if isinstance(line, Directive) else indent))
    return [line for line in body[end:] if isinstance(line, Comment)]


def _kept_trailing_comments(body: Sequence[Line], end: int, next_header: Source | None) -> int:
    """Where a section really ends: after the trailing comments that belong to it.

    Those are the comments read from a file, after the last statement, indented deeper than
    the next section's header (or this section's, at the end of the file).
    """
    if next_header is None:
        return end
    header_indent = len(next_header.indent.expandtabs(8))
    kept = end
    for index in range(end, len(body)):
        line = body[index]
        if isinstance(line, Blank):
            continue
        src = line.src
        if src is None or len(src.indent.expandtabs(8)) <= header_indent:
            break
        kept = index + 1
    return kept


def _line_text(line: Line, indent: str) -> str:
    spell = STATEMENT_SPELLERS.get(type(line))
    if spell is not None:  # a statement: nearly every line
        return _words_line(spell(line), line.src, indent)
    if isinstance(line, Comment):
        return f"{indent}#{line.text.rstrip()}\n"
    if isinstance(line, Blank):
        return "\n"
    if isinstance(line, Directive):
        return _words_line((line.name, *line.args), line.src, indent)
    return _words_line(statement_words(line), line.src, indent)


def _words_line(words: Sequence[str], src: Source | None, indent: str) -> str:
    if src is None:
        joined = " ".join(words)
        # The count rules out a word that holds a space itself ("max-age=1; preload"), which
        # the regex alone would take for two bare words.
        if joined.count(" ") == len(words) - 1 and _BARE_WORDS.fullmatch(joined) is not None:
            # Every word is its own spelling (what quote_arg gives a bare word): one regex
            # for the line instead of a look-up per word.
            return f"{indent}{joined}\n"
    if src is not None and src.values == tuple(words):
        # Unchanged since it was read: keep the author's spelling (formatting is layout only).
        spelled = _respelled(src)
    else:
        if words and words[-1] == "":
            # HAProxy drops an empty last word (parse_line): it cannot be written.
            raise UnprintableValueError(f"an empty last argument cannot be printed: {words!r}")
        spelled = " ".join(map(_spell, words))
    if src is not None and src.comment is not None:
        spelled = f"{spelled} {src.comment.rstrip()}"
    return f"{indent}{spelled}\n"


def _respelled(src: Source) -> str:
    """The words of a line as written, joined by single spaces, with the same values.

    Two spellings need care once the blanks between words become one space: a word ending in
    an unescaped backslash (``a\\`` then a tab) would escape that space, so the backslash is
    doubled; and an empty last word (``k "" `` with a blank after it) only counts when a blank
    follows it, so the line keeps one.
    """
    if src.spelled is None:  # a plain line: its words are spelled as their values
        return " ".join(src.values)
    raws = [word.raw for word in src.spelled]
    followed = len(raws) if src.comment is not None else len(raws) - 1
    for index in range(followed):
        raw = raws[index]
        if raw.endswith("\\") and (len(raw) - len(raw.rstrip("\\"))) % 2:
            raws[index] = raw + "\\"
    spelled = " ".join(raws)
    values = src.values
    if src.comment is None and values and not values[-1] and len(values) == len(raws):
        spelled += " "
    return spelled


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


# --- map files ---------------------------------------------------------------------------

# HAProxy reads map lines into a buffer of `tune.bufsize` (16 KiB by default) and splits
# longer ones; stay well below it.
MAP_LINE_LIMIT = 8192
# How HAProxy's map reader (``pat_ref_read_from_file_smp``) reads a line, which the printer
# writes for and ``grammar.maps`` reads by: no quoting; a line starting with ``#`` is a
# comment; the key ends at the first of these blanks, and the value is trimmed of them.
MAP_COMMENT = "#"
MAP_BLANKS = " \t"
# A key holds none of these, nor any character that would end or cut its line.
_KEY_BLANKS = frozenset(MAP_BLANKS + "\r\n\v\f\x00")


def map_entry_problem(key: str, value: str) -> str | None:
    """Why ``key value`` cannot be one map line as HAProxy reads it, or ``None``.

    HAProxy's map reader (``pat_ref_read_from_file_smp``) has no quoting: a line starting
    with ``#`` is a comment, the key ends at the first blank, the value at the line's end
    with trailing blanks trimmed.
    """
    if not key or any(char in _KEY_BLANKS for char in key):
        return f"a map key must be non-empty and free of blanks: {key!r}"
    if key.startswith(MAP_COMMENT):
        return f"a map key cannot start with '#': {key!r}"
    if not value or value != value.strip(MAP_BLANKS) or any(c in "\r\n\x00" for c in value):
        return f"a map value must be non-empty, one line, without edge blanks: {value!r}"
    if len(key) + len(value) + 2 > MAP_LINE_LIMIT:
        return f"a map line is longer than {MAP_LINE_LIMIT} bytes"
    return None


def print_map(entries: Sequence[MapEntry]) -> str:
    """Map file text: one ``key value`` line per entry, in the given order."""
    out: list[str] = []
    for entry in entries:
        problem = map_entry_problem(entry.key, entry.value)
        if problem is not None:
            raise UnprintableValueError(problem)
        out.append(f"{entry.key} {entry.value}\n")
    return "".join(out)


def print_bundle(bundle: Bundle, config_name: str = CONFIG_NAME) -> dict[str, str]:
    """Every file of a bundle by name, the config first, then the maps in order."""
    files = {config_name: print_config(bundle.config)}
    for map_file in bundle.maps:
        files[map_file.name] = print_map(map_file.entries)
    return files


def map_file(kind: str, entries: Sequence[MapEntry]) -> MapFile:
    """A map file named after its content (``<kind>.<digest>.map``): a new bundle never
    overwrites a map an older config still refers to, so files can be replaced one by one."""
    digest = hashlib.sha256(print_map(entries).encode("utf-8")).hexdigest()[:12]
    return MapFile(f"{kind}.{digest}.map", tuple(entries))
