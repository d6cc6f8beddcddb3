"""Fleet mode in DynamoDB: each host writes only its own report items
(``runtime.stores.dynamodb_items``), conditional on its own ``seq``, so reports of different
hosts never conflict; expired hosts are removed unless they reported again meanwhile."""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from compiler.models import HostReport, Service
from runtime.stores import ConflictError, H, HostDecide, TableModeError
from runtime.stores import dynamodb_items as reports
from runtime.stores.dynamodb_client import error_code as _code

HASH_KEY = reports.HASH_KEY
_LOST_RACE = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})


class Conflict(Exception):
    """Another writer got there first: read again."""


class FleetItems:
    """The fleet-mode half of ``DynamoDBStore`` (which provides the members declared here)."""

    client: Any
    max_attempts: int

    @property
    def label(self) -> str:
        raise NotImplementedError

    def _read(self, table: str) -> tuple[int, dict[str, Service], list[dict[str, Any]]]:
        raise NotImplementedError

    def _ensure_table(self, table: str) -> None:
        raise NotImplementedError

    def _sleep(self, attempt: int) -> None:
        raise NotImplementedError

    def _scan(self, table: str) -> Any:
        raise NotImplementedError

    def _errors(self, table: str, doing: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def update_hosts(self, table: str, decide: HostDecide[H]) -> H:
        with self._errors(table, "cannot update"):
            self._ensure_table(table)
            for attempt in range(1, self.max_attempts + 1):
                _, services, host_items = self._read(table)
                if services:
                    raise TableModeError.for_table(table, has_hosts=False, label=self.label)
                current = reports.assemble(host_items, table=table, label=self.label)
                if current is None:  # a report was half-written when scanned: read again
                    self._sleep(attempt)
                    continue
                decision = decide(dict(current))
                report = decision.report
                try:
                    if report is not None:
                        self._put_report(table, report, current.get(report.host))
                except Conflict:  # only this host's own report can race with this write
                    if attempt == self.max_attempts:
                        break
                    self._sleep(attempt)
                    continue
                for host in decision.delete:
                    self._expire(table, current[host])
                return decision
        raise ConflictError(
            f"the report of this host in table {table!r} kept changing under concurrent calls "
            f"from the same host: gave up after {self.max_attempts} attempts; nothing was "
            "changed",
            file=self.label,
        )

    def hosts(self, table: str) -> dict[str, HostReport]:
        with self._errors(table, "cannot read"):
            for attempt in range(1, self.max_attempts + 1):
                try:
                    found = self._hosts_once(table)
                except ClientError as error:
                    if _code(error) == "ResourceNotFoundException":
                        return {}
                    raise
                if found is not None:
                    return found
                self._sleep(attempt)
        raise ConflictError(
            f"table {table!r}: a host report kept changing while being read", file=self.label
        )

    def forget_host(self, table: str, host: str) -> bool:
        with self._errors(table, "cannot forget a host of"):
            try:
                return self._forget(table, host) > 0
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return False  # no table: no such host (as the other stores say)
                raise

    def _hosts_once(self, table: str) -> dict[str, HostReport] | None:
        host_items = self._read(table)[2]
        return reports.assemble(host_items, table=table, label=self.label)

    def _put_report(self, table: str, report: HostReport, previous: HostReport | None) -> None:
        head, *parts = reports.report_items(report)
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(serviceName)"}
            if previous is None
            else {
                "ConditionExpression": "seq = :seq",
                "ExpressionAttributeValues": {":seq": {"N": str(previous.seq)}},
            }
        )
        try:
            if not parts:
                self.client.put_item(TableName=table, Item=head, **condition)
            else:
                actions = [{"Put": {"TableName": table, "Item": head, **condition}}]
                actions.extend({"Put": {"TableName": table, "Item": part}} for part in parts)
                self.client.transact_write_items(TransactItems=actions)
        except ClientError as error:
            if _code(error) not in _LOST_RACE:
                raise
            if not self._landed(table, report):
                raise Conflict from None

    def _landed(self, table: str, report: HostReport) -> bool:
        """After a failed condition: is the item ours? botocore retries a write whose answer
        was lost (a read timeout), and the retry then fails on the first attempt's success."""
        key = {HASH_KEY: {"S": reports.head_key(report.host)}}
        item = self.client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        found: dict[str, Any] = item or {}
        seq = found.get("seq", {}).get("N")
        reported_at = found.get("reportedAt", {}).get("N")
        return bool(seq == str(report.seq) and reported_at == repr(report.reported_at))

    def _expire(self, table: str, seen: HostReport) -> None:
        """Remove an expired host, unless it reported again since it was read."""
        try:
            self.client.delete_item(
                TableName=table,
                Key={HASH_KEY: {"S": reports.head_key(seen.host)}},
                ConditionExpression="seq = :seq",
                ExpressionAttributeValues={":seq": {"N": str(seen.seq)}},
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return  # it came back: keep it
            raise
        self._delete_parts(table, seen.host)

    def _forget(self, table: str, host: str) -> int:
        response = self.client.delete_item(
            TableName=table, Key={HASH_KEY: {"S": reports.head_key(host)}}, ReturnValues="ALL_OLD"
        )
        self._delete_parts(table, host)
        return 1 if response.get("Attributes") else 0

    def _delete_parts(self, table: str, host: str) -> None:
        prefix = reports.head_key(host) + "#"
        for item in self._scan(table):
            key = item[HASH_KEY]["S"]
            if key.startswith(prefix):
                self.client.delete_item(TableName=table, Key={HASH_KEY: {"S": key}})
