"""The parser, linter and formatter on the shared corpus of real haproxy.cfg files.

The corpus (``../shared/corpus/haproxy``, third-party files used as test input only) comes with
HAProxy 2.6's verdict on every file (``MANIFEST.tsv``; ``CHECK_WITH_FDS.tsv`` for reg-test
configs that need inherited sockets). HAProxy 2.8 agrees, but for the files
``ACCEPTED_FROM_28`` lists. What must hold, and is asserted here:

* every file parses, and prints back byte for byte (lossless layout);
* fmt is safe (same statements, comments kept) and idempotent on every file;
* fmt output of every file haproxy accepts is accepted by haproxy too (same exit status), by
  2.6 and by 2.8;
* the linter reports no error-severity finding on a file haproxy accepts (at target 2.6, and
  at target 2.8 on what 2.8 accepts);
* on files haproxy rejects for a reason a rule covers, the linter reports it on that line.

Run ``python tests/grammar/test_corpus.py`` for the figures.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

if str(Path(__file__).resolve().parents[2]) not in sys.path:  # when run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from compiler.printer import print_config
from grammar.format import difference, format_text
from grammar.lint import Finding, LintOptions, lint_text
from grammar.parser import parse
from runtime.haproxy_check import haproxy_binary
from tests.support.haproxies import Oracle
from tests.support.paths import SHARED
from tests.support.required import requirement

CORPUS = SHARED / "corpus" / "haproxy"
pytestmark = requirement(
    "shared corpus",
    (CORPUS / "MANIFEST.tsv").is_file(),
    f"no {CORPUS / 'MANIFEST.tsv'} (../shared is not part of this repository)",
)

# Why haproxy refused a file, as the first alert says, and the rules that cover that reason.
COVERED_REASONS: list[tuple[str, re.Pattern[str], frozenset[str]]] = [
    ("unknown keyword", re.compile(r"unknown keyword '[^']+' (in '[^']+' section|out of)"),
     frozenset({"HAP004", "HAP010", "HAP011", "HAP013", "HAP014"})),
    ("unknown option", re.compile(r"unknown option '[^']+'(;|\.?$)"),
     frozenset({"HAP010", "HAP013", "HAP014"})),
    ("removed keyword", re.compile(r"not supported any ?more|doesn't exist anymore"),
     frozenset({"HAP013"})),
    ("missing final newline", re.compile(r"Missing LF on last line"), frozenset({"HAP002"})),
    ("undefined ACL", re.compile(r"no such ACL"), frozenset({"HAP030"})),
    ("undefined backend", re.compile(r"unable to find required (use_backend|default_backend)"),
     frozenset({"HAP020"})),
    ("duplicate name", re.compile(r"same name|already exists|Duplicate|already defined"),
     frozenset({"HAP022", "HAP023"})),
    ("rule in anonymous defaults",
     re.compile(r"anonymous 'defaults'|only allowed in 'backend' sections or 'defaults' section"),
     frozenset({"HAP016"})),
    ("unknown directive", re.compile(r"unknown directive"), frozenset({"HAP005"})),
    ("mode mismatch", re.compile(r"incompatible (tcp|http) (backend|proxy)"),
     frozenset({"HAP050"})),
    ("section header", re.compile(r"please use the 'bind' keyword|'global' cannot handle"),
     frozenset({"HAP007"})),
    ("argument count", re.compile(r"cannot handle unexpected argument"),
     frozenset({"HAP015"})),
]  # fmt: skip
LINE = re.compile(r"\[[^]]*:(\d+)\]")
# Top-level files HAProxy 2.8 accepts (exit 0, sockets inherited) and 2.6 refuses, with what
# 2.6 does not know; 2.8 refuses every other file the manifest says 2.6 refuses.
ACCEPTED_FROM_28 = {
    "haproxy--reg-tests--http-rules--forwarded-header-7239--1.cfg": "option forwarded",
    "haproxy--reg-tests--http-rules--forwarded-header-7239--2.cfg": "option forwarded",
    "haproxy--reg-tests--http-rules--h1or2_to_h1c--1.cfg": "url_param(QS_arg,,i)",
}
FD_VARIABLE = re.compile(r"fd@\$\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Verdict:
    category: str
    message: str
    with_fds: bool

    @property
    def accepted(self) -> bool:
        return self.category in ("valid", "valid-no-listener")

    @property
    def exit_status(self) -> int:
        """What ``haproxy -c`` exits with on an accepted file (2: no error, no listener)."""
        return 2 if self.category == "valid-no-listener" else 0


@cache
def verdicts() -> dict[str, Verdict]:
    """HAProxy 2.6's verdict per top-level file (the socket-inheriting run wins)."""
    found: dict[str, Verdict] = {}
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            if "/" not in row["file"]:
                found[row["file"]] = Verdict(row["haproxy_c_category"], row["first_message"], False)
    fds = CORPUS / "CHECK_WITH_FDS.tsv"
    if fds.is_file():
        with open(fds, encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                found[row["file"]] = Verdict(row["haproxy_c_category"], row["first_message"], True)
    return found


@cache
def listed_files() -> tuple[str, ...]:
    """Every file ``MANIFEST.tsv`` lists (top level and ``vtc-raw/``), relative to the corpus."""
    with open(CORPUS / "MANIFEST.tsv", encoding="utf-8", newline="") as handle:
        return tuple(row["file"] for row in csv.DictReader(handle, delimiter="\t"))


def top_level_files() -> list[Path]:
    return sorted(CORPUS.glob("*.cfg"))


def all_files() -> list[Path]:
    """Top-level files and the raw VTC blocks."""
    return top_level_files() + sorted((CORPUS / "vtc-raw").glob("*.cfg"))


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8", "surrogateescape")


# --- haproxy, the way the corpus verdicts were obtained -----------------------------------


def haproxy_check(text: str, name: str, binary: str, with_fds: bool) -> int:
    """Exit status of ``haproxy -c`` on ``text`` in an empty directory, minimal environment.

    With ``with_fds``, every ``fd@${NAME}`` gets a listening socket on 127.0.0.1 that haproxy
    inherits (``NAME=<fd>``, ``VTC_SOCK_TYPE=stream``), as varnishtest does.
    """
    with ExitStack() as stack, tempfile.TemporaryDirectory() as directory:
        environment: dict[str, str] = {}
        descriptors: list[int] = []
        if with_fds:
            environment["VTC_SOCK_TYPE"] = "stream"
            for variable in dict.fromkeys(FD_VARIABLE.findall(text)):
                listener = stack.enter_context(socket.socket())
                listener.bind(("127.0.0.1", 0))
                listener.listen()
                listener.set_inheritable(True)
                descriptors.append(listener.fileno())
                environment[variable] = str(listener.fileno())
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
            handle.write(text)
        completed = subprocess.run(
            [binary, "-c", "-f", name],
            cwd=directory,
            env=environment,
            capture_output=True,
            timeout=60,
            check=False,
            pass_fds=descriptors,
        )
        return completed.returncode


# --- the figures ---------------------------------------------------------------------------


@dataclass(slots=True)
class Figures:
    files: int = 0
    parsed: int = 0
    unparsed: list[str] = field(default_factory=list)
    round_trips: int = 0
    fmt_safe: int = 0
    fmt_idempotent: int = 0
    accepted: int = 0
    false_alarms: list[str] = field(default_factory=list)
    rejected: int = 0
    covered: int = 0
    caught: int = 0
    caught_as_error: int = 0
    missed: list[str] = field(default_factory=list)
    fmt_checked: int = 0
    fmt_accepted: int = 0
    fmt_refused: list[str] = field(default_factory=list)
    fmt_unreproduced: list[str] = field(default_factory=list)

    def report(self) -> str:
        def share(part: int, whole: int) -> str:
            return f"{part}/{whole} ({100 * part / whole:.1f} %)" if whole else "0/0"

        lines = [
            f"files (top level + vtc-raw): {self.files}",
            f"parse:              {share(self.parsed, self.files)}",
            f"round trip:         {share(self.round_trips, self.files)}",
            f"fmt safe:           {share(self.fmt_safe, self.files)}",
            f"fmt idempotent:     {share(self.fmt_idempotent, self.files)}",
            f"haproxy accepts:    {self.accepted} top-level files",
            f"false alarms:       {len(self.false_alarms)} error findings on accepted files",
            f"rejected files:     {self.rejected}, for a covered reason: {self.covered}",
            f"caught (any sev.):  {share(self.caught, self.covered)}",
            f"caught as error:    {share(self.caught_as_error, self.covered)}",
        ]
        if self.fmt_checked:
            lines.append(f"fmt accepted:       {share(self.fmt_accepted, self.fmt_checked)}")
        lines += [f"  false alarm: {alarm}" for alarm in self.false_alarms]
        lines += [f"  missed: {miss}" for miss in self.missed]
        lines += [f"  fmt refused: {refused}" for refused in self.fmt_refused]
        lines += [f"  verdict not reproduced: {miss}" for miss in self.fmt_unreproduced]
        lines += [f"  does not parse: {error}" for error in self.unparsed]
        return "\n".join(lines)


def covered_reason(message: str) -> frozenset[str] | None:
    for _, pattern, codes in COVERED_REASONS:
        if pattern.search(message):
            return codes
    return None


def measure(haproxy: str | None = None, workers: int = 2) -> Figures:
    figures = Figures()
    judged = verdicts()
    for path in all_files():
        figures.files += 1
        text = read(path)
        try:
            config = parse(text, file=path.name)
        except Exception as error:  # counted as a failure below
            figures.unparsed.append(f"{path.name}: {error}"[:300])
            continue
        figures.parsed += 1
        figures.round_trips += print_config(config, layout="lossless") == text
        try:
            formatted = format_text(text, file=path.name)
        except Exception:
            continue
        figures.fmt_safe += difference(config, parse(formatted)) is None
        figures.fmt_idempotent += format_text(formatted) == formatted
    for path in top_level_files():
        verdict = judged.get(path.name)
        if verdict is None:
            continue
        findings = lint_text(read(path), file=path.name)
        if verdict.accepted:
            figures.accepted += 1
            figures.false_alarms += [str(f) for f in findings if f.severity == "error"]
            continue
        figures.rejected += 1
        codes = covered_reason(verdict.message)
        if codes is None:
            continue
        figures.covered += 1
        hits = _hits(findings, codes, verdict.message)
        figures.caught += bool(hits)
        figures.caught_as_error += any(f.severity == "error" for f in hits)
        if not hits:
            figures.missed.append(f"{path.name}: {verdict.message[:160]}")
    if haproxy is not None:
        _measure_fmt_with_haproxy(figures, haproxy, workers)
    return figures


def _hits(findings: list[Finding], codes: frozenset[str], message: str) -> list[Finding]:
    line = LINE.search(message)
    return [
        f for f in findings if f.code in codes and (line is None or f.line == int(line.group(1)))
    ]


def accepted_files(version: str = "2.6") -> dict[str, int]:
    """The top-level files haproxy ``version`` accepts, each with its exit status."""
    found = {name: verdict.exit_status for name, verdict in verdicts().items() if verdict.accepted}
    if version == "2.8":
        found |= dict.fromkeys(ACCEPTED_FROM_28, 0)
    return found


def _measure_fmt_with_haproxy(
    figures: Figures, haproxy: str, workers: int, version: str = "2.6"
) -> None:
    judged = verdicts()
    expected = accepted_files(version)
    accepted = [path for path in top_level_files() if path.name in expected]

    def check(path: Path) -> tuple[str, int, int]:
        verdict = judged[path.name]
        text = read(path)
        before = haproxy_check(text, path.name, haproxy, verdict.with_fds)
        after = haproxy_check(format_text(text), path.name, haproxy, verdict.with_fds)
        return path.name, before, after

    with ThreadPoolExecutor(workers) as pool:
        for name, before, after in pool.map(check, accepted):
            if before != expected[name]:
                # This machine does not reproduce the manifest's verdict: not counted.
                figures.fmt_unreproduced.append(f"{name}: exit {before}")
                continue
            figures.fmt_checked += 1
            if after == before:
                figures.fmt_accepted += 1
            else:
                figures.fmt_refused.append(f"{name}: exit {before} -> {after}")


# --- tests -------------------------------------------------------------------------------


@cache
def figures_without_haproxy() -> Figures:
    return measure()


def test_every_listed_file_is_there_parses_and_round_trips() -> None:
    listed = listed_files()
    on_disk = [str(path.relative_to(CORPUS)) for path in all_files()]
    assert len(set(listed)) == len(listed), "MANIFEST.tsv lists a file twice"
    assert sorted(listed) == sorted(on_disk), (
        f"listed, not found: {sorted(set(listed) - set(on_disk))}; "
        f"found, not listed: {sorted(set(on_disk) - set(listed))}"
    )
    assert {f for f in listed if "/" not in f} == set(verdicts())
    figures = figures_without_haproxy()
    assert figures.files == len(listed)
    assert figures.unparsed == []
    assert figures.parsed == len(listed)
    assert figures.round_trips == len(listed)


def test_fmt_is_safe_and_idempotent_on_every_file() -> None:
    figures = figures_without_haproxy()
    assert figures.fmt_safe == len(listed_files())
    assert figures.fmt_idempotent == len(listed_files())


def test_no_error_finding_on_files_haproxy_accepts() -> None:
    figures = figures_without_haproxy()
    assert figures.accepted > 0
    assert figures.false_alarms == []


def test_no_error_finding_at_target_28_on_files_28_accepts() -> None:
    target = LintOptions(target=(2, 8))
    false_alarms = [
        str(finding)
        for name in accepted_files("2.8")
        for finding in lint_text(read(CORPUS / name), file=name, options=target)
        if finding.severity == "error"
    ]
    assert false_alarms == []


def test_rejections_a_rule_covers_are_caught() -> None:
    figures = figures_without_haproxy()
    assert figures.covered > 0
    assert figures.caught == figures.covered, "\n".join(figures.missed)


@pytest.mark.haproxy
def test_fmt_output_is_accepted_by_haproxy(haproxy_oracle: Oracle) -> None:
    """Every file this haproxy accepts (the manifest's, and for 2.8 ``ACCEPTED_FROM_28``):
    it accepts it here too (same exit status), and accepts its fmt output the same way."""
    accepted = accepted_files(haproxy_oracle.version)
    assert accepted, "the manifest lists no file haproxy accepts"
    figures = Figures()
    _measure_fmt_with_haproxy(figures, haproxy_oracle.binary, 2, haproxy_oracle.version)
    assert figures.fmt_unreproduced == [], f"{haproxy_oracle.release} disagrees with the manifest"
    assert figures.fmt_refused == []
    assert figures.fmt_checked == figures.fmt_accepted == len(accepted)


@pytest.mark.haproxy
def test_28_refuses_what_26_refuses_but_the_listed_files(haproxies: dict[str, str]) -> None:
    judged = verdicts()
    refused = [path for path in top_level_files() if not judged[path.name].accepted]

    def exit_status(path: Path) -> int:
        return haproxy_check(read(path), path.name, haproxies["2.8"], judged[path.name].with_fds)

    with ThreadPoolExecutor(2) as pool:
        names = (path.name for path in refused)
        statuses = dict(zip(names, pool.map(exit_status, refused), strict=True))
    assert {name: status for name, status in statuses.items() if status != 1} == dict.fromkeys(
        ACCEPTED_FROM_28, 0
    )


def iter_lines() -> Iterator[str]:
    for path in top_level_files():
        yield from read(path).splitlines(keepends=True)


if __name__ == "__main__":
    if not (CORPUS / "MANIFEST.tsv").is_file():
        print(f"shared corpus not found at {CORPUS}", file=sys.stderr)
        sys.exit(2)
    print(measure(haproxy_binary()).report())
