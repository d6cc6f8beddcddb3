"""How a registry table is laid out in DynamoDB: services, and host reports (fleet mode).

A service is one item (hash key ``serviceName``)::

    {"serviceName": "app1", "configMode": "host", "predicate": "first.example.com",
     "cookie": "JSESSIONID", "containers": [{"id": ..., "ip": ..., "weight": 3}],
     "settings": "<the per-service settings as JSON, only when any is set>", "version": 7}

A host report is one item or more; each host writes only its own items, so reports of
different hosts never conflict::

    {"serviceName": "@host:<id>", "seq": 12, "reportedAt": 1764621172.5, "parts": 1,
     "data": <zlib-compressed JSON of the report, or its first part>}
    {"serviceName": "@host:<id>#1", "seq": 12, "data": <the next part>}   (only when needed)

A record is one item, ``{"serviceName": "@record:<key>", "value": ..., "revision": 3}``.

``@`` cannot start a service name, so these never collide with services. The report is
compressed (a host with 2 000 containers takes about 40 KB) and, should it still exceed
``PART_BYTES``, split over several items written in one transaction, each carrying the
report's ``seq``: a scan that meets parts of two different reports reads again.
"""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from compiler.models import ContainerRef, HostReport, Service
from runtime.stores import StoreError
from runtime.stores.reports import dump_report, load_report

HASH_KEY = "serviceName"
HOST_PREFIX = "@host:"
RECORD_PREFIX = "@record:"  # a record's item (``runtime.stores.dynamodb_records``)
PART_BYTES = 300_000  # under DynamoDB's 400 KB item limit, with room for the attributes


def is_host_item(item: Mapping[str, Any]) -> bool:
    return str(item.get(HASH_KEY, {}).get("S", "")).startswith(HOST_PREFIX)


def head_key(host: str) -> str:
    return HOST_PREFIX + host


def part_key(host: str, index: int) -> str:
    return f"{HOST_PREFIX}{host}#{index}"


def report_items(report: HostReport) -> list[dict[str, Any]]:
    data = zlib.compress(dump_report(report).encode("utf-8"), 6)
    chunks = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)] or [b""]
    head: dict[str, Any] = {
        HASH_KEY: {"S": head_key(report.host)},
        "seq": {"N": str(report.seq)},
        "reportedAt": {"N": repr(report.reported_at)},
        "parts": {"N": str(len(chunks))},
        "data": {"B": chunks[0]},
    }
    parts = [
        {
            HASH_KEY: {"S": part_key(report.host, index)},
            "seq": {"N": str(report.seq)},
            "data": {"B": chunk},
        }
        for index, chunk in enumerate(chunks[1:], start=1)
    ]
    return [head, *parts]


def part_count(item: Mapping[str, Any]) -> int:
    return int(item.get("parts", {}).get("N", "1"))


def assemble(
    items: Iterable[Mapping[str, Any]], *, table: str, label: str
) -> dict[str, HostReport] | None:
    """The reports the host items hold; ``None`` when a scan saw a report half-written."""
    heads: dict[str, Mapping[str, Any]] = {}
    parts: dict[str, dict[int, Mapping[str, Any]]] = defaultdict(dict)
    for item in items:
        key = str(item[HASH_KEY]["S"]).removeprefix(HOST_PREFIX)
        host, _, index = key.partition("#")
        if index:
            parts[host][int(index)] = item
        else:
            heads[host] = item
    reports: dict[str, HostReport] = {}
    for host, head in heads.items():
        seq = head["seq"]["N"]
        chunks = [bytes(head["data"]["B"])]
        for number in range(1, part_count(head)):
            part = parts[host].get(number)
            if part is None or part["seq"]["N"] != seq:
                return None
            chunks.append(bytes(part["data"]["B"]))
        try:
            text = zlib.decompress(b"".join(chunks))
        except zlib.error:
            text = b""
        reports[host] = load_report(text, table=table, host=host, label=label)
    return reports


def service_item(service: Service, version: int) -> dict[str, Any]:
    item: dict[str, Any] = {
        HASH_KEY: {"S": service.name},
        "configMode": {"S": service.mode},
        "predicate": {"S": service.predicate},
        "containers": {"L": [{"M": _container_attributes(c)} for c in service.containers]},
        "version": {"N": str(version)},
    }
    if service.cookie is not None:
        item["cookie"] = {"S": service.cookie}
    settings = service.settings_key()
    if settings != "{}":
        # The per-service settings as one JSON string: nested, and validated on the way back.
        item["settings"] = {"S": settings}
    return item


def _container_attributes(container: ContainerRef) -> dict[str, Any]:
    attributes: dict[str, Any] = {"id": {"S": container.id}, "ip": {"S": container.ip}}
    if container.weight is not None:
        attributes["weight"] = {"N": str(container.weight)}
    return attributes


def _container_data(attributes: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {"id": attributes["id"]["S"], "ip": attributes["ip"]["S"]}
    if "weight" in attributes:
        data["weight"] = int(attributes["weight"]["N"])
    return data


def service_from_item(item: Mapping[str, Any], table: str) -> Service:
    try:
        data: dict[str, Any] = {
            "name": item[HASH_KEY]["S"],
            "mode": item["configMode"]["S"],
            "predicate": item["predicate"]["S"],
            "cookie": item["cookie"]["S"] if "cookie" in item else None,
            "containers": [
                _container_data(c["M"]) for c in item.get("containers", {}).get("L", [])
            ],
        }
        if "settings" in item:
            data.update(json.loads(item["settings"]["S"]))
        return Service.model_validate(data)
    except (KeyError, TypeError, ValueError, ValidationError) as error:
        name = item.get(HASH_KEY, {}).get("S", "?")
        reason = str(error).splitlines()[0] if isinstance(error, ValidationError) else repr(error)
        raise StoreError(
            f"item {name!r} of table {table!r} is not a registry service ({reason}); repair it "
            f"or clear the table (lambda-registry state clear {table} --yes --store dynamodb)",
            file="dynamodb",
        ) from None
