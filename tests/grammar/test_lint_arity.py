"""Every argument bound in the keyword table against the real HAProxy 2.6 and 2.8 (``haproxy
-c``), each with the linter judging at its version.

For each keyword the table bounds (``min_args``/``max_args``) and each section kind of that
version that accepts it, a line is generated at ``min - 1``, ``min``, ``max`` and ``max + 1``
arguments from plausible values (``SAMPLES``). The claim checked: **where the linter reports
an error on such a line, haproxy refuses it**; a line haproxy accepts gets at most a warning.
So that a refusal at ``max + 1`` means the extra argument and not a bad sample, the line at
``max`` must be accepted (outside the kinds where haproxy ignores the keyword).

Batched: each line sits in its own section in its own file, and one ``haproxy -c`` reads them
all (``-f`` per file). haproxy names every file with a fatal parse error ("Error(s) found in
configuration file : F"; an alert such as "already specified. Continuing." is not fatal), and
runs its post-parse checks only once parsing succeeded, naming the section they fail. So: run,
set aside what is named, run again, until the rest is valid. A line in the valid rest is
accepted; a line refused only by a post-parse check, and that the linter calls an error, is
run again alone to be sure.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from grammar.lint import LintOptions, lint_text
from grammar.lint.keywords import KEYWORDS, KeywordSpec, parse_version
from grammar.sections import Version
from tests.support.haproxies import VERSIONS, Oracle
from tests.support.keywords import kinds_of, known_in

# Plausible arguments, in order: a line with n arguments uses the first n. A keyword with a
# finite maximum needs max + 1 of them (the last one is the extra argument). A keyword that takes
# no argument is tried with FLAG_EXTRA.
FLAG_EXTRA = ("on",)
SAMPLES: dict[str, tuple[str, ...]] = {
    # global
    "chroot": ("/", "/tmp"),
    "master-worker": ("no-exit-on-failure", "x"),
    "gid": ("0", "0"),
    "grace": ("10s", "20s"),
    "uid": ("0", "0"),
    "user": ("root",),
    "group": ("root",),
    "pidfile": ("/tmp/arity.pid", "/tmp/other.pid"),
    "ulimit-n": ("4096", "8192"),
    "nbthread": ("1", "2"),
    "thread-groups": ("1", "2"),
    # proxies
    "acl": ("is_root", "path", "/"),
    "backlog": ("10", "20"),
    "capture": ("request", "header", "Host", "len", "10"),
    "clitcpka-cnt": ("3", "4"),
    "clitcpka-idle": ("10s", "20s"),
    "clitcpka-intvl": ("10s", "20s"),
    "compression": ("algo", "gzip"),
    "cookie": ("SRV", "insert"),
    "declare": ("capture", "request", "len", "10"),
    "default_backend": ("be", "be"),
    "description": ("text",),
    "dispatch": ("127.0.0.1:80", "127.0.0.1:81"),
    "dynamic-cookie-key": ("secret", "other"),
    "email-alert": ("from", "a@example.com"),
    "error-log-format": ("%ci", "%ci"),
    "errorfile": ("503", "error.http"),
    "errorfiles": ("errors",),
    "errorloc": ("503", "http://example.com/"),
    "errorloc302": ("503", "http://example.com/"),
    "errorloc303": ("503", "http://example.com/"),
    "filter": ("trace",),
    "force-persist": ("if", "TRUE"),
    "fullconn": ("10", "20"),
    "hash-balance-factor": ("150", "200"),
    "hash-type": ("consistent",),
    "http-after-response": ("allow",),
    "http-check": ("disable-on-404",),
    "http-error": ("status", "503"),
    "http-request": ("deny",),
    "http-response": ("deny",),
    "http-reuse": ("safe",),
    "http-send-name-header": ("X-Server",),
    "id": ("1{n}", "2{n}"),  # {n}: a number of the case's own, so that no two ids clash
    "ignore-persist": ("if", "TRUE"),
    "load-server-state-from-file": ("none",),
    "log": ("global",),
    "log-format": ("%ci", "%ci"),
    "log-format-sd": ("%ci", "%ci"),
    "log-tag": ("tag",),
    "max-keep-alive-queue": ("10", "20"),
    "max-session-srv-conns": ("10", "20"),
    "maxconn": ("100", "200"),
    "mode": ("http", "tcp"),
    "monitor": ("fail", "if", "FALSE"),
    "monitor-uri": ("/health", "/other"),
    "option": (),
    "persist": ("rdp-cookie",),
    "rate-limit": ("sessions", "10"),
    "redirect": ("prefix", "/x"),
    "retries": ("3", "4"),
    "retry-on": ("conn-failure",),
    "server-template": ("srv", "1", "127.0.0.1:80"),
    "source": ("0.0.0.0",),
    "srvtcpka-cnt": ("3", "4"),
    "srvtcpka-idle": ("10s", "20s"),
    "srvtcpka-intvl": ("10s", "20s"),
    "stats": ("enable",),
    "stick": ("on", "src"),
    "stick-table": ("type", "ip", "size", "1k"),
    "tcp-check": ("connect",),
    "tcp-request": ("content", "accept"),
    "tcp-response": ("content", "accept"),
    "timeout": (),
    "unique-id-format": ("%ci", "%ci"),
    "unique-id-header": ("X-Id", "X-Other"),
    "use-fcgi-app": ("php", "other"),
    "use-server": ("s1", "if", "TRUE"),
    "use_backend": ("be",),
    # option <name>
    "option http-restrict-req-hdr-names": ("preserve", "delete"),
    "option httplog": ("clf", "x"),
    "option pgsql-check": ("user", "postgres"),
    "option redispatch": ("1", "2"),
    "option max-reqs": ("10", "20"),
    # timeout <event>
    **{
        name: ("1s", "2s")
        for name in KEYWORDS
        if name.startswith("timeout ") and KEYWORDS[name].max_args == 1
    },
    # other sections
    "shards": ("2", "3"),
    "backing-file": ("ring{n}.bak", "other{n}.bak"),  # one file per ring, in the test folder
    "table": ("t1", "type", "ip", "size", "1k"),
    "nameserver": ("ns1", "127.0.0.1:53"),
    "accepted_payload_size": ("512", "1024"),
    "hold": ("valid", "10s", "20s"),
    "resolve_retries": ("3", "4"),
    "mailer": ("m1", "127.0.0.1:25"),
    "total-max-size": ("4", "8"),
    "max-object-size": ("1000", "2000"),
    "max-age": ("60", "120"),
    "process-vary": ("on", "off"),
    "max-secondary-entries": ("10", "20"),
    "command": ("/bin/true",),
    "format": ("raw", "short"),
    "maxlen": ("100", "200"),
    "size": ("32768", "65536"),
    "docroot": ("/", "/tmp"),
    "index": ("index.php", "other.php"),
    "path-info": ("^(/.+\\.php)(/.*)?$", "x"),
    "log-stderr": ("global",),
    "pass-header": ("X-Header",),
    "set-param": ("NAME", "value"),
}

# Where a section kind reads a keyword's arguments differently.
SECTION_SAMPLES: dict[tuple[str, str], tuple[str, ...]] = {
    ("log", "global"): ("127.0.0.1:514", "local0"),
    ("log", "log-forward"): ("127.0.0.1:514", "local0"),
    ("log", "peers"): ("127.0.0.1:514", "local0"),
    ("stats", "global"): ("maxconn", "10"),
    ("user", "userlist"): ("alice",),
    ("group", "userlist"): ("admins",),
    ("description", "global"): ("text",),
}

# Lines a keyword needs beside it in its section.
NEEDS: dict[str, tuple[str, ...]] = {
    "option external-check": ("external-check command /bin/true",),
    "option max-reqs": ("option mpxs-conns",),
    "stick": ("stick-table type ip size 1k",),
    "use-fcgi-app": ("server f1 127.0.0.1:9000 proto fcgi",),
    "use-server": ("server s1 127.0.0.1:80",),
}

# Lines every section of a kind needs to be complete (haproxy drops or refuses it otherwise).
SECTION_NEEDS: dict[str, tuple[str, ...]] = {
    "cache": ("total-max-size 4",),
    "fcgi-app": ("docroot /",),
    "mailers": ("mailer scaffold 127.0.0.1:25",),
    "peers": ("peer local 127.0.0.1:10000",),
    "program": ("command /bin/true",),
}

# Keywords judged one line per config: 'quiet' silences what haproxy says about other lines.
ALONE = frozenset({"quiet"})

HEADER = """\
global
    master-worker
    localpeer local
    external-check
    insecure-fork-wanted
http-errors errors
    errorfile 503 error.http
fcgi-app php
    docroot /
    option keep-conn
defaults base
    mode http
    timeout client 1s
    timeout connect 1s
    timeout server 1s
frontend support
    bind 127.0.0.1:8999
    default_backend be
backend be
    server s1 127.0.0.1:80
"""
ERROR_PAGE = "HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Case:
    """One generated line: ``words`` in a section of ``kind``, ``count`` arguments."""

    name: str  # the table key ("option httplog")
    kind: str
    count: int
    bound: str  # "min-1", "min", "max" or "max+1"
    words: tuple[str, ...]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def __str__(self) -> str:
        return f"{self.kind}: {self.text!r} ({self.bound} of {self.name!r})"


def bounds(spec: KeywordSpec) -> dict[int, str]:
    """The argument counts to try, each with the bound it is (``max`` wins over ``min``)."""
    found: dict[int, str] = {}
    if spec.min_args > 0:
        found[spec.min_args - 1] = "min-1"
    found[spec.min_args] = "min"
    if spec.max_args is not None:
        found[spec.max_args] = "max"
        found[spec.max_args + 1] = "max+1"
    return found


def cases(target: Version) -> Iterator[Case]:
    """A line at every bound, for every bounded keyword in every kind of ``target`` that
    accepts it."""
    for name, spec in KEYWORDS.items():
        if not known_in(spec, target) or (spec.min_args == 0 and spec.max_args is None):
            continue
        keyword = tuple(name.split())
        for kind in sorted(spec.sections & set(kinds_of(target))):
            if spec.subkeywords:  # arity of the bare keyword only: "option", "timeout"
                if spec.min_args > 0:
                    yield Case(name, kind, 0, "min-1", keyword)
                continue
            sample = SECTION_SAMPLES.get((name, kind), SAMPLES.get(name))
            if sample is None and spec.max_args == 0:
                sample = FLAG_EXTRA
            assert sample is not None, f"no sample arguments for {name!r}"
            for count, bound in sorted(bounds(spec).items()):
                assert count <= len(sample), f"{name!r} needs {count} sample arguments"
                yield Case(name, kind, count, bound, keyword + sample[:count])


# --- the oracle ------------------------------------------------------------------------------


def section_text(index: int, case: Case) -> str:
    """The case's own section: header, what it needs, then its line (always the last)."""
    header = "global" if case.kind == "global" else f"{case.kind} {section_name(index)}"
    own = case.text.replace("{n}", f"{index:04d}")
    body = [*SECTION_NEEDS.get(case.kind, ()), *NEEDS.get(case.name, ()), own]
    return "\n".join([header, *(f"    {line}" for line in body)]) + "\n"


def section_name(index: int) -> str:
    return f"arity{index:04d}"


# A fatal parse error; "Could not open" is how haproxy 2.6 reports a few of them (and stops).
_FATAL_FILE = re.compile(
    r"(?:Error\(s\) found in|Could not open) configuration file :? ?(c\d{4}\.cfg)"
)
_NAME = re.compile(r"arity\d{4}")


def haproxy_verdicts(haproxy: str, cases: list[Case]) -> tuple[set[int], set[int]]:
    """The indexes of the cases haproxy accepts, and of those only a post-parse check refuses."""
    # defaults sections last: a proxy after one would inherit from it
    order = sorted(range(len(cases)), key=lambda index: cases[index].kind == "defaults")
    post_parse: set[int] = set()
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "error.http").write_text(ERROR_PAGE)
        Path(directory, "header.cfg").write_text(HEADER)
        for index in order:
            Path(directory, f"c{index:04d}.cfg").write_text(section_text(index, cases[index]))
        remaining = order
        while remaining:
            # global cases first: 2.8 takes nbthread and thread-groups only in a global
            # section that no other kind of section precedes
            first = [index for index in remaining if cases[index].kind == "global"]
            files = [f"c{index:04d}.cfg" for index in first] + ["header.cfg"]
            files += [f"c{index:04d}.cfg" for index in remaining if index not in first]
            files = [word for name in files for word in ("-f", name)]
            result = subprocess.run(
                [haproxy, "-c", *files], cwd=directory, capture_output=True, text=True,
                check=False, env={}, timeout=300,
            )  # fmt: skip
            if result.returncode == 0:
                return set(remaining), post_parse
            refused = {int(name[1:5]) for name in _FATAL_FILE.findall(result.stderr)}
            if not refused:  # parsing succeeded: a post-parse check names the section
                alerts = "\n".join(line for line in result.stderr.splitlines() if "[ALERT]" in line)
                refused = {int(name[5:]) for name in _NAME.findall(alerts)}
                post_parse |= refused
            assert refused & set(remaining), (
                f"haproxy refused no case in particular:\n{result.stderr}"
            )
            remaining = [index for index in remaining if index not in refused]
    return set(), post_parse


def accepted_alone(haproxy: str, case: Case) -> bool:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "error.http").write_text(ERROR_PAGE)
        own = section_text(0, case)
        Path(directory, "a.cfg").write_text(own + HEADER if case.kind == "global" else HEADER + own)
        result = subprocess.run(
            [haproxy, "-c", "-f", "a.cfg"], cwd=directory, capture_output=True, text=True,
            check=False, env={}, timeout=120,
        )  # fmt: skip
    return result.returncode == 0


def linter_errors(cases: list[Case], target: Version) -> dict[int, list[str]]:
    """The linter's error findings at ``target`` on each case's own line, all sections in one
    text."""
    text = HEADER
    line_of: dict[int, int] = {}
    for index, case in enumerate(cases):
        text += section_text(index, case)
        line_of[text.count("\n")] = index
    found: dict[int, list[str]] = {}
    for finding in lint_text(text, file="a.cfg", options=LintOptions(target=target)):
        index = line_of.get(finding.line)
        if index is not None and finding.severity == "error":
            found.setdefault(index, []).append(f"{finding.code} {finding.message}")
    return found


# --- the test --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_every_bounded_keyword_has_cases(version: str) -> None:
    target = parse_version(version)
    names = {case.name for case in cases(target)}
    bounded = {
        name
        for name, spec in KEYWORDS.items()
        if known_in(spec, target) and (spec.min_args > 0 or spec.max_args is not None)
    }
    assert names == bounded


@pytest.mark.haproxy
def test_arity_errors_are_what_haproxy_refuses(haproxy_oracle: Oracle) -> None:
    haproxy, target = haproxy_oracle.binary, parse_version(haproxy_oracle.version)
    every = list(cases(target))
    generated = [case for case in every if case.name not in ALONE]
    accepted, post_parse = haproxy_verdicts(haproxy, generated)
    generated += [case for case in every if case.name in ALONE]
    errors = linter_errors(generated, target)
    # judged alone: refused by a post-parse check only, or not in the batch
    suspects = [index for index in errors if index in post_parse or generated[index].name in ALONE]
    with ThreadPoolExecutor(2) as pool:
        alone = pool.map(lambda index: accepted_alone(haproxy, generated[index]), suspects)
        accepted |= {index for index, ok in zip(suspects, alone, strict=True) if ok}

    over_claimed = [
        f"{generated[index]}: {'; '.join(messages)}"
        for index, messages in errors.items()
        if index in accepted
    ]
    assert over_claimed == [], "linter errors on lines haproxy accepts:\n" + "\n".join(over_claimed)
    arity = [index for index, messages in errors.items() if any("HAP015" in m for m in messages)]
    assert len(arity) > 100, "too few arity errors were generated: the test checks little"

    bad_samples = [
        str(case)
        for index, case in enumerate(generated)
        if case.bound == "max"
        and case.name not in ALONE
        and case.kind not in KEYWORDS[case.name].ignored_in
        and index not in accepted
    ]
    assert bad_samples == [], (
        "lines at the maximum that haproxy refuses (fix the sample or the bound):\n"
        + "\n".join(bad_samples)
    )
