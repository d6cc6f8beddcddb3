"""The formatter: canonical layout, comments in place, meaning unchanged, idempotent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.ast import Blank, Comment, Config
from compiler.errors import ParseError
from compiler.printer import print_config
from grammar.format import UnsafeFormatError, difference, format_text
from grammar.parser import parse
from tests.support.paths import FIXTURES, run_cli

LINT_FIXTURES = FIXTURES / "lint"

MESSY = """\
# top comment
global
\tmaxconn   100    # trailing comment
  log 127.0.0.1   local0
# about the defaults


defaults
      mode http
   timeout client 5s
    timeout connect 5s
    timeout server 5s
frontend fe   # the edge
    bind :8080
  acl is_api path_beg "/api/"   'x'
    use_backend be if is_api
    default_backend be
        # a note about be
backend be
    server s1 10.0.0.1:80 check
    # server s2 10.0.0.2:80 check   (disabled)

# the end
"""

EXPECTED = """\
# top comment
global
    maxconn 100 # trailing comment
    log 127.0.0.1 local0

# about the defaults
defaults
    mode http
    timeout client 5s
    timeout connect 5s
    timeout server 5s

frontend fe # the edge
    bind :8080
    acl is_api path_beg "/api/" 'x'
    use_backend be if is_api
    default_backend be
    # a note about be

backend be
    server s1 10.0.0.1:80 check
    # server s2 10.0.0.2:80 check   (disabled)

# the end
"""


def test_canonical_layout() -> None:
    assert format_text(MESSY) == EXPECTED


def test_idempotent_and_same_meaning() -> None:
    once = format_text(MESSY)
    assert format_text(once) == once
    assert difference(parse(MESSY), parse(once)) is None


def test_crlf_is_kept_and_final_newline_added() -> None:
    text = "global\r\n  maxconn 1\r\nbackend b\r\n  server s 1.1.1.1:80"
    assert (
        format_text(text)
        == "global\r\n    maxconn 1\r\n\r\nbackend b\r\n    server s 1.1.1.1:80\r\n"
    )


def test_words_keep_their_spelling() -> None:
    text = (
        "frontend fe\n"
        '  http-request set-header X-Env "${ENV}" if { hdr(host) -m str "a b" }\n'
        "  acl x path_reg ^/a\\.b$\n"
        "  http-request return status 200 content-type 'text/plain' string \"it's\"\n"
    )
    out = format_text(text)
    assert '"${ENV}"' in out and '"a b"' in out and "^/a\\.b$" in out and "'text/plain'" in out


def test_backslash_before_a_tab_is_kept_meaningful() -> None:
    # `a\` then a TAB: the backslash is literal; with one space it would escape the space.
    text = "global\n    description a\\\tb\n"
    assert parse(text).sections[0].body[0].src.values == ("description", "a\\", "b")  # type: ignore[union-attr]
    out = format_text(text)
    assert parse(out) == parse(text)
    assert out == "global\n    description a\\\\ b\n"


def test_empty_last_word_before_a_blank_is_kept() -> None:
    text = 'global\n    description ""\t\n'
    out = format_text(text)
    assert parse(out) == parse(text)
    assert format_text(out) == out


def test_stray_carriage_return_text_is_dropped_like_haproxy_does() -> None:
    text = "global\n    maxconn 10\rignored by haproxy\n"
    assert format_text(text) == "global\n    maxconn 10\n"


def test_directives_flush_left() -> None:
    text = "  .if defined(X)\n  global\n      maxconn 1\n  .endif\n"
    assert format_text(text) == ".if defined(X)\n\nglobal\n    maxconn 1\n.endif\n"


def test_parse_error_is_raised() -> None:
    with pytest.raises(ParseError):
        format_text("global\n  maxconn 'x\n")


def test_unsafe_output_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import grammar.format as module

    monkeypatch.setattr(module, "format_config", lambda config, newline="\n": "global\n")
    with pytest.raises(UnsafeFormatError):
        format_text("global\n    maxconn 1\n")


def test_compile_output_is_unchanged_by_the_comment_rule() -> None:
    """Comments without a source keep the old placement (the compiler's)."""
    from compiler.ast import Backend, Comment, Config, Defaults, Statement

    config = Config(
        (
            Defaults((Statement("mode", ("http",)), Comment(" Define backends"))),
            Backend("b", (Statement("balance", ("roundrobin",)),)),
        )
    )
    assert print_config(config) == (
        "defaults\n    mode http\n\n# Define backends\nbackend b\n    balance roundrobin\n"
    )


def as_haproxy_reads_it(text: str) -> list[tuple[str, ...]]:
    """Every line but blank ones, in order: a statement or header as the words haproxy gets
    (quotes and escapes resolved) and its trailing comment; a comment line as its text.

    Independent of ``grammar.format``'s own equivalence check, which this tests.
    """
    config = parse(text)
    lines: list[Any] = list(config.preamble)
    for section in config.sections:
        lines += [section, *section.body]
    read: list[tuple[str, ...]] = []
    for line in lines:
        if isinstance(line, Blank):
            continue
        if isinstance(line, Comment):
            read.append(("#", line.text.rstrip()))
            continue
        assert line.src is not None, line
        read.append((*line.src.values, "#", (line.src.comment or "#")[1:].rstrip()))
    return read


@pytest.mark.parametrize("path", sorted(LINT_FIXTURES.glob("*.cfg")), ids=lambda path: path.stem)
def test_fixtures_format_safely(path: Path) -> None:
    """fmt changes layout only: the same words and comments in the same order, the same AST
    once blank lines are set aside, and a second pass changes nothing."""
    text = path.read_text()
    out = format_text(text)
    assert as_haproxy_reads_it(out) == as_haproxy_reads_it(text)
    assert without_blanks(parse(out)) == without_blanks(parse(text))
    assert format_text(out) == out


def without_blanks(config: Config) -> Config:
    def keep(lines: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            Comment(line.text.rstrip()) if isinstance(line, Comment) else line
            for line in lines
            if not isinstance(line, Blank)
        )

    sections = tuple(replace(section, body=keep(section.body)) for section in config.sections)
    return Config(sections, keep(config.preamble))


def test_the_safety_test_sees_a_changed_word() -> None:
    """as_haproxy_reads_it tells apart what haproxy would read differently."""
    base = "global\n    description 'a b' # note\n"
    assert as_haproxy_reads_it(base) == as_haproxy_reads_it(
        'global\n  description "a b"   # note\n'
    )
    for changed in (
        "global\n    description a b # note\n",
        "global\n    description 'a b' # other\n",
        "global\n    description 'a b'\n",
        "global\n    description 'a b' # note\n# added\n",
    ):
        assert as_haproxy_reads_it(changed) != as_haproxy_reads_it(base), changed


@pytest.mark.haproxy
def test_formatted_fixtures_keep_haproxy_verdict(
    assert_haproxy_accepts: Callable[[str], None],
) -> None:
    for path in sorted(LINT_FIXTURES.glob("*.cfg")):
        text = path.read_text()
        if "# haproxy: accept" in text:
            assert_haproxy_accepts(format_text(text))


# --- property tests ----------------------------------------------------------------------

WORD = st.sampled_from(
    ["a", "b1", "'q w'", '"d q"', "x\\ y", "\\#", '"${V}"', "''", "%[src]", "!", "{", "}",
     "if", "-i", "/p", "a\\", "\\x41", "é", "\t", "#c"]
)  # fmt: skip
KEYWORD = st.sampled_from(["maxconn", "acl", "use_backend", "server", "option", "no", "x"])
HEADER = st.sampled_from(["global", "defaults", "frontend f", "backend b", "listen l", "peers p"])


@st.composite
def configs(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.integers(0, 5))
        indent = draw(st.sampled_from(["", " ", "    ", "\t", "  \t "]))
        if kind == 0:
            lines.append(draw(HEADER))
        elif kind == 1:
            lines.append(indent + "#" + draw(st.text(max_size=10)).replace("\n", " "))
        elif kind == 2:
            lines.append(indent)
        elif kind == 3:
            lines.append(indent + draw(st.sampled_from([".if defined(X)", ".else", ".endif"])))
        else:
            words = [draw(KEYWORD), *draw(st.lists(WORD, max_size=5))]
            sep = draw(st.sampled_from([" ", "  ", "\t"]))
            lines.append(indent + sep.join(words))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_fmt_property(text: str) -> None:
    try:
        out = format_text(text)
    except ParseError:
        return
    assert format_text(out) == out
    assert difference(parse(text), parse(out)) is None


def test_cli_fmt_modes(tmp_path: Path) -> None:
    path = tmp_path / "haproxy.cfg"
    path.write_text(MESSY)
    result = run_cli("fmt", "--check", str(path))
    assert result.returncode == 1 and "would reformat" in result.stderr
    assert path.read_text() == MESSY
    result = run_cli("fmt", "--diff", str(path))
    assert result.returncode == 0 and result.stdout.startswith("---")
    assert path.read_text() == MESSY
    path.chmod(0o640)
    assert run_cli("fmt", str(path)).returncode == 0
    assert path.read_text() == EXPECTED
    assert path.stat().st_mode & 0o777 == 0o640
    assert run_cli("fmt", "--check", str(path)).returncode == 0
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    result = run_cli("fmt", "-", stdin=MESSY)
    assert result.returncode == 0 and result.stdout == EXPECTED


def test_cli_fmt_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text("global\n  maxconn 'x\n")
    result = run_cli("fmt", str(bad))
    assert result.returncode == 2 and "bad.cfg:2:11" in result.stderr
    latin = tmp_path / "latin.cfg"
    latin.write_bytes(b"global\n  description caf\xe9\n")
    result = run_cli("fmt", str(latin))
    assert result.returncode == 2 and "not valid UTF-8" in result.stderr
    assert latin.read_bytes() == b"global\n  description caf\xe9\n"
