"""The parser on large inputs, in process: the figures its tests used to assert, measured.

* 100k lines: ``parse`` of one frontend with an ACL and a ``use_backend`` rule per backend,
  then 10 000 backends of 5 servers (the config of ``tests/grammar/test_grammar.py``; the test bound
  was 5 s of CPU);
* one 50 MB line: ``parse`` and ``lint_text`` of a ``description`` holding it, and ``parse``
  refusing the same line with an unterminated quote (``tests/grammar/test_lint_fuzz.py``; the test
  bound was 60 s for the three).

CPU seconds (``time.process_time``), best of ``--repeat``; peak memory of the process last.

    python benchmarks/grammar_bench.py [--backends 10000] [--repeat 3]

Fails (exit 1) when what is measured did not happen: a section or server missing from the
parse, a finding on the long line, or the unterminated quote accepted.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.ast import Server  # noqa: E402
from compiler.errors import ParseError  # noqa: E402
from grammar.lint import lint_text  # noqa: E402
from grammar.parser import parse  # noqa: E402

T = TypeVar("T")


class Failed(Exception):
    pass


def big_config(backends: int, servers: int = 5) -> str:
    out = [
        "global\n    maxconn 200000\n\ndefaults\n    mode http\n    timeout connect 5s\n",
        "    timeout client 30s\n    timeout server 30s\n\nfrontend fe_main\n",
        "    bind 127.0.0.1:18080\n",
    ]
    for index in range(backends):
        out.append(f"    acl host_{index} hdr(host) -i app{index}.example.com\n")
        out.append(f"    use_backend be_{index} if host_{index}\n")
    for index in range(backends):
        out.append(f"\nbackend be_{index}\n    balance roundrobin\n")
        for server in range(servers):
            address = f"10.{index // 256 % 256}.{index % 256}.{server + 1}:8080"
            out.append(f"    server s{server} {address} check weight 10\n")
    return "".join(out)


def best(run: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Fewest CPU seconds over ``repeat`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.process_time()
        result = run()
        times.append(time.process_time() - started)
    assert result is not None
    return min(times), result


def refused(text: str) -> ParseError:
    try:
        parse(text)
    except ParseError as error:
        return error
    raise Failed("an unterminated quote on a 50 MB line was accepted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The parser on large inputs.")
    parser.add_argument("--backends", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    try:
        text = big_config(args.backends)
        lines = text.count("\n")
        seconds, config = best(lambda: parse(text), args.repeat)
        servers = sum(isinstance(x, Server) for s in config.sections for x in s.body)
        if len(config.sections) != args.backends + 3 or servers != 5 * args.backends:
            raise Failed(f"parse lost something: {len(config.sections)} sections, {servers}")
        print(f"parse, {lines} lines ({args.backends} backends x 5 servers): {seconds:.2f} s CPU")

        line = "global\n    description " + "x" * 50_000_000 + "\n"
        seconds, long_config = best(lambda: parse(line), args.repeat)
        kept = long_config.sections[0].body[0].src.values[1]  # type: ignore[union-attr]
        if len(kept) != 50_000_000:
            raise Failed(f"the 50 MB word came back with {len(kept)} characters")
        print(f"parse, one 50 MB line: {seconds:.2f} s CPU")
        seconds, findings = best(lambda: lint_text(line), args.repeat)
        if findings:
            raise Failed(f"lint found something on the long line: {findings[:3]}")
        print(f"lint, one 50 MB line: {seconds:.2f} s CPU")
        bad = "global\n    description '" + "y" * 50_000_000 + "\n"
        seconds, error = best(lambda: refused(bad), args.repeat)
        print(f"parse refusing an unterminated quote on it: {seconds:.2f} s CPU ({error.message})")
    except Failed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {peak:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
