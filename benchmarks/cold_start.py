"""Cold start: ``python -c "import runtime.handler"`` against ``python -c "import boto3"``.

Both run in the same session, alternating, each in a fresh interpreter, and the medians are
compared. The handler is measured twice:

* ``local``: no AWS settings, so the embedded store is configured and boto3 is not imported;
* ``lambda``: ``AWS_LAMBDA_FUNCTION_NAME`` is set, so the store is DynamoDB and the import
  includes boto3 itself. ``lambda / boto3`` is the figure the target (at most 1.3) is about:
  what our code, pydantic and lark add to what boto3 alone costs.

Fair conditions for both sides: bytecode is written and read for every module (to a temporary
``PYTHONPYCACHEPREFIX``, after a warm-up run, whatever ``PYTHONDONTWRITEBYTECODE`` says),
the Lark parser cache is warm (as the deployment package ships it), and
``PYDANTIC_DISABLE_PLUGINS=__all__`` is set, as ``deploy/template.yaml`` sets it.

``--package DIR`` measures a package built by ``deploy/build.py`` instead of this checkout
(with ``-I -S`` and boto3 from this environment, like the Lambda runtime provides it).

    python benchmarks/cold_start.py [--runs 21] [--package deploy/build/package]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold import of runtime.handler vs boto3.")
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--package", type=Path, help="a package built by deploy/build.py")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="cold-start-") as scratch:
        env = _environment(Path(scratch))
        lambda_env = {
            **env,
            "AWS_LAMBDA_FUNCTION_NAME": "lambda-registry",
            "AWS_REGION": "us-east-1",
        }
        cases = {
            "python -c pass": (_command("pass", args.package), env),
            "import boto3": (_command("import boto3", args.package), env),
            "import runtime.handler (local)": (
                _command("import runtime.handler", args.package),
                env,
            ),
            "import runtime.handler (lambda)": (
                _command("import runtime.handler", args.package),
                lambda_env,
            ),
            "import boto3, pydantic, lark": (
                _command("import boto3, pydantic, lark", args.package),
                env,
            ),
        }
        for command, case_env in cases.values():  # warm-up: bytecode, parser cache
            subprocess.run(command, env=case_env, cwd=scratch, check=True)
        timings: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (command, case_env) in cases.items():
                started = time.perf_counter()
                subprocess.run(command, env=case_env, cwd=scratch, check=True)
                timings[name].append(time.perf_counter() - started)

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
    sys.exit(main())
