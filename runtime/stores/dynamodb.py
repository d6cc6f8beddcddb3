"""The production store: DynamoDB through boto3, one DynamoDB table per payload table.

Services and host reports are items as ``runtime.stores.dynamodb_items`` lays them out (records:
``runtime.stores.dynamodb_records``), beside
one *version item*, ``{"serviceName": "#lambda-registry", "version": 7, "token": ...}``, which
is not a service (``#`` cannot start a service name). Its ``version`` counts the committed
updates of the table, and every update is one ``TransactWriteItems`` whose first action is a
conditional write of the version item: the version read before the scan, plus one. So two
calls that read the same version cannot both commit. The loser's transaction is cancelled as
a whole (nothing of it is written). It then reads the table again and runs ``decide`` again,
up to ``max_attempts`` times with jittered exponential backoff. After that it raises
``ConflictError``. A service added concurrently by someone else also bumps the version, so it
is never missed either, and the calls stay serialisable.

A transaction holds at most 100 actions, which is DynamoDB's limit. One call can therefore
change at most 99 services. A call that would change more fails with a clear error, and
nothing is written. Fleet mode (``runtime.stores.dynamodb_fleet``) never touches the version
item: each host writes only its own report.

The table is created on first use (on-demand billing) unless ``create_tables`` is off, and
the store waits until it is ACTIVE. Clients are created once per process and endpoint, and
reused (``runtime.stores.dynamodb_client``, which also words boto's errors).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped]
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ReadTimeoutError,
)

from compiler.models import Service
from runtime.backoff import Backoff
from runtime.stores import (
    Changes,
    ConflictError,
    D,
    Decide,
    StoreError,
    TableModeError,
    changes,
)
from runtime.stores.dynamodb_client import ErrorMapper, dynamodb_client
from runtime.stores.dynamodb_client import error_code as _code
from runtime.stores.dynamodb_fleet import Conflict as _Conflict
from runtime.stores.dynamodb_fleet import FleetItems
from runtime.stores.dynamodb_items import HASH_KEY, RECORD_PREFIX, is_host_item
from runtime.stores.dynamodb_items import service_from_item as _service
from runtime.stores.dynamodb_items import service_item as _item
from runtime.stores.dynamodb_records import RecordItems

VERSION_KEY = "#lambda-registry"
MAX_TRANSACTION_ITEMS = 100
_RETRYABLE_CANCEL = frozenset(
    {
        "ConditionalCheckFailed",
        "TransactionConflict",
        "ThrottlingError",
        "ProvisionedThroughputExceeded",
    }
)


class DynamoDBStore(FleetItems, RecordItems):
    """Services of each table in the DynamoDB table of the same name."""

    def __init__(
        self,
        *,
        client: Any = None,
        create_tables: bool = True,
        max_attempts: int = 10,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        backoff: float = 0.05,
        max_backoff: float = 1.0,
        create_timeout: float = 300.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._client = client
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self.create_tables = create_tables
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.create_timeout = create_timeout
        self._ready: set[str] = set()
        self._ready_lock = threading.Lock()

    @property
    def label(self) -> str:
        return "dynamodb"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = dynamodb_client(
                region_name=self._region_name, endpoint_url=self._endpoint_url
            )
        return self._client

    # -- the protocol ------------------------------------------------------------------------

    def update(self, table: str, decide: Decide[D]) -> D:
        with self._errors(table, "cannot update"):
            self._ensure_table(table)
            for attempt in range(1, self.max_attempts + 1):
                version, current, host_items = self._read(table)
                if host_items:
                    raise TableModeError.for_table(table, has_hosts=True, label=self.label)
                result = decide(dict(current))
                todo = changes(current, result)
                try:
                    if todo:
                        self._commit(table, version, todo)
                    elif self._version(table) != version:
                        raise _Conflict  # read a table that was changing: read it again
                except _Conflict:
                    if attempt == self.max_attempts:
                        break
                    self._sleep(attempt)
                    continue
                return result
        raise ConflictError(
            f"table {table!r} kept changing under concurrent calls: gave up after "
            f"{self.max_attempts} attempts; nothing was changed, try again",
            file=self.label,
        )

    def services(self, table: str) -> dict[str, Service]:
        with self._errors(table, "cannot read"):
            try:
                return self._snapshot(table)[1]
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return {}
                raise

    def clear(self, table: str) -> int:
        """Delete every service; more than 99 are deleted in several transactions."""
        with self._errors(table, "cannot clear"):
            removed = 0
            try:
                hosts = self._hosts_once(table)
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return 0
                raise
            for host in hosts or {}:
                removed += self._forget(table, host)
            for attempt in range(1, self.max_attempts + 1):
                try:
                    version, current = self._snapshot(table)
                except ClientError as error:
                    if _code(error) == "ResourceNotFoundException":
                        return removed
                    raise
                if not current:
                    return removed
                names = sorted(current)[: MAX_TRANSACTION_ITEMS - 1]
                try:
                    self._commit(table, version, Changes((), tuple(names)))
                except _Conflict:
                    if attempt == self.max_attempts:
                        break
                    self._sleep(attempt)
                    continue
                removed += len(names)
        raise ConflictError(
            f"table {table!r} kept changing while being cleared: gave up after "
            f"{self.max_attempts} attempts ({removed} services deleted)",
            file=self.label,
        )

    # -- reading -----------------------------------------------------------------------------

    def _snapshot(self, table: str) -> tuple[int, dict[str, Service]]:
        """The table's version (read first), then its services (a consistent scan)."""
        version, services, _ = self._read(table)
        return version, services

    def _read(self, table: str) -> tuple[int, dict[str, Service], list[dict[str, Any]]]:
        """The version, the services, and the host report items (fleet mode)."""
        version = self._version(table)
        services: dict[str, Service] = {}
        host_items: list[dict[str, Any]] = []
        for item in self._scan(table):
            name = item.get(HASH_KEY, {}).get("S")
            if name == VERSION_KEY or str(name).startswith(RECORD_PREFIX):
                continue
            if is_host_item(item):
                host_items.append(item)
                continue
            service = _service(item, table)
            services[service.name] = service
        return version, services, host_items

    def _version(self, table: str) -> int:
        response = self.client.get_item(
            TableName=table,
            Key={HASH_KEY: {"S": VERSION_KEY}},
            ConsistentRead=True,
            ProjectionExpression="#v",
            ExpressionAttributeNames={"#v": "version"},
        )
        item = response.get("Item")
        return int(item["version"]["N"]) if item and "version" in item else 0

    def _scan(self, table: str) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.client.scan(**request)
            yield from page.get("Items", [])
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    # -- writing -----------------------------------------------------------------------------

    def _commit(self, table: str, version: int, todo: Changes) -> None:
        if len(todo.put) + len(todo.delete) > MAX_TRANSACTION_ITEMS - 1:
            raise StoreError(
                f"this call changes {len(todo.put) + len(todo.delete)} services of table "
                f"{table!r}; one DynamoDB transaction holds at most "
                f"{MAX_TRANSACTION_ITEMS - 1} (plus the version item); nothing was changed",
                file=self.label,
            )
        token = uuid.uuid4().hex
        new_version = version + 1
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(serviceName)"}
            if version == 0
            else {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": {"N": str(version)}},
            }
        )
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        HASH_KEY: {"S": VERSION_KEY},
                        "version": {"N": str(new_version)},
                        "token": {"S": token},
                        "updatedAt": {"S": datetime.now(UTC).isoformat(timespec="seconds")},
                    },
                    **condition,
                }
            }
        ]
        actions.extend(
            {"Put": {"TableName": table, "Item": _item(service, new_version)}}
            for service in todo.put
        )
        actions.extend(
            {"Delete": {"TableName": table, "Key": {HASH_KEY: {"S": name}}}} for name in todo.delete
        )
        try:
            self.client.transact_write_items(TransactItems=actions, ClientRequestToken=token)
        except ClientError as error:
            if _code(error) == "TransactionCanceledException":
                reasons = {r.get("Code") for r in error.response.get("CancellationReasons", [])}
                if reasons & _RETRYABLE_CANCEL:
                    raise _Conflict from None
            raise
        except (ReadTimeoutError, ConnectionClosedError) as error:
            # The request may have reached DynamoDB: find out whether our token committed.
            self._resolve_ambiguous(table, token, version, error)

    def _resolve_ambiguous(self, table: str, token: str, version: int, error: Exception) -> None:
        try:
            response = self.client.get_item(
                TableName=table, Key={HASH_KEY: {"S": VERSION_KEY}}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError):
            raise StoreError(
                f"lost the connection to DynamoDB while committing to table {table!r} "
                f"({type(error).__name__}) and could not check the outcome: the change may or "
                "may not have been applied",
                file=self.label,
            ) from None
        item = response.get("Item") or {}
        if item.get("token", {}).get("S") == token:
            return  # committed
        if int(item.get("version", {}).get("N", "0")) != version:
            raise _Conflict  # someone else committed; ours did not
        raise StoreError(
            f"lost the connection to DynamoDB while committing to table {table!r} "
            f"({type(error).__name__}); nothing was changed",
            file=self.label,
        )

    # -- the table ---------------------------------------------------------------------------

    def _ensure_table(self, table: str) -> None:
        """Create the table if it is missing (unless told not to); wait until ACTIVE."""
        if not self.create_tables or table in self._ready:
            return
        with self._ready_lock:
            if table in self._ready:
                return
            try:
                description = self.client.describe_table(TableName=table)["Table"]
            except ClientError as error:
                if _code(error) != "ResourceNotFoundException":
                    raise
                description = self._create(table)
            deadline = time.monotonic() + self.create_timeout
            delay = 0.2
            while description.get("TableStatus") != "ACTIVE":
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"table {table!r} did not become ACTIVE within "
                        f"{self.create_timeout:g} s (status {description.get('TableStatus')})",
                        file=self.label,
                    )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                description = self.client.describe_table(TableName=table)["Table"]
            keys = [(k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", [])]
            if keys != [(HASH_KEY, "HASH")]:
                raise StoreError(
                    f"table {table!r} exists but its key is {keys}, not a single hash key "
                    f"{HASH_KEY!r}: it is not a registry table",
                    file=self.label,
                )
            self._ready.add(table)

    def _create(self, table: str) -> dict[str, Any]:
        try:
            response = self.client.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": HASH_KEY, "AttributeType": "S"}],
                KeySchema=[{"AttributeName": HASH_KEY, "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
            description: dict[str, Any] = response["TableDescription"]
            return description
        except ClientError as error:
            if _code(error) != "ResourceInUseException":  # created concurrently: fine
                raise
        existing: dict[str, Any] = self.client.describe_table(TableName=table)["Table"]
        return existing

    # -- helpers -----------------------------------------------------------------------------

    def _sleep(self, attempt: int) -> None:
        # Full jitter: many writers racing for one table spread out instead of colliding again.
        retry = Backoff(self.backoff, self.max_backoff, jitter="full")
        time.sleep(retry.jittered(retry.delay(attempt + 1)))

    def _errors(self, table: str, doing: str) -> ErrorMapper:
        return ErrorMapper(self.label, table, doing, create_tables=self.create_tables)
