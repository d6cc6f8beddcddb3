"""Cold start: ``python -c "import runtime.handler"`` against ``python -c "import boto3"``.

Both run in the same session, alternating, each in a fresh interpreter, and the medians are
compared. The handler is measured twice:

* ``local``: no AWS settings, so the embedded store is configured and boto3 is not imported;
* ``lambda``: ``AWS_LAMBDA_FUNCTION_NAME`` is set, so the store is DynamoDB and the import
  includes boto3 itself. ``lambda / boto3`` is the figure the target (at most 1.2) is about:
  what our code and pydantic add to what boto3 alone costs (lark is loaded at the first
  parse, in the first call, not at import).

Fair conditions for both sides: bytecode is written and read for every module (to a temporary
``PYTHONPYCACHEPREFIX``, after a warm-up run, whatever ``PYTHONDONTWRITEBYTECODE`` says),
the Lark parser cache is warm (as the deployment package ships it), and
``PYDANTIC_DISABLE_PLUGINS=__all__`` is set, as ``deploy/template.yaml`` sets it.

``--package DIR`` measures a package built by ``deploy/build.py`` instead of this checkout
(with ``-I -S`` and boto3 from this environment, like the Lambda runtime provides it).

    python benchmarks/cold_start.py [--runs 21] [--package deploy/build/package]

Before timing, each case runs once more to check that it imports what its name says: boto3
absent from ``sys.modules`` for ``local``, present for ``lambda``, and with ``--package``, the
handler and its dependencies loaded from the package. The benchmark fails (exit 1, with the
reason on stderr) when a check or any timed run does not pass.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import BenchmarkFailed, run_benchmark  # noqa: E402

TARGET = 1.2
# Printed by each case's check run: where the modules came from, and whether boto3 was loaded.
_REPORT = (
    "; import json as _j, sys as _s; print(_j.dumps({'boto3': 'boto3' in _s.modules, "
    "'files': {n: getattr(_s.modules.get(n), '__file__', None) for n in "
    "('runtime.handler', 'pydantic', 'lark')}}))"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold import of runtime.handler vs boto3.")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--package", type=Path, help="a package built by deploy/build.py")
    args = parser.parse_args(argv)
    if args.runs < 1:
        raise BenchmarkFailed(f"--runs must be at least 1, not {args.runs}")
    if args.package is not None and not (args.package / "runtime" / "handler.py").is_file():
        raise BenchmarkFailed(f"{args.package} is not a package built by deploy/build.py")

    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        env = _environment(Path(scratch))
        lambda_env = {
            **env,
            "AWS_LAMBDA_FUNCTION_NAME": "lambda-registry",
            "AWS_REGION": "us-east-1",
        }
        # name: (code, environment, boto3 expected loaded, modules expected loaded)
        specs = {
            "python -c pass": ("pass", env, False, ()),
            "import boto3": ("import boto3", env, True, ()),
            "import runtime.handler (local)": (
                "import runtime.handler",
                env,
                False,
                ("runtime.handler", "pydantic"),
            ),
            "import runtime.handler (lambda)": (
                "import runtime.handler",
                lambda_env,
                True,
                ("runtime.handler", "pydantic"),
            ),
            "import boto3, pydantic, lark": (
                "import boto3, pydantic, lark",
                env,
                True,
                ("pydantic", "lark"),
            ),
        }
        for name, (code, case_env, boto3, modules) in specs.items():
            _check_case(name, code, case_env, boto3, modules, args.package, scratch)
        cases = {
            name: (_command(code, args.package), case_env)
            for name, (code, case_env, _, _) in specs.items()
        }
        for name, (command, case_env) in cases.items():  # warm-up: bytecode, parser cache
            _run(name, command, case_env, scratch)
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (command, case_env) in cases.items():
                started = time.perf_counter()
                _run(name, command, case_env, scratch)
                timings[name].append(time.perf_counter() - started)
        if any(len(values) != args.runs for values in timings.values()):
            raise BenchmarkFailed(f"not every case ran {args.runs} times: {timings}")

    medians = {name: statistics.median(values) * 1000 for name, values in timings.items()}
    boto3_ms = medians["import boto3"]
    where = f"package {args.package}" if args.package else "checkout"
    print(f"cold import, median of {args.runs} runs ({where}, Python {sys.version.split()[0]})")
    for name, value in medians.items():
        print(f"  {name:34} {value:7.1f} ms   {value / boto3_ms:5.2f} x boto3")
    local = medians["import runtime.handler (local)"] / boto3_ms
    inside = medians["import runtime.handler (lambda)"] / boto3_ms
    print(f"ratio local  (handler without boto3) / boto3: {local:.2f}")
    print(f"ratio lambda (handler with boto3)    / boto3: {inside:.2f} (target <= {TARGET})")
    return 0


def _run(name: str, command: list[str], env: dict[str, str], cwd: str) -> None:
    done = subprocess.run(
        command,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkFailed(
            f"{name!r} exited {done.returncode}: {done.stderr.strip()[-2000:] or '(no stderr)'}"
        )


def _check_case(
    name: str,
    code: str,
    env: dict[str, str],
    boto3: bool,
    modules: tuple[str, ...],
    package: Path | None,
    cwd: str,
) -> None:
    """Run the case once with a report of what it loaded; fail unless it is what it says."""
    done = subprocess.run(
        _command(code + _REPORT, package),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchmarkFailed(
            f"{name!r} exited {done.returncode}: {done.stderr.strip()[-2000:] or '(no stderr)'}"
        )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["boto3"] != boto3:
        raise BenchmarkFailed(
            f"{name!r} {'did not import' if boto3 else 'imported'} boto3; the case is "
            f"meant to {'include' if boto3 else 'leave out'} it"
        )
    home = package.resolve() if package is not None else ROOT
    for module in modules:
        where = report["files"][module]
        if where is None:
            raise BenchmarkFailed(f"{name!r} did not load {module}")
        checked = module == "runtime.handler" or package is not None
        if checked and not Path(where).resolve().is_relative_to(home):
            raise BenchmarkFailed(f"{name!r} loaded {module} from {where}, not from {home}")


def _environment(scratch: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "LAMBDA_REGISTRY_", "PYTHONDONTWRITEBYTECODE"))
    }
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
    env["XDG_STATE_HOME"] = str(scratch / "state")
    env["PYTHONPATH"] = str(ROOT)
    return env


def _command(code: str, package: Path | None) -> list[str]:
    if package is None:
        return [sys.executable, "-c", code]
    import boto3

    boto3_home = str(Path(boto3.__file__).resolve().parent.parent)
    prelude = f"import sys; sys.path[:0] = [{str(package)!r}]; sys.path.append({boto3_home!r}); "
    return [sys.executable, "-I", "-S", "-c", prelude + code]


if __name__ == "__main__":
    sys.exit(run_benchmark("cold_start", main))
