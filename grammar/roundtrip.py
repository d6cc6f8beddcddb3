"""Print -> parse -> compare: the check every compile (and Cosmonaut) relies on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from compiler.ast import (
    Blank,
    Bundle,
    Comment,
    Config,
    Line,
    MapFile,
    Section,
    section_header_words,
)
from compiler.errors import InternalError
from compiler.printer import CONFIG_NAME, print_bundle, print_config
from grammar.maps import parse_map
from grammar.parser import parse


def print_verified(config: Config) -> str:
    """Print ``config`` and prove the text parses back to the same AST.

    Raises ``InternalError`` naming the first differing node; nothing should be written then.
    """
    text = print_config(config)
    verify_round_trip(config, text)
    return text


def print_verified_bundle(bundle: Bundle) -> dict[str, str]:
    """Print every file of ``bundle`` (the config first, as ``CONFIG_NAME``) and prove each
    parses back to what was meant; a mismatch in any file is an ``InternalError``."""
    files = print_bundle(bundle)
    verify_round_trip(bundle.config, files[CONFIG_NAME])
    for map_file in bundle.maps:
        parsed = parse_map(files[map_file.name], map_file.name)
        if parsed != map_file:
            difference = _first_entry_difference(map_file, parsed)
            raise InternalError(
                f"round trip mismatch in {map_file.name}: {difference}", file=map_file.name
            )
    return files


def _first_entry_difference(want: MapFile, got: MapFile) -> str:
    for index, (left, right) in enumerate(zip(want.entries, got.entries, strict=False)):
        if left != right:
            return f"line {index + 1}: expected {left!r}, got {right!r}"
    return f"expected {len(want.entries)} entries, got {len(got.entries)}"


def verify_round_trip(config: Config, text: str) -> None:
    parsed = parse(text, file="<generated>")
    if not _same_without_blanks(config, parsed):
        expected = without_layout(config)
        parsed = without_layout(parsed)
        raise InternalError(
            f"round trip mismatch: {first_difference(expected, parsed)}", file="<generated>"
        )


def _same_without_blanks(expected: Config, parsed: Config) -> bool:
    """``without_layout(expected) == without_layout(parsed)``, without the copies."""
    if len(expected.sections) != len(parsed.sections):
        return False
    if _layout_free(expected.preamble) != _layout_free(parsed.preamble):
        return False
    for want, got in zip(expected.sections, parsed.sections, strict=True):
        if type(want) is not type(got):
            return False
        # Type, header words and body are every field a section compares.
        if section_header_words(want) != section_header_words(got):
            return False
        if _layout_free(want.body) != _layout_free(got.body):
            return False
    return True


def without_layout(config: Config, *, strip_comments: bool = False) -> Config:
    """What must survive a print or a format: blank lines are layout the printer decides;
    with ``strip_comments``, a comment's trailing blanks are too (``fmt`` drops them, while a
    compiled config's comments must come back exactly)."""
    return Config(
        tuple(
            replace(section, body=_layout_free(section.body, strip_comments))
            for section in config.sections
        ),
        _layout_free(config.preamble, strip_comments),
    )


def _layout_free(lines: Sequence[Line], strip_comments: bool = False) -> tuple[Line, ...]:
    if not strip_comments:  # the compile's round trip: the fast path
        return tuple(line for line in lines if not isinstance(line, Blank))
    return tuple(
        Comment(line.text.rstrip()) if isinstance(line, Comment) else line
        for line in lines
        if not isinstance(line, Blank)
    )


def first_difference(expected: Config, actual: Config) -> str:
    """Describe the first node where two configs differ."""
    found = _first_line_difference("preamble", expected.preamble, actual.preamble)
    if found:
        return found
    for index, (want, got) in enumerate(zip(expected.sections, actual.sections, strict=False)):
        if section_header_words(want) != section_header_words(got) or type(want) is not type(got):
            return f"section {index + 1}: expected {_header(want)!r}, got {_header(got)!r}"
        found = _first_line_difference(_header(want), want.body, got.body)
        if found:
            return found
    if len(expected.sections) != len(actual.sections):
        return f"expected {len(expected.sections)} sections, got {len(actual.sections)}"
    return "no difference"


def _first_line_difference(where: str, want: Sequence[Line], got: Sequence[Line]) -> str | None:
    for index, (left, right) in enumerate(zip(want, got, strict=False)):
        if left != right:
            return f"{where}, line {index + 1}: expected {left!r}, got {right!r}"
    if len(want) != len(got):
        return f"{where}: expected {len(want)} lines, got {len(got)}"
    return None


def _header(section: Section) -> str:
    return " ".join(section_header_words(section))
