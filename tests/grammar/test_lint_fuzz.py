"""Hostile input: the parser raises nothing but its own located error, the linter and the
formatter never crash, and the CLI never prints a traceback."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.errors import ParseError
from grammar.format import format_text
from grammar.lint import lint_text
from grammar.parser import parse
from tests.support.paths import SHARED, run_cli
from tests.support.required import requirement

CORPUS = SHARED / "corpus" / "haproxy"
CORPUS_LINES: list[str] = []
if CORPUS.is_dir():
    for _path in sorted(CORPUS.glob("*.cfg")):
        CORPUS_LINES += _path.read_bytes().decode("utf-8", "surrogateescape").splitlines(True)
SAMPLE_LINES = [
    "global\n", "    maxconn 100\n", "frontend fe\n", "  bind :80 ssl crt /x.pem\n",
    "  use_backend be if { path_beg /a } || !b\n", "  acl b hdr(host) -i x\n",
    "backend be\n", "  server s 10.0.0.1:80 check cookie s\n", ".if defined(X)\n",
    ".endif\n", "  http-request set-header X \"%[src]\" if b\n", "# comment\n", "\n",
    "defaults d from e\n", "listen l\n", "  option httplog\n", "  timeout client 5s\n",
]  # fmt: skip
LINES = CORPUS_LINES or SAMPLE_LINES
HAVE_CORPUS = requirement("shared corpus", bool(CORPUS_LINES), f"no {CORPUS}/*.cfg")
SPECIAL = [*"'\"\\#{}!$\r\t\x00 ", "${", "%["]


def check_everything(text: str) -> None:
    """Parse, lint and format ``text``; only ParseError may escape from parse/format."""
    try:
        parse(text)
    except ParseError as error:
        assert error.line is not None and error.col is not None
        assert str(error).startswith("<input>:")
    findings = lint_text(text)
    for finding in findings:
        assert finding.line >= 1 and finding.col >= 1
    try:
        out = format_text(text)
    except ParseError:
        return
    assert format_text(out) == out


@st.composite
def mutated(draw: st.DrawFn, source: list[str]) -> str:
    """A few lines of ``source``, cut, duplicated, shuffled and sprinkled with special
    characters."""
    lines = draw(st.lists(st.sampled_from(source), min_size=1, max_size=30))
    out = []
    for line in lines:
        action = draw(st.integers(0, 6))
        if action == 0 and len(line) > 1:
            cut = draw(st.integers(0, len(line) - 1))
            line = line[:cut] + line[cut + 1 :]
        elif action == 1:
            at = draw(st.integers(0, len(line)))
            line = line[:at] + draw(st.sampled_from(SPECIAL)) + line[at:]
        elif action == 2:
            line = line.lstrip()
        out.append(line)
    return "".join(out)


@HAVE_CORPUS
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(LINES))  # without the corpus the test does not run (HAVE_CORPUS)
def test_mutated_corpus_lines(text: str) -> None:
    check_everything(text)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(SAMPLE_LINES))
def test_mutated_sample_lines(text: str) -> None:
    check_everything(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_random_text(text: str) -> None:
    check_everything(text)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_as_files_are_read(data: bytes) -> None:
    check_everything(data.decode("utf-8", "surrogateescape"))


def test_invalid_utf8_keeps_its_bytes() -> None:
    data = b"global\n    description \xff\xfe caf\xe9\nfrontend f\xc3\n    bind :80\n"
    text = data.decode("utf-8", "surrogateescape")
    check_everything(text)
    findings = lint_text(text)
    assert all("\udcff" not in f.file for f in findings)


def test_fifty_megabyte_line() -> None:
    """Kept whole, linted clean; unterminated, refused at its quote (benchmarks/grammar_bench.py
    measures how long each takes)."""
    big = "global\n    description " + "x" * 50_000_000 + "\n"
    config = parse(big)
    assert len(config.sections[0].body[0].src.values[1]) == 50_000_000  # type: ignore[union-attr]
    assert lint_text(big) == []
    with pytest.raises(ParseError) as refused:
        parse("global\n    description '" + "y" * 50_000_000 + "\n")
    assert (refused.value.line, refused.value.col) == (2, 17)


def test_random_files_through_the_cli(tmp_path: Path) -> None:
    chooser = random.Random(1234)
    paths = []
    for index in range(12):
        size = chooser.randint(0, 2000)
        data = bytes(chooser.randint(0, 255) for _ in range(size))
        if index % 3 == 0 and LINES:
            data = "".join(chooser.choices(LINES, k=40)).encode("utf-8", "surrogateescape")
        path = tmp_path / f"f{index}.cfg"
        path.write_bytes(data)
        paths.append(str(path))
    for command in (
        ("lint",),
        ("lint", "--format", "sarif"),
        ("fmt", "--check"),
        ("fmt", "--diff"),
    ):
        result = run_cli(*command, *paths)
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.returncode in (0, 1, 2), result.stderr[-2000:]
