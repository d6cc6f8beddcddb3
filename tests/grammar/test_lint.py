"""The linter: every rule on a hand-written fixture, checked against the real haproxy.

Each file in ``tests/fixtures/lint/`` starts with two comment lines:

    # haproxy: accept|reject     what `haproxy -c` says about the file, 2.6 and 2.8 alike
    # expect: HAP020@11, ...     the findings the linter must report (code@line), exactly

so every claim "this is an error" or "this is fine" is checked with haproxy itself, each
version judged by the linter at its own target. Where 2.8 answers otherwise than 2.6, a line
``# haproxy 2.8: accept|reject`` says so (no fixture needs one today).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from compiler.ast import AclRef, AllOf, Condition
from grammar.lint import LintOptions, UnknownRuleError, lint_config, lint_text, select_rules
from grammar.lint.keywords import parse_version
from grammar.lint.model import LintContext
from grammar.lint.registry import RULES
from grammar.lint.statements import split_condition
from grammar.parser import parse
from runtime.haproxy_check import check_config
from tests.support.haproxies import Oracle, check_each
from tests.support.paths import FIXTURES, ROOT, run_cli
from tests.support.required import require

LINT_FIXTURES = FIXTURES / "lint"
FIXTURE_FILES = sorted(LINT_FIXTURES.glob("*.cfg"))
DOCS = ROOT / "docs" / "lint-rules.md"


def expectations(text: str, version: str = "2.6") -> tuple[str, set[tuple[str, int]]]:
    """The verdict of haproxy ``version`` on a fixture, and the findings the linter must report
    at the default target."""
    verdict = re.search(r"^# haproxy: (accept|reject)$", text, re.MULTILINE)
    own = re.search(rf"^# haproxy {re.escape(version)}: (accept|reject)$", text, re.MULTILINE)
    expect = re.search(r"^# expect:(.*)$", text, re.MULTILINE)
    assert verdict and expect, "fixture header missing"
    found = set()
    for item in expect.group(1).split(","):
        if item.strip():
            code, line = item.strip().split("@")
            found.add((code, int(line)))
    return (own or verdict).group(1), found


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[path.stem for path in FIXTURE_FILES])
def test_fixture_findings(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    _, expected = expectations(text)
    findings = lint_text(text, file=path.name)
    assert {(finding.code, finding.line) for finding in findings} == expected, "\n".join(
        str(finding) for finding in findings
    )


@pytest.mark.haproxy
@pytest.mark.parametrize("path", FIXTURE_FILES, ids=[path.stem for path in FIXTURE_FILES])
def test_fixture_verdicts_match_haproxy(path: Path, haproxy_oracle: Oracle) -> None:
    """An error finding means haproxy refuses the file; a clean or warning-only file passes
    (the linter judging at the version of the haproxy that checks the file)."""
    text = path.read_text(encoding="utf-8")
    verdict, _ = expectations(text, haproxy_oracle.version)
    result = check_config(text, binary=haproxy_oracle.binary)
    assert result.ok == (verdict == "accept"), f"{haproxy_oracle.release}: {result.output}"
    target = LintOptions(target=parse_version(haproxy_oracle.version))
    errors = [f for f in lint_text(text, file=path.name, options=target) if f.severity == "error"]
    if verdict == "accept":
        assert not errors


def test_every_rule_has_a_fixture_and_a_doc_section() -> None:
    # HAP001: parse errors, tests below; HAP060/HAP061 need files beside the config, so
    # test_lint_files.py covers them through the CLI; HAP062 likewise test_lint_tls.py.
    covered = {"HAP001", "HAP060", "HAP061", "HAP062"}
    for path in FIXTURE_FILES:
        covered |= {code for code, _ in expectations(path.read_text())[1]}
    assert set(RULES) <= covered, sorted(set(RULES) - covered)
    docs = DOCS.read_text(encoding="utf-8")
    for code, rule in RULES.items():
        assert f"## {code} " in docs, code
        assert rule.name in docs, rule.name
        assert rule.severity in ("error", "warning")


def test_codes_are_stable_and_unique() -> None:
    names = [rule.name for rule in RULES.values()]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"HAP\d{3}", code) for code in RULES)


# --- locations and messages --------------------------------------------------------------


def test_finding_location_points_at_the_word() -> None:
    text = "frontend fe\n    bind :80\n    use_backend missing if { path_beg /x }\n"
    (finding,) = lint_text(text, file="x.cfg", options=LintOptions(select=("HAP020",)))
    assert (finding.file, finding.line, finding.col) == ("x.cfg", 3, 17)
    assert str(finding) == (
        "x.cfg:3:17: error HAP020 use_backend names backend 'missing', which is not defined"
    )


def test_parse_error_is_a_located_finding() -> None:
    findings = lint_text("global\n    maxconn 'x\n", file="bad.cfg")
    assert [(f.code, f.line, f.col, f.severity) for f in findings] == [("HAP001", 2, 13, "error")]
    findings = lint_text("global\n    maxconn 'x", file="bad.cfg")
    assert [f.code for f in findings] == ["HAP001", "HAP002"]


# --- selection and suppression ------------------------------------------------------------


def test_select_and_ignore_by_code_prefix_and_name() -> None:
    assert [rule.code for rule in select_rules(["HAP02"])] == [
        "HAP020", "HAP021", "HAP022", "HAP023", "HAP024",
    ]  # fmt: skip
    assert "HAP031" not in {rule.code for rule in select_rules((), ["unused-acl"])}
    assert [rule.code for rule in select_rules(["undefined-acl"])] == ["HAP030"]
    with pytest.raises(UnknownRuleError):
        select_rules(["HAP999"])


def test_suppression_comment_forms() -> None:
    base = "frontend fe\n    bind :80\n    timeout client 5s\n"
    text = base + "    acl a path /x  # haplint: disable=HAP031\n"
    assert lint_text(text) == []
    text = base + "    # haplint: disable-next-line=unused-acl\n    acl a path /x\n"
    assert lint_text(text) == []
    text = base + "    # haplint: disable-next-line\n\n    acl a path /x\n"
    assert lint_text(text) == []  # blank lines between are fine
    text = base + "    acl a path /x  # haplint: disable=HAP030\n"
    assert [f.code for f in lint_text(text)] == ["HAP031"]
    text = "# haplint: disable-file=HAP031,HAP051\nfrontend fe\n    acl a path /x\n"
    assert lint_text(text) == []


def test_parse_errors_cannot_be_suppressed() -> None:
    text = "# haplint: disable-file\nglobal\n    maxconn 'x\n"
    assert [f.code for f in lint_text(text)] == ["HAP001"]


# --- the model ---------------------------------------------------------------------------


def test_conditions_of_generic_statements() -> None:
    config = parse(
        "frontend fe\n"
        "    http-request deny if !ok || bad\n"
        "    http-request set-header X-If if\n"
        "    tcp-request content accept unless { req.len gt 0 }\n"
        "    redirect scheme https code 301 if !is_tls\n"
        "    stats uri /stats\n"
        "    force-persist if ok\n"
    )
    context = LintContext(config)
    statements = context.sections[0].statements
    found = [split_condition(stmt) for stmt in statements]
    assert found[0] == (
        Condition("if", (AllOf((AclRef("ok", True),)), AllOf((AclRef("bad"),)))),
        2,
    )
    assert found[1] == (None, -1)  # 'if' with nothing after it is no condition
    assert found[2][0] is not None and found[2][0].kind == "unless"
    assert found[3][1] == 5
    assert found[4] == (None, -1)
    assert found[5] == (Condition.when("ok"), 1)


def test_defaults_inheritance_and_from() -> None:
    config = parse(
        "defaults base\n    mode http\n    timeout client 5s\n"
        "defaults\n    mode tcp\n"
        "frontend a\n    bind :80\n"
        "frontend b from base\n    bind :81\n"
    )
    context = LintContext(config)
    by_name = {proxy.name: proxy for proxy in context.proxies if proxy.kind == "frontend"}
    assert by_name["a"].mode() == "tcp"
    assert by_name["b"].mode() == "http"
    assert by_name["b"].lookup("timeout client") is not None
    assert by_name["a"].lookup("timeout client") is None


def test_exclusive_branches() -> None:
    config = parse(
        ".if defined(A)\nbackend x\n.elif defined(B)\nbackend x\n.else\nbackend x\n.endif\n"
        "backend x\n"
    )
    findings = lint_config(config, options=LintOptions(select=("HAP022",)))
    assert [f.line for f in findings] == [8]


def test_version_guarded_blocks_are_not_judged_by_the_target() -> None:
    text = (
        "global\n.if version_atleast(3.2)\n    tune.lua.openlibs all\n.endif\n"
        "    tune.lua.openlibs all\n"
    )
    assert [(f.code, f.line) for f in lint_text(text)] == [("HAP014", 5)]
    options = LintOptions(target=(3, 2))
    assert lint_text(text, options=options) == []


_BASE = (
    "defaults\n    mode http\n    timeout client 5s\n    timeout connect 5s\n"
    "    timeout server 5s\n{defaults}frontend fe\n    bind :8080\n"
    "    default_backend be\nbackend be\n{backend}    server s1 127.0.0.1:1\n"
)


# A config per keyword whose verdict 2.6 and 2.8 differ on or share: what each release says,
# what the linter says at each target (the codes it reports, errors and warnings).
TARGET_CASES = {
    # new in 2.8: 2.6 refuses it as an unknown option, 2.8 takes it
    "option forwarded": (
        _BASE.format(defaults="    option forwarded\n", backend=""),
        {"2.6": (False, ["HAP014"]), "2.8": (True, [])},
    ),
    # removed in 2.7: 2.6 takes it with a warning, 2.8 refuses it
    "bind-process": (
        _BASE.format(defaults="", backend="    bind-process 1\n"),
        {"2.6": (True, ["HAP017"]), "2.8": (False, ["HAP013"])},
    ),
    # new in 2.9: both refuse it
    "timeout client-hs": (
        _BASE.format(defaults="    timeout client-hs 5s\n", backend=""),
        {"2.6": (False, ["HAP014"]), "2.8": (False, ["HAP014"])},
    ),
    # deprecated "for 2.7" in both releases' warnings, removed by neither
    "tune.ssl.capture-cipherlist-size": (
        "global\n    tune.ssl.capture-cipherlist-size 800\n"
        + _BASE.format(defaults="", backend=""),
        {"2.6": (True, ["HAP017"]), "2.8": (True, ["HAP017"])},
    ),
}


@pytest.mark.haproxy
@pytest.mark.parametrize("keyword", list(TARGET_CASES))
def test_target_version_matches_each_release(
    keyword: str, tmp_path: Path, haproxies: dict[str, str]
) -> None:
    """``lint --target-version X`` on a config: its exit status is what HAProxy X says of the
    same file (exit 1 exactly where that release refuses it), with the codes listed."""
    text, expected = TARGET_CASES[keyword]
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    results = check_each(haproxies, text)
    said = {}
    for version, result in results.items():
        linted = run_cli("lint", "--format", "json", "--target-version", version, str(path))
        codes = [finding["code"] for finding in json.loads(linted.stdout)["findings"]]
        said[version] = (result.ok, codes)
        assert linted.returncode == (0 if result.ok else 1), (version, linted.stdout)
    assert said == expected, {version: result.output for version, result in results.items()}


def test_no_prefix_skips_arity() -> None:
    text = "defaults\n    no log\n    no option httplog\n    default option redispatch\n"
    assert lint_text(text) == []


# --- the command line ----------------------------------------------------------------------


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str | bytes], Path]:
    def make(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return make


CLEAN = (LINT_FIXTURES / "clean.cfg").read_text()
BROKEN = (LINT_FIXTURES / "hap020_undefined_backend.cfg").read_text()
WARNED = (LINT_FIXTURES / "hap031_unused_acl.cfg").read_text()


def test_cli_exit_codes(write: Callable[[str, str | bytes], Path]) -> None:
    clean, broken, warned = write("a.cfg", CLEAN), write("b.cfg", BROKEN), write("c.cfg", WARNED)
    assert run_cli("lint", str(clean)).returncode == 0
    result = run_cli("lint", str(warned))
    assert result.returncode == 0 and "HAP031" in result.stdout
    result = run_cli("lint", str(clean), str(broken))
    assert result.returncode == 1
    assert f"{broken}:11:17: error HAP020" in result.stdout
    assert "2 files checked: 2 errors, 0 warnings" in result.stderr
    result = run_cli("lint", str(broken), str(clean.parent / "missing.cfg"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert run_cli("lint", "--ignore", "HAP020", str(broken)).returncode == 0
    assert run_cli("lint", "--select", "HAP999", str(clean)).returncode == 2
    assert run_cli("lint", "--target-version", "two", str(clean)).returncode == 2


def test_cli_stdin_and_directories(write: Callable[[str, str | bytes], Path]) -> None:
    result = run_cli("lint", "-", stdin=BROKEN)
    assert result.returncode == 1 and result.stdout.startswith("<stdin>:11:17:")
    path = write("b.cfg", BROKEN)
    write("notes.txt", "not a config")
    result = run_cli("lint", str(path.parent))
    assert result.returncode == 1 and "b.cfg:11:17" in result.stdout


def test_cli_json_output(write: Callable[[str, str | bytes], Path]) -> None:
    result = run_cli("lint", "--format", "json", str(write("b.cfg", BROKEN)))
    document = json.loads(result.stdout)
    assert document["summary"] == {"files": 1, "errors": 2, "warnings": 0}
    first = document["findings"][0]
    assert set(first) == {"code", "name", "severity", "message", "file", "line", "col"}


def test_cli_sarif_output(write: Callable[[str, str | bytes], Path]) -> None:
    result = run_cli("lint", "--format", "sarif", str(write("b.cfg", BROKEN)))
    log = json.loads(result.stdout)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [rule["id"] for rule in rules] == sorted(RULES)
    for finding in run["results"]:
        assert rules[finding["ruleIndex"]]["id"] == finding["ruleId"]
        assert finding["level"] in ("error", "warning", "note")
        region = finding["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    assert {r["ruleId"] for r in run["results"]} == {"HAP020"}


def test_cli_list_rules() -> None:
    assert run_cli("lint").returncode == 2
    result = run_cli("lint", "--list-rules")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == len(RULES)


def test_cli_never_prints_a_traceback(write: Callable[[str, str | bytes], Path]) -> None:
    cases = [
        write("binary.cfg", bytes(range(256)) * 4),
        write("latin1.cfg", b"global\n    description caf\xe9 \xff\xfe\n"),
        write("quote.cfg", "global\n    maxconn 'x\n"),
        write("empty.cfg", ""),
    ]
    for path in cases:
        for command in ("lint", "fmt"):
            for extra in ((), ("--format", "sarif")) if command == "lint" else ((), ("--check",)):
                result = run_cli(command, *extra, str(path))
                assert "Traceback" not in result.stderr, (command, path, result.stderr)
                assert result.returncode in (0, 1, 2), (command, path, result.stderr)


def test_pre_commit_hooks_file() -> None:
    text = (ROOT / ".pre-commit-hooks.yaml").read_text()
    try:
        import yaml
    except ImportError:
        require("PyYAML", "not installed; it is in the 'test' extra (scripts/bootstrap)")
    hooks = yaml.safe_load(text)
    assert {hook["id"]: hook["entry"] for hook in hooks} == {
        "haproxy-lint": "lambda-registry lint",
        "haproxy-fmt": "lambda-registry fmt",
    }
    for hook in hooks:
        assert hook["language"] == "python"
        pattern = re.compile(hook["files"])
        assert pattern.search("etc/haproxy/haproxy.cfg")
        assert not pattern.search("setup.cfg")
