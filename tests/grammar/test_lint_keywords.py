"""The keyword table against the real HAProxy 2.6: what it calls known, haproxy knows; what it
calls removed or newer, haproxy refuses. One config per section kind, one keyword per line."""

from __future__ import annotations

import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from grammar.lint.keywords import (
    KEYWORDS,
    check_section,
    check_words,
    parse_version,
)
from grammar.sections import SECTION_SPECS
from tests.support.keywords import kinds_of_26, known_in_26


def header(kind: str) -> str:
    return {"defaults": "defaults named", "global": "global"}.get(kind, f"{kind} x")


@dataclass(frozen=True, slots=True)
class Answer:
    """What haproxy -c said about one line: its exit status, alerts and warnings about it."""

    status: int
    alerts: str
    warnings: str

    @property
    def refused(self) -> bool:
        """haproxy refused the config, for this line (a warning alone is no refusal)."""
        return self.status != 0 and bool(self.alerts)


_ABOUT_LINE_2 = re.compile(r"\[(ALERT|WARNING)\][^\n]*?k\.cfg:2\]\s*:?\s*(.*)")


def check_one(haproxy: str, kind: str, line: str) -> Answer:
    """haproxy's verdict on ``line`` alone in a section of ``kind``."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "k.cfg"
        path.write_text(f"{header(kind)}\n    {line}\n")
        result = subprocess.run(
            [haproxy, "-c", "-f", path.name], cwd=directory, capture_output=True, text=True,
            check=False, env={}, timeout=60,
        )  # fmt: skip
    said: dict[str, list[str]] = {"ALERT": [], "WARNING": []}
    for level, message in _ABOUT_LINE_2.findall(result.stderr):
        said[level].append(message)
    return Answer(result.returncode, " ".join(said["ALERT"]), " ".join(said["WARNING"]))


def check_all(haproxy: str, cases: list[tuple[str, str]]) -> dict[tuple[str, str], Answer]:
    with ThreadPoolExecutor(2) as pool:
        answers = pool.map(lambda case: check_one(haproxy, *case), cases)
        return dict(zip(cases, answers, strict=True))


def refuses(name: str, answer: Answer) -> bool:
    """Whether haproxy refuses a line for not knowing ``name`` (or not in that section)."""
    keyword, _, sub = name.partition(" ")
    message = answer.alerts  # a warning saying the same is no refusal
    if not answer.refused:
        return False
    if keyword in ("option", "timeout") and not sub:
        return False  # checked through "option <name>" and "timeout <event>"
    if keyword == "option":
        return f"unknown option '{sub}'" in message
    if keyword == "timeout":
        return f"(got '{sub}')" in message
    return f"unknown keyword '{keyword}'" in message or "not allowed" in message


@pytest.mark.haproxy
def test_known_keywords_are_known_to_haproxy(haproxy: str) -> None:
    cases = [
        (kind, name)
        for name, spec in KEYWORDS.items()
        if known_in_26(spec)
        for kind in sorted(spec.sections - spec.ignored_in)
        if kind in kinds_of_26()
    ]
    answers = check_all(haproxy, cases)
    refused = {case: answer.alerts for case, answer in answers.items() if refuses(case[1], answer)}
    assert refused == {}


@pytest.mark.haproxy
def test_removed_and_newer_keywords_are_refused(haproxy: str) -> None:
    cases = []
    for name, spec in KEYWORDS.items():
        if spec.build_option is not None or known_in_26(spec):
            continue
        kinds = [kind for kind in sorted(spec.sections) if kind in kinds_of_26()]
        if kinds:
            cases.append((kinds[0], name))
    assert cases
    answers = check_all(haproxy, cases)
    # refused means an alert about the line and a failed check; a warning alone is acceptance
    accepted = {case: answer.warnings for case, answer in answers.items() if not answer.refused}
    assert accepted == {}


def test_checker_answers() -> None:
    assert check_words("frontend", ["server", "s", "1.1.1.1:80"])[0].kind == "wrong-section"
    assert check_words("frontend", ["balance", "roundrobin"])[0].kind == "ignored"
    assert check_words("backend", ["reqadd", "X:\\ y"])[0].kind == "removed"
    assert "http-request add-header" in check_words("backend", ["reqadd", "x"])[0].message
    assert check_words("defaults", ["option", "forwarded"])[0].kind == "too-new"
    assert check_words("defaults", ["option", "forwarded"], target=(2, 8)) == []
    assert check_words("defaults", ["mode", "http", "tcp"])[0].kind == "arity"
    assert check_words("defaults", ["timeout", "sever", "1s"])[0].kind == "unknown"
    assert check_words("global", ["tune.ssl.capture-cipherlist-size", "1"])[0].kind == (
        "deprecated"
    )
    assert check_words("defaults", ["acl", "a", "path", "/"], named_defaults=False)[0].kind == (
        "anonymous-defaults"
    )
    assert check_words("global", ["51degrees-data-file", "x"]) == []
    assert check_words("traces", ["anything", "at", "all"]) == []
    assert check_section("crt-store") is not None
    assert check_section("crt-store", (3, 0)) is None


def test_version_parsing() -> None:
    assert parse_version("3.10") == (3, 10)
    for bad in ("3", "a.b", "3.1.2", ""):
        with pytest.raises(ValueError):
            parse_version(bad)


def test_table_is_consistent() -> None:
    for name, spec in KEYWORDS.items():
        assert spec.ignored_in <= spec.sections, name
        assert spec.max_args is None or spec.max_args >= spec.min_args, name
        assert all(kind in SECTION_SPECS for kind in spec.sections), name
        if " " in name:
            parent = KEYWORDS[name.split()[0]]
            assert parent.subkeywords, name
