"""Host reports (fleet mode) as the stores keep them: compact JSON, validated on the way back."""

from __future__ import annotations

from pydantic import ValidationError

from compiler.models import HostReport
from runtime.stores import StoreError


def dump_report(report: HostReport) -> str:
    """A host report as compact JSON, with the payload's own field names."""
    return report.model_dump_json(by_alias=True)


def load_report(text: str | bytes, *, table: str, host: str, label: str) -> HostReport:
    try:
        return HostReport.model_validate_json(text)
    except ValidationError as error:
        first = str(error).splitlines()[0]
        raise StoreError(
            f"the stored report of host {host!r} in table {table!r} is unreadable: {first}; "
            f"forget it (lambda-registry state forget-host {table} {host} --yes)",
            file=label,
        ) from None
