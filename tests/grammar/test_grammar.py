"""The parser: HAProxy's word splitting, line typing, sections, and the lossless source."""

from __future__ import annotations

import gc
import re
import subprocess
import sys
from pathlib import Path

import pytest
from lark.exceptions import UnexpectedToken
from lark.lexer import Token

from compiler.ast import (
    AclRef,
    AllOf,
    AnonymousAcl,
    Backend,
    Blank,
    Comment,
    Condition,
    Config,
    Defaults,
    Directive,
    Frontend,
    GenericSection,
    Global,
    Option,
    Server,
    Statement,
    UseBackend,
)
from compiler.errors import ParseError
from grammar import lexer as lexer_module
from grammar.lalr import _parse_error
from grammar.lexer import LexedLine, lex, lex_line
from grammar.parser import parse
from grammar.sections import SECTION_KEYWORDS
from runtime.files import read_text
from tests.support.haproxies import Oracle
from tests.support.paths import SHARED
from tests.support.required import requirement

CORPUS = SHARED / "corpus" / "haproxy"
CORPUS_FILES = sorted(CORPUS.glob("*.cfg")) if CORPUS.is_dir() else []
NO_CORPUS = requirement("shared corpus", False, f"no {CORPUS}/*.cfg (../shared is not here)")
CORPUS_PARAMS = [pytest.param(path, id=path.name) for path in CORPUS_FILES] or [
    pytest.param(None, id="no-corpus", marks=NO_CORPUS)
]


def values(line: str) -> tuple[str, ...]:
    return lex_line(line).values


def source_texts(config: Config) -> list[str]:
    """Every node's ``src.text``, in document order."""
    texts: list[str] = []
    for line in config.preamble:
        assert line.src is not None
        texts.append(line.src.text)
    for section in config.sections:
        assert section.src is not None
        texts.append(section.src.text)
        for line in section.body:
            assert line.src is not None
            texts.append(line.src.text)
    return texts


def rebuilt(line: LexedLine) -> str:
    """A line spelled back from its parts (indent, words, blanks, comment, ending)."""
    gaps, trailing = line.separators
    out = [line.indent]
    for index, word in enumerate(line.raw_words):
        if index:
            out.append(gaps[index - 1])
        out.append(word.raw)
    out.append(trailing)
    out.append(line.comment or "")
    out.append(line.newline)
    return "".join(out)


# --- the word splitter -------------------------------------------------------------------

WORDS = [
    pytest.param("k abc", ("k", "abc"), id="plain"),
    pytest.param('k "a b"', ("k", "a b"), id="double-quoted-blank"),
    pytest.param("k 'a b'", ("k", "a b"), id="single-quoted-blank"),
    pytest.param("k a\\ b", ("k", "a b"), id="escaped-blank"),
    pytest.param("k \\ ", ("k", " "), id="escaped-blank-alone"),
    pytest.param("k \\#x", ("k", "#x"), id="escaped-hash"),
    pytest.param("k \\\\", ("k", "\\"), id="escaped-backslash"),
    pytest.param("k \\'", ("k", "'"), id="escaped-single-quote"),
    pytest.param('k \\"', ("k", '"'), id="escaped-double-quote"),
    pytest.param("k 'it'\\''s'", ("k", "it's"), id="shell-style-quote"),
    pytest.param('k "$X"', ("k", "$X"), id="env-double-quoted-kept"),
    pytest.param('k "${X}"', ("k", "${X}"), id="env-braces-kept"),
    pytest.param("k ${X-d}", ("k", "${X-d}"), id="env-unquoted-literal"),
    pytest.param('k "${X-a b}c"', ("k", "${X-a b}c"), id="env-default-with-blank"),
    pytest.param('k "${X-a"b}"', ("k", '${X-a"b}'), id="env-default-raw-to-brace"),
    pytest.param('k "${X[*]}"', ("k", "${X[*]}"), id="env-word-expansion-kept"),
    pytest.param('k "$.LINE"', ("k", "$.LINE"), id="env-pseudo-variable"),
    pytest.param('k "\\$X"', ("k", "$X"), id="escaped-dollar-in-double-quotes"),
    pytest.param("k \\$X", ("k", "\\$X"), id="escaped-dollar-unquoted-keeps-backslash"),
    pytest.param("k '\\$X'", ("k", "\\$X"), id="escaped-dollar-single-quoted"),
    pytest.param("k '$X'", ("k", "$X"), id="env-single-quoted"),
    pytest.param("k ^/a\\.b$", ("k", "^/a\\.b$"), id="regex-backslash-dot"),
    pytest.param('k "\\."', ("k", "\\."), id="regex-backslash-dot-quoted"),
    pytest.param("k \\x41\\x4a", ("k", "AJ"), id="hex"),
    pytest.param('k "\\t\\n\\r"', ("k", "\t\n\r"), id="control-escapes"),
    pytest.param("k 'a\\tb'", ("k", "a\\tb"), id="no-escapes-in-single-quotes"),
    pytest.param("k a\"b c\"'d'", ("k", "ab cd"), id="mixed-parts-join"),
    pytest.param("k abc\"d e\"'f'", ("k", "abcd ef"), id="mixed-parts-join-2"),
    pytest.param("k 'a\"b'", ("k", 'a"b'), id="double-quote-in-single"),
    pytest.param('k "a\'b"', ("k", "a'b"), id="single-quote-in-double"),
    pytest.param("k '#' \"#\"", ("k", "#", "#"), id="quoted-hash"),
    pytest.param("k a#b", ("k", "a"), id="hash-inside-word-starts-comment"),
    pytest.param("k a\\", ("k", "a\\"), id="backslash-at-end"),
    pytest.param("k\ta\v\fb", ("k", "a", "b"), id="tab-vt-ff-separate"),
    pytest.param("k '' x", ("k", "", "x"), id="empty-word-kept-in-the-middle"),
    pytest.param('k ""', ("k",), id="empty-last-word-dropped"),
    pytest.param('k "" ', ("k", ""), id="empty-last-word-kept-before-blank"),
    pytest.param('k ""#c', ("k",), id="empty-last-word-dropped-before-comment"),
    pytest.param("k a\rb c", ("k", "a"), id="stray-cr-ends-the-line"),
    pytest.param("k a \rb", ("k", "a", "b"), id="cr-in-blank-run-is-blank"),
    pytest.param("k a\x1cb\u3000c\xa0d", ("k", "a\x1cb\u3000c\xa0d"), id="no-unicode-blanks"),
]


@pytest.mark.parametrize(("line", "expected"), WORDS)
def test_word_values(line: str, expected: tuple[str, ...]) -> None:
    assert values(line) == expected


def test_raw_words_and_columns() -> None:
    line = lex_line("  k  a\"b c\"'d'\t\\#x # note", newline="\n")
    assert [(word.value, word.raw, word.col) for word in line.words] == [
        ("k", "k", 3),
        ("ab cd", "a\"b c\"'d'", 6),
        ("#x", "\\#x", 16),
    ]
    assert line.indent == "  "
    assert line.comment == "# note"
    assert line.separators == (("  ", "\t"), " ")
    assert rebuilt(line) == line.text


@pytest.mark.parametrize(
    ("line", "message", "col"),
    [
        pytest.param("k 'abc", "unmatched quote", 3, id="single"),
        pytest.param('k "abc', "unmatched quote", 3, id="double"),
        pytest.param("k '\\''", "unmatched quote", 6, id="shell-style-alone"),
        pytest.param('k "a" "b', "unmatched quote", 7, id="second-quote"),
        pytest.param('k "a\rb"', "unmatched quote", 3, id="cr-ends-quoted-text"),
        pytest.param("k \\x4", "truncated or invalid hexadecimal sequence", 3, id="hex-short"),
        pytest.param('k "\\xzz"', "truncated or invalid hexadecimal sequence", 4, id="hex-bad"),
        pytest.param('k "$"', "forbidden first char in environment variable name", 5, id="dollar"),
        pytest.param('k "$1"', "forbidden first char in environment variable name", 5, id="digit"),
        pytest.param('k "$.X"', "forbidden first char in environment variable name", 5, id="dot"),
        pytest.param('k "${X"', "unmatched brace in environment variable name", 5, id="brace"),
        pytest.param('k "${X-a"', "unmatched brace in environment variable name", 5, id="brace-"),
        pytest.param('k "${X[1]}"', "truncated or invalid word expansion sequence", 7, id="expand"),
    ],
)
def test_line_errors_are_located(line: str, message: str, col: int) -> None:
    text = "global\n    maxconn 10\n" + line + "\n"
    with pytest.raises(ParseError) as caught:
        parse(text, file="f.cfg")
    error = caught.value
    assert (error.message, error.file, error.line, error.col) == (message, "f.cfg", 3, col)
    assert str(error) == f"f.cfg:3:{col}: {message}"


def test_garbage_collector_is_restored() -> None:
    assert gc.isenabled()
    with pytest.raises(ParseError):
        parse("k 'x\n")
    assert gc.isenabled()
    gc.disable()
    try:
        parse("k x\n")
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_lines_keep_their_endings() -> None:
    lines = lex("a\r\nb\n\nc\rd\ne")
    assert [(line.text, line.newline) for line in lines] == [
        ("a\r\n", "\r\n"),
        ("b\n", "\n"),
        ("\n", "\n"),
        ("c\rd\n", "\n"),  # a lone CR is no line ending
        ("e", ""),
    ]
    assert [line.values for line in lines] == [("a",), ("b",), (), ("c",), ("e",)]
    assert [line.number for line in lines] == [1, 2, 3, 4, 5]


def test_empty_text_has_no_lines() -> None:
    assert lex("") == []
    assert lex("\n")[0].text == "\n"


def test_repeated_lines_are_lexed_alike() -> None:
    first, second = lex("    check x\n    check x\n")
    assert (first.number, second.number) == (1, 2)
    assert first.raw_words == second.raw_words
    assert first[1:] == second[1:]


def test_fast_path_characters_match_str_isspace() -> None:
    """Every character str.split() splits on is a blank to HAProxy or goes to the scanner."""
    haproxy_blanks = set(" \t\n\v\f\r")
    python_only = {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()}
    python_only -= haproxy_blanks
    assert python_only
    for char in python_only:
        assert lexer_module._NEEDS_SCANNER.search(char), repr(char)


# --- lines and sections ------------------------------------------------------------------

SAMPLE = """\
# generated
.if defined(EDGE)

global
    maxconn 100   # per process
    # tuning
    nbthread 4
defaults web from base
    no option httpclose
    timeout client 30s
frontend fe_main # the edge
    bind :80
    acl is_api path_beg /api
    use_backend b if a !c || { hdr(x) -i y }
    default_backend b
.endif
backend b
    server s1 10.0.0.1:80 check
listen stats
frontend
userlist admins
    user admin password '$5$x'  # "$5$x" would be an error: '$5' is no variable name
"""


def test_sample_structure() -> None:
    config = parse(SAMPLE)
    assert config.preamble == (
        Comment(" generated"),
        Directive(".if", ("defined(EDGE)",)),
        Blank(),
    )
    kinds = [type(section).__name__ for section in config.sections]
    assert kinds == [
        "Global", "Defaults", "Frontend", "Backend", "GenericSection", "GenericSection",
        "GenericSection",
    ]  # fmt: skip
    glob, defaults, frontend, backend, listen, anonymous, userlist = config.sections
    assert isinstance(glob, Global)
    assert glob.body == (Statement("maxconn", ("100",)), Comment(" tuning"),
                         Statement("nbthread", ("4",)))  # fmt: skip
    assert isinstance(defaults, Defaults)
    assert defaults.header_args == ("web", "from", "base")
    assert defaults.body[0] == Option("httpclose", prefix="no")
    assert isinstance(frontend, Frontend)
    assert frontend.name == "fe_main"
    assert frontend.src is not None and frontend.src.comment == "# the edge"
    assert frontend.body[2] == UseBackend(
        "b",
        Condition(
            "if",
            (
                AllOf((AclRef("a"), AclRef("c", negated=True))),
                AllOf((AnonymousAcl(("hdr(x)", "-i", "y")),)),
            ),
        ),
    )
    assert frontend.body[-1] == Directive(".endif")
    assert isinstance(backend, Backend)
    assert backend.body == (Server("s1", "10.0.0.1:80", ("check",)),)
    assert listen == GenericSection("listen", ("stats",))
    assert anonymous == GenericSection("frontend")  # no name: not a Frontend
    assert userlist == GenericSection(
        "userlist", ("admins",), (Statement("user", ("admin", "password", "$5$x")),)
    )


def test_source_of_a_statement() -> None:
    config = parse(SAMPLE, file="x.cfg")
    maxconn = config.sections[0].body[0]
    assert maxconn.src is not None
    assert maxconn.src.line == 5
    assert maxconn.src.text == "    maxconn 100   # per process\n"
    assert maxconn.src.indent == "    "
    assert [(word.raw, word.col) for word in maxconn.src.words] == [("maxconn", 5), ("100", 13)]
    assert maxconn.src.comment == "# per process"
    assert maxconn.src.newline == "\n"


def test_no_option() -> None:
    config = parse("defaults\n  no option x\n  option httplog clf\n")
    assert config.sections[0].body == (
        Option("x", prefix="no"),
        Option("httplog", ("clf",)),
    )


def test_use_backend_condition() -> None:
    (line,) = parse("frontend f\n  use_backend b if a !c || { hdr(x) -i y }\n").sections[0].body
    assert isinstance(line, UseBackend)
    assert line.condition == Condition(
        "if",
        (
            AllOf((AclRef("a"), AclRef("c", True))),
            AllOf((AnonymousAcl(("hdr(x)", "-i", "y")),)),
        ),
    )


def test_every_section_keyword_opens_a_section() -> None:
    for keyword in sorted(SECTION_KEYWORDS):
        (section,) = parse(f"{keyword} x\n  k v\n").sections
        assert section.keyword == keyword
        assert section.body == (Statement("k", ("v",)),)


def test_quoted_section_keyword_and_escaped_hash() -> None:
    config = parse("'global'\n  \\#not-a-comment 1\n")
    assert isinstance(config.sections[0], Global)
    assert config.sections[0].body == (Statement("#not-a-comment", ("1",)),)


def test_preamble_only() -> None:
    config = parse("# a\n\n  maxconn 1\n.notice hi")
    assert config.sections == ()
    assert config.preamble == (Comment(" a"), Blank(), Statement("maxconn", ("1",)),
                               Directive(".notice", ("hi",)))  # fmt: skip


def test_empty_input() -> None:
    assert parse("") == Config()


def test_layout_does_not_change_meaning() -> None:
    tight = parse("backend b\n  server s 1.1.1.1:80 check\n")
    loose = parse("backend   'b'  # x\r\n\tserver\ts \"1.1.1.1:80\"   check   ")
    assert tight == loose
    assert source_texts(tight) != source_texts(loose)


def test_crlf_and_no_final_newline() -> None:
    text = "global\r\n    maxconn 1 # c\r\n\r\nbackend b\r\n    server s 1.1.1.1:80"
    config = parse(text)
    assert "".join(source_texts(config)) == text
    glob, backend = config.sections
    assert glob.body[0] == Statement("maxconn", ("1",))
    assert glob.body[0].src is not None and glob.body[0].src.comment == "# c"
    assert glob.body[0].src.newline == "\r\n"
    last = backend.body[-1]
    assert last == Server("s", "1.1.1.1:80")
    assert last.src is not None and (last.src.text, last.src.newline) == (
        "    server s 1.1.1.1:80",
        "",
    )


def test_lines_haproxy_ignores() -> None:
    config = parse('global\n  ""\n  k a\rrest # c\n  ""#c\n')
    blank, statement, comment = config.sections[0].body
    assert isinstance(blank, Blank)  # an empty word alone: HAProxy sees an empty line
    assert statement == Statement("k", ("a",))
    assert statement.src is not None and statement.src.comment is None  # not a '#' comment
    assert comment == Comment("c")


def test_parse_file_keeps_bytes(tmp_path: Path) -> None:
    data = b"# caf\xe9 \xff\r\nglobal\r\n    maxconn 1\r\n"
    path = tmp_path / "h.cfg"
    path.write_bytes(data)
    config = parse(read_text(str(path)), file=str(path))
    text = "".join(source_texts(config))
    assert text.encode("utf-8", "surrogateescape") == data
    with pytest.raises(ParseError) as caught:
        path.write_text("global\n  k 'x\n")
        parse(read_text(str(path)), file=str(path))
    assert (caught.value.file, caught.value.line, caught.value.col) == (str(path), 2, 5)


def test_lark_errors_become_located_parse_errors() -> None:
    line = lex_line("  k v", 7)
    error = UnexpectedToken(Token("STATEMENT", line), {"SECTION_HEADER"})  # type: ignore[no-untyped-call]
    converted = _parse_error(error, [line], "f.cfg")
    assert (converted.file, converted.line, converted.col) == ("f.cfg", 7, 3)
    end = UnexpectedToken(Token("$END", ""), {"STATEMENT"})  # type: ignore[no-untyped-call]
    assert _parse_error(end, [line], "f.cfg").line == 7


# --- the corpus: lossless source ---------------------------------------------------------


@pytest.mark.parametrize("path", CORPUS_PARAMS)
def test_corpus_sources_concatenate_to_the_input(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    config = parse(text, file=path.name)
    assert "".join(source_texts(config)) == text
    for line in lex(text):
        assert rebuilt(line) == line.text


# --- against the real haproxy ------------------------------------------------------------

# Words whose value `.notice` prints back; no `$` in double quotes (haproxy would expand it).
NOTICE_WORDS = [
    "abc", "'a b'", '"a b"', "a\\ b", "\\#x", "\\\\", "\\'", '\\"', "'it'\\''s'", "x\\.y",
    '"x\\.y"', "\\x41\\x4a", "a\"b c\"'d'", "\\$X", "'\\$X'", '"\\$X"', "${X-d}", "$X",
    "'\"'", "\"'\"", "\"\\'\"", "a\\", "'\\'", '"\\ \\#"', "'' x", '"" ', "\t'a'\t",
]  # fmt: skip
NOTICE_ERRORS = ["'abc", '"abc', "'\\''", "\\x4", '"$"', '"${X"', '"${X[1]}"', '"$1"']


@pytest.mark.haproxy
def test_word_values_match_haproxy(haproxy_oracle: Oracle, tmp_path: Path) -> None:
    """`.notice <word>` makes haproxy print the one word it read, or the error it found (2.6
    and 2.8 alike)."""
    lines = [f".notice {word}" for word in NOTICE_WORDS + NOTICE_ERRORS]
    path = tmp_path / "notice.cfg"
    path.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [haproxy_oracle.binary, "-c", "-f", path.name],
        cwd=tmp_path,
        env={},
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {
        int(match[1]): match[2]
        for match in re.finditer(r"parsing \[notice\.cfg:(\d+)\]: (.*)", result.stderr)
    }
    for number, line in enumerate(lines, 1):
        said = reported.get(number, "")
        try:
            words = values(line)
        except ParseError as error:
            assert said.startswith(f"{error.message} at position {error.col}:"), (line, said)
            continue
        if len(words) > 2 and words[2]:
            assert said.startswith(f"Unexpected argument '{words[2]}'"), (line, said)
        else:
            assert said == f"'{words[1] if len(words) > 1 else ''}'.", (line, said)


# --- a large config (its parse time is measured by benchmarks/grammar_bench.py) ---------------


def big_config(backends: int, servers: int = 5) -> str:
    out = ["global\n    maxconn 200000\n\ndefaults\n    mode http\n    timeout connect 5s\n",
           "    timeout client 30s\n    timeout server 30s\n\nfrontend fe_main\n",
           "    bind 127.0.0.1:18080\n"]  # fmt: skip
    for index in range(backends):
        out.append(f"    acl host_{index} hdr(host) -i app{index}.example.com\n")
        out.append(f"    use_backend be_{index} if host_{index}\n")
    for index in range(backends):
        out.append(f"\nbackend be_{index}\n    balance roundrobin\n")
        for server in range(servers):
            address = f"10.{index // 256 % 256}.{index % 256}.{server + 1}:8080"
            out.append(f"    server s{server} {address} check weight 10\n")
    return "".join(out)


def test_a_hundred_thousand_lines_parse_completely() -> None:
    """Every one of 10 000 backends, rules and 50 000 servers arrives in the AST, in order."""
    text = big_config(10_000)
    assert text.count("\n") > 100_000
    config = parse(text)
    assert len(config.sections) == 10_003
    frontend = config.sections[2]
    assert isinstance(frontend, Frontend)
    routes = [line for line in frontend.body if isinstance(line, UseBackend)]
    assert [route.backend for route in routes] == [f"be_{index}" for index in range(10_000)]
    backends = config.sections[3:]
    assert all(isinstance(section, Backend) for section in backends)
    assert [section.name for section in backends] == [f"be_{i}" for i in range(10_000)]  # type: ignore[union-attr]
    last = [line for line in backends[-1].body if isinstance(line, Server)]
    assert [(s.name, s.address, s.params) for s in last] == [
        (f"s{k}", f"10.39.15.{k + 1}:8080", ("check", "weight", "10")) for k in range(5)
    ]
    assert sum(isinstance(line, Server) for b in backends for line in b.body) == 50_000


# --- the round trip's comparison (compare without copies) ------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        # Spelled as a backend header: reads back as a Backend, not a generic section.
        (Config((GenericSection("backend", ("b",)),)), "section 1: expected 'backend b'"),
        # A statement named like a section keyword starts a section of its own.
        (
            Config((Backend("b", (Statement("backend", ("c",)),)),)),
            "backend b: expected 1 lines, got 0",
        ),
        # In the preamble too.
        (Config((), (Statement("acl", ("a", "path", "/x")),)), "preamble, line 1"),
        (Config((Frontend("f", header_args=("x",)),)), "no difference"),
    ],
)
def test_round_trip_mismatches_are_found(config: Config, message: str) -> None:
    from compiler.errors import InternalError
    from grammar.roundtrip import print_verified

    if message == "no difference":
        print_verified(config)  # header arguments survive: no error
        return
    with pytest.raises(InternalError) as caught:
        print_verified(config)
    assert message in str(caught.value)


def test_round_trip_ignores_blank_lines_only() -> None:
    from grammar.roundtrip import print_verified

    config = Config(
        (Global((Blank(), Statement("daemon"), Blank())), Backend("b", (Blank(), Option("x"))))
    )
    text = print_verified(config)
    assert "daemon" in text and "option x" in text
