"""The keyword table against the real HAProxy 2.6 and 2.8, each judged at its own target: what
the table calls known, that release knows; what it calls removed or newer, that release refuses
for not knowing it. One config per section kind, one keyword per line."""

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
from tests.support.haproxies import Oracle
from tests.support.keywords import kinds_of, known_in


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


# How HAProxy refuses a keyword it no longer supports ("... is not supported any more since
# HAProxy 2.5", "'monitor-net' doesn't exist anymore"), and one it has only as an experimental
# directive (2.8's "trace"), which it refuses unless the config opts in.
_NO_LONGER = re.compile(r"not supported any ?more|doesn't exist anymore")
_EXPERIMENTAL = "is experimental, must be allowed"


def refused_as_unknown(name: str, answer: Answer) -> bool:
    """Whether haproxy refuses the line for the keyword itself, not for a missing argument
    (an alert such as "expects <time> as argument" shows that it knows the keyword)."""
    keyword = name.partition(" ")[0]
    return refuses(name, answer) or (
        answer.refused
        and (
            bool(_NO_LONGER.search(answer.alerts))
            or _EXPERIMENTAL in answer.alerts
            or f"unknown keyword '{keyword}'" in answer.alerts  # "option" where none exists
        )
    )


@pytest.mark.haproxy
def test_known_keywords_are_known_to_haproxy(haproxy_oracle: Oracle) -> None:
    target = parse_version(haproxy_oracle.version)
    cases = [
        (kind, name)
        for name, spec in KEYWORDS.items()
        if known_in(spec, target)
        for kind in sorted(spec.sections - spec.ignored_in)
        if kind in kinds_of(target)
    ]
    answers = check_all(haproxy_oracle.binary, cases)
    refused = {case: answer.alerts for case, answer in answers.items() if refuses(case[1], answer)}
    assert refused == {}, f"known at {haproxy_oracle.version}, refused by {haproxy_oracle.release}"


@pytest.mark.haproxy
def test_removed_and_newer_keywords_are_refused(haproxy_oracle: Oracle) -> None:
    target = parse_version(haproxy_oracle.version)
    cases = []
    for name, spec in KEYWORDS.items():
        if spec.build_option is not None or known_in(spec, target):
            continue
        kinds = [kind for kind in sorted(spec.sections) if kind in kinds_of(target)]
        if kinds:
            cases.append((kinds[0], name))
    assert cases
    answers = check_all(haproxy_oracle.binary, cases)
    # a warning alone is acceptance; an alert about a missing argument is knowledge
    known = {
        case: answer.alerts or answer.warnings or f"accepted (exit {answer.status})"
        for case, answer in answers.items()
        if not refused_as_unknown(case[1], answer)
    }
    assert known == {}, (
        f"newer than {haproxy_oracle.version} or removed by it, known to {haproxy_oracle.release}"
    )


def test_checker_answers() -> None:
    assert check_words("frontend", ["server", "s", "1.1.1.1:80"])[0].kind == "wrong-section"
    assert check_words("frontend", ["balance", "roundrobin"])[0].kind == "ignored"
    assert check_words("backend", ["reqadd", "X:\\ y"])[0].kind == "removed"
    assert "http-request add-header" in check_words("backend", ["reqadd", "x"])[0].message
    assert check_words("defaults", ["option", "forwarded"])[0].kind == "too-new"
    assert check_words("defaults", ["option", "forwarded"], target=(2, 8)) == []
    assert check_words("defaults", ["mode", "http", "tcp"])[0].kind == "arity"
    assert check_words("defaults", ["timeout", "sever", "1s"])[0].kind == "unknown"
    for target in ((2, 6), (2, 8)):
        deprecated = check_words("global", ["tune.ssl.capture-cipherlist-size", "1"], target=target)
        assert [verdict.kind for verdict in deprecated] == ["deprecated"]
    assert check_words("backend", ["bind-process", "1"])[0].kind == "deprecated"
    assert check_words("backend", ["bind-process", "1"], target=(2, 8))[0].kind == "removed"
    assert check_words("defaults", ["timeout", "client-hs", "1s"], target=(2, 8))[0].kind == (
        "too-new"
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
