#!/usr/bin/env python3
"""Build the Lambda deployment package: ``python deploy/build.py`` -> ``deploy/build/package``.

The package holds what the handler imports and nothing else:

* the runtime dependencies from ``pyproject.toml`` (pydantic, lark) and theirs, installed by
  pip as manylinux wheels for the Lambda runtime's Python version and architecture, pinned
  to the versions installed here (what the tests ran against; ``--latest`` resolves them
  from the index instead);
* ``compiler/``, ``grammar/`` (with ``haproxy.lark``) and ``runtime/``. Cosmonaut, the tests
  and the pytest plugin stay out, and so does boto3: the Lambda Python runtime provides it;
* bytecode for every module, compiled with ``--invalidation-mode unchecked-hash``. Lambda's
  ``/var/task`` is read-only, so a missing or stale ``.pyc`` would mean compiling on every
  cold start;
* ``.lark-cache/``: the Lark parser's cache, which the handler loads the parser from (read
  only), so the LALR tables are not rebuilt in every new sandbox.

The target is the template's runtime (``--python-version``, default 3.13, as ``Runtime:
python3.13`` in ``deploy/template.yaml``). The bytecode and the parser cache are made by an
interpreter of that version: ``--python PATH``, or this one if it is that version, or
``pythonX.Y`` on ``PATH``. Without one they are left out, with a warning; the package still
works, it only starts slower.

Options: ``--out DIR``, ``--python-version X.Y``, ``--python PATH``, ``--arch x86_64|arm64``,
``--latest``, ``--zip FILE`` (also write a zip archive, e.g. for
``aws lambda update-function-code``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "grammar", "runtime")
LEFT_OUT = {"runtime": {"pytest_plugin.py"}}
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}
DEFAULT_PYTHON = "3.13"  # deploy/template.yaml: Runtime: python3.13


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "deploy" / "build" / "package")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON)
    parser.add_argument("--python", help="interpreter of that version, for bytecode and cache")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--latest", action="store_true", help="do not pin installed versions")
    parser.add_argument("--zip", type=Path, help="also write the package as this zip file")
    args = parser.parse_args(argv)
    build(
        args.out,
        python_version=args.python_version,
        arch=args.arch,
        pin=not args.latest,
        python=args.python,
    )
    if args.zip:
        write_zip(args.out, args.zip)
        print(f"wrote {args.zip}")
    print(f"built {args.out}")
    return 0


def build(
    out: Path,
    *,
    python_version: str = DEFAULT_PYTHON,
    arch: str = "x86_64",
    pin: bool = True,
    python: str | None = None,
) -> Path:
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    requirements = pinned(dependencies()) if pin else dependencies()
    install_dependencies(out, requirements, python_version=python_version, arch=arch)
    for package in PACKAGES:
        source = ROOT / package
        shutil.copytree(
            source,
            out / package,
            ignore=lambda directory, names, package=package: [
                name
                for name in names
                if name == "__pycache__"
                or name in LEFT_OUT.get(package, set())
                or not (name.endswith((".py", ".lark")) or (Path(directory) / name).is_dir())
            ],
        )
    interpreter = python or find_interpreter(python_version)
    if interpreter is not None:
        write_parser_cache(out, interpreter)
        compile_all = [interpreter, "-m", "compileall", "-q", "-j", "0"]
        subprocess.run(
            [*compile_all, "--invalidation-mode", "unchecked-hash", str(out)], check=True
        )
    else:
        print(
            f"warning: no Python {python_version} interpreter found (--python): the package "
            "has no bytecode and no parser cache, so it starts slower",
            file=sys.stderr,
        )
    return out


def find_interpreter(version: str) -> str | None:
    """This interpreter if it is ``version``, else ``python<version>`` on PATH, if any."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    candidate = shutil.which(f"python{version}")
    if candidate is None:
        return None
    probe = subprocess.run(
        [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    )
    return candidate if probe.returncode == 0 and probe.stdout.strip() == version else None


def dependencies() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"])


def pinned(requirements: list[str]) -> list[str]:
    """``name==version`` for each requirement and its own (transitive) requirements, as
    installed in this environment; a requirement not installed here is passed on as is."""
    from importlib.metadata import PackageNotFoundError, requires, version

    found: dict[str, str] = {}
    unpinned: list[str] = []
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        if "extra ==" in requirement:
            continue
        match = re.match(r"[A-Za-z0-9_.-]+", requirement)
        assert match, requirement
        name = re.sub(r"[-_.]+", "-", match.group(0)).lower()
        if name in found:
            continue
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            unpinned.append(requirement)
            continue
        todo.extend(requires(name) or [])
    return [f"{name}=={found[name]}" for name in sorted(found)] + unpinned


def install_dependencies(
    out: Path, requirements: list[str], *, python_version: str, arch: str
) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-warn-conflicts",
        "--no-compile",
        "--target",
        str(out),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--platform",
        PLATFORMS[arch],
        "--only-binary=:all:",
        *requirements,
    ]
    subprocess.run(command, check=True)
    for junk in out.glob("bin"):
        shutil.rmtree(junk)


def write_parser_cache(out: Path, interpreter: str) -> None:
    """Build the Lark parser once, its cache going into the package at the path the handler
    loads it from (``runtime.handler.SHIPPED_PARSER_CACHE``)."""
    cache = out / ".lark-cache"
    cache.mkdir()
    target = cache / ".lark_cache_haproxy.tmp"  # Lark's own naming
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run(
            [
                interpreter,
                "-I",
                "-S",
                "-c",
                f"import sys; sys.path.insert(0, {str(out)!r}); "
                f"import grammar.parser; grammar.parser.load_parser({str(target)!r})",
            ],
            check=True,
            env={**os.environ, "HOME": scratch},
            cwd=scratch,
        )
    if not target.is_file():
        raise SystemExit("error: building the parser wrote no Lark cache")


def write_zip(directory: Path, target: Path) -> None:
    """A reproducible zip: sorted entries, fixed timestamps."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                info = zipfile.ZipInfo(str(path.relative_to(directory)), (1980, 1, 1, 0, 0, 0))
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())


if __name__ == "__main__":
    sys.exit(main())
