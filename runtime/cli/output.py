"""What the file commands (lint, fmt) print: text safe for any terminal, counted nouns."""

from __future__ import annotations

from typing import TextIO

from grammar.lint.reporters import printable


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


def say(stream: TextIO, text: str) -> None:
    stream.write(printable(text))
    stream.flush()
