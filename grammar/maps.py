"""HAProxy map (and ACL pattern) file text -> ``compiler.ast.MapEntry`` lines.

Reads a file the way HAProxy's ``pat_ref_read_from_file_smp`` does: a line whose first
character is ``#`` is a comment; leading blanks (space, tab) are skipped; an empty line is
ignored; the key runs to the first blank or line end, the value (maps only) is the rest of
the line with its edge blanks removed. There is no quoting and no escaping.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.ast import MapEntry, MapFile, Source
from compiler.printer import MAP_BLANKS, MAP_COMMENT


@dataclass(frozen=True, slots=True)
class MapProblem:
    """A line HAProxy would misread or refuse; ``line`` and ``col`` are 1-based."""

    line: int
    col: int
    message: str


def _split(text: str) -> list[tuple[int, str, str]]:
    """(line number, line without its ending, the ending) for each physical line."""
    lines: list[tuple[int, str, str]] = []
    # HAProxy reads with fgets(): only "\n" ends a line (str.splitlines would split on more).
    pieces = text.split("\n")
    last = len(pieces) - 1
    for index, piece in enumerate(pieces):
        if index == last and not piece:
            break
        body = piece[:-1] if piece.endswith("\r") else piece
        ending = piece[len(body) :] + ("\n" if index < last else "")
        lines.append((index + 1, body, ending))
    return lines


def parse_map(text: str, name: str) -> MapFile:
    """The entries of a map file; comments and blank lines carry no meaning and are dropped.

    A line with a key and no value becomes an entry with an empty value (``map_problems``
    reports it).
    """
    entries: list[MapEntry] = []
    for number, body, ending in _split(text):
        found = _entry(body)
        if found is None:
            continue
        key, value, _ = found
        src = Source(number, body + ending, newline=ending, values=(key, value))
        entries.append(MapEntry(key, value, src))
    return MapFile(name, tuple(entries))


def _entry(body: str) -> tuple[str, str, int] | None:
    """(key, value, key column) of a line, or None for a comment or an empty line."""
    if body.startswith(MAP_COMMENT):
        return None
    start = len(body) - len(body.lstrip(MAP_BLANKS))
    if start == len(body):
        return None
    end = start
    while end < len(body) and body[end] not in MAP_BLANKS:
        end += 1
    value = body[end:].strip(MAP_BLANKS)
    return body[start:end], value, start + 1


def map_problems(text: str, *, with_values: bool = True) -> list[MapProblem]:
    """Lines of a map (``with_values``) or ACL pattern file (``-f``; a whole line is one
    pattern) that HAProxy would misread."""
    problems: list[MapProblem] = []
    for number, body, _ in _split(text):
        if "\x00" in body:
            problems.append(MapProblem(number, body.index("\x00") + 1, "a NUL byte"))
            continue
        if "\r" in body:
            message = "a carriage return inside the line ends it there for HAProxy"
            problems.append(MapProblem(number, body.index("\r") + 1, message))
            continue
        found = _entry(body)
        if found is None:
            continue
        key, value, col = found
        if with_values and not value:
            problems.append(MapProblem(number, col, f"map key {key!r} has no value"))
    return problems
