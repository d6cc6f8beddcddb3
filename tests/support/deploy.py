"""The SAM template (deploy/template.yaml), parsed with cfn-lint's loader, which reads the
CloudFormation tags (``!Ref``, ``!GetAtt``, ``!Sub``) as their long forms."""

from __future__ import annotations

from typing import Any

from tests.support.paths import ROOT
from tests.support.required import require

TEMPLATE = ROOT / "deploy" / "template.yaml"


def template() -> dict[str, Any]:
    try:
        from cfnlint.decode.cfn_yaml import load  # type: ignore[import-untyped]
    except ImportError:
        require("cfn-lint", "not installed; it is in the 'test' extra (scripts/bootstrap)")
    loaded: dict[str, Any] = load(str(TEMPLATE))
    return loaded


def policy_statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """Every IAM statement of a function's ``Policies`` or a managed policy's document."""
    properties = resource["Properties"]
    documents = properties.get("Policies") or [properties.get("PolicyDocument")]
    return [statement for document in documents if document for statement in document["Statement"]]


def actions(statement: dict[str, Any]) -> list[str]:
    granted = statement["Action"]
    return [granted] if isinstance(granted, str) else list(granted)
