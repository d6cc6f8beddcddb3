"""Deployment: the SAM template passes cfn-lint and grants only what the store uses; the
package builds, and the handler imports and answers from it in a clean interpreter."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.deploy import actions, policy_statements, template
from tests.support.paths import EXAMPLES, FIXTURES, ROOT
from tests.support.required import require
from tests.support.stores import statements

DEPLOY = ROOT / "deploy"
TEMPLATE = DEPLOY / "template.yaml"
LOCAL_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def test_template_passes_cfn_lint() -> None:
    cfn_lint = shutil.which("cfn-lint")
    if cfn_lint is None:
        require("cfn-lint", "not on PATH; it is in the 'test' extra (scripts/bootstrap)")
    result = subprocess.run(
        [cfn_lint, str(TEMPLATE)], capture_output=True, text=True, check=False, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def template_text() -> str:
    return TEMPLATE.read_text(encoding="utf-8")


def test_template_grants_least_privilege_on_the_table_only() -> None:
    text = template_text()
    (granted,) = policy_statements(template()["Resources"]["RegistryFunction"])
    assert sorted(actions(granted)) == [
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
    ]
    assert granted["Resource"] == {"Fn::GetAtt": ["RegistryTable", "Arn"]}
    assert "dynamodb:*" not in text and "CreateTable" not in text
    assert 'LAMBDA_REGISTRY_CREATE_TABLES: "false"' in text
    assert "Handler: runtime.handler.handler" in text
    assert "BillingMode: PAY_PER_REQUEST" in text
    assert "DefaultAuthorizer: AWS_IAM" in text


def test_the_optional_acme_table_is_under_its_own_key_and_the_function_gets_neither() -> None:
    """The ACME table (account and certificate keys) is encrypted under a KMS key of its
    own; only the hosts' managed policy grants it and the key, never the function."""
    loaded = template()
    resources = loaded["Resources"]
    acme = {"AcmeKey", "AcmeTable", "AcmeHostsPolicy"}
    assert {resources[name]["Condition"] for name in acme} == {"HasAcmeTable"}
    assert loaded["Parameters"]["AcmeTableName"]["Default"] == ""
    assert resources["AcmeTable"]["Properties"]["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": {"Fn::GetAtt": ["AcmeKey", "Arn"]},
    }
    hosts = policy_statements(resources["AcmeHostsPolicy"])
    assert [s["Resource"] for s in hosts] == [
        {"Fn::GetAtt": ["AcmeTable", "Arn"]},
        {"Fn::GetAtt": ["AcmeKey", "Arn"]},
    ]
    assert {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} <= set(actions(hosts[1]))
    function = json.dumps(resources["RegistryFunction"])
    assert not any(name in function for name in acme)
    # Only the account administers the key: nobody is granted its use in the key policy.
    (administers,) = resources["AcmeKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert administers["Principal"] == {
        "AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}
    }


def test_template_runtime_is_the_build_default() -> None:
    sys.path.insert(0, str(DEPLOY))
    try:
        import build
    finally:
        sys.path.remove(str(DEPLOY))
    assert f"Runtime: python{build.DEFAULT_PYTHON}" in template_text()
    assert "CodeUri: build/package/" in template_text()


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package, built for this interpreter's version so it can be imported here."""
    out = tmp_path_factory.mktemp("lambda") / "package"
    result = subprocess.run(
        [
            *(sys.executable, str(DEPLOY / "build.py"), "--out", str(out)),
            *("--python-version", LOCAL_PYTHON, "--zip", str(out.parent / "package.zip")),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_package_holds_what_the_handler_needs_and_nothing_else(package: Path) -> None:
    top = {path.name for path in package.iterdir()}
    assert {"compiler", "grammar", "runtime", "pydantic", "pydantic_core", "lark"} <= top
    assert not top & {"cosmonaut", "tests", "boto3", "botocore", "docker", "pytest"}
    assert (package / "grammar" / "haproxy.lark").is_file()
    assert not (package / "runtime" / "pytest_plugin.py").exists()
    assert list((package / ".lark-cache").glob(".lark_cache_*.tmp"))
    assert list((package / "runtime" / "__pycache__").glob("handler.*.pyc"))
    assert (package.parent / "package.zip").stat().st_size > 1_000_000


def run_clean(package: Path, code: str, tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -I -S``: no site-packages, no PYTHON* variables; only the package on the
    path. A fresh, empty temp dir, as a new Lambda sandbox has."""
    tmp.mkdir(exist_ok=True)
    prelude = f"import sys; sys.path.insert(0, {str(package)!r})\n"
    clean_env = {"PATH": os.environ.get("PATH", ""), "TMPDIR": str(tmp), "HOME": str(tmp), **env}
    return subprocess.run(
        [sys.executable, "-I", "-S", "-c", prelude + code],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
        env=clean_env,
        timeout=120,
    )


def test_handler_answers_from_the_package_in_a_clean_interpreter(
    package: Path, tmp_path: Path
) -> None:
    event: dict[str, Any] = json.loads((FIXTURES / "events" / "function-url.json").read_text())
    code = (
        "import json, logging, lark\n"
        "lark.logger.setLevel(logging.DEBUG)\n"
        "import runtime.handler, pydantic\n"
        f"assert pydantic.__file__.startswith({str(package)!r}), pydantic.__file__\n"
        "assert 'boto3' not in sys.modules and 'docker' not in sys.modules\n"
        f"seed = json.load(open({str(EXAMPLES / 'seed.json')!r}))\n"
        "text = runtime.handler.handler(seed, None)\n"
        f"response = runtime.handler.handler(json.loads({json.dumps(json.dumps(event))}), None)\n"
        "print(json.dumps({'direct': text, 'http': response}))\n"
    )
    result = run_clean(
        package,
        code,
        tmp_path / "tmp",
        LAMBDA_REGISTRY_STORE="memory",
        LAMBDA_REGISTRY_OPTIONS='{"compat": "seed"}',
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout.splitlines()[-1])
    expected = statements((FIXTURES / "seed_expected.cfg").read_text())
    assert statements(document["direct"]) == expected
    assert document["http"]["statusCode"] == 200
    assert statements(document["http"]["body"]) == expected
    # The parser came from the cache the package ships (copied to the empty temp dir).
    assert "Loading grammar from cache" in result.stderr
    assert "Saving grammar to cache" not in result.stderr


def test_handler_from_the_package_defaults_to_dynamodb_inside_lambda(
    package: Path, tmp_path: Path
) -> None:
    import boto3  # type: ignore[import-untyped]

    boto3_home = str(Path(boto3.__file__).resolve().parent.parent)  # the runtime provides it
    code = (
        f"sys.path.append({boto3_home!r})\n"
        "import runtime.handler\n"
        "assert 'boto3' in sys.modules\n"
        "from runtime.config import HandlerConfig\n"
        "print(HandlerConfig.from_env().store)\n"
    )
    result = run_clean(
        package, code, tmp_path / "tmp", AWS_LAMBDA_FUNCTION_NAME="f", AWS_REGION="us-east-1"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "dynamodb"
