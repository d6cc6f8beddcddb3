"""Records in DynamoDB (``RecordStore``): one item each, ``{"serviceName": "@record:<key>",
"value": ..., "revision": 3}``, written only on a condition on its revision, so two writers
that read the same revision cannot both win."""

from __future__ import annotations

import contextlib
from typing import Any

from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from runtime.stores import Record
from runtime.stores.dynamodb_client import error_code as _code
from runtime.stores.dynamodb_items import HASH_KEY, RECORD_PREFIX


class RecordItems:
    """The records third of ``DynamoDBStore`` (which provides the members declared here)."""

    client: Any

    def _ensure_table(self, table: str) -> None:
        raise NotImplementedError

    def _errors(self, table: str, doing: str) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def record(self, table: str, key: str) -> Record | None:
        with self._errors(table, f"cannot read record {key!r} of"):
            try:
                response = self.client.get_item(
                    TableName=table, Key={HASH_KEY: {"S": RECORD_PREFIX + key}}, ConsistentRead=True
                )
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return None
                raise
        item = response.get("Item")
        if not item:
            return None
        return Record(str(item["value"]["S"]), int(item["revision"]["N"]))

    def records(self, table: str, prefix: str) -> dict[str, Record]:
        found: dict[str, Record] = {}
        request: dict[str, Any] = {
            "TableName": table,
            "ConsistentRead": True,
            "FilterExpression": "begins_with(serviceName, :p)",
            "ExpressionAttributeValues": {":p": {"S": RECORD_PREFIX + prefix}},
        }
        with self._errors(table, "cannot read the records of"):
            try:
                while True:
                    page = self.client.scan(**request)
                    for item in page.get("Items", []):
                        key = str(item[HASH_KEY]["S"]).removeprefix(RECORD_PREFIX)
                        found[key] = Record(str(item["value"]["S"]), int(item["revision"]["N"]))
                    if not page.get("LastEvaluatedKey"):
                        return found
                    request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            except ClientError as error:
                if _code(error) == "ResourceNotFoundException":
                    return {}
                raise

    def swap_record(self, table: str, key: str, expected: int, value: str | None) -> bool:
        item_key = {HASH_KEY: {"S": RECORD_PREFIX + key}}
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(serviceName)"}
            if expected == 0
            else {
                "ConditionExpression": "revision = :r",
                "ExpressionAttributeValues": {":r": {"N": str(expected)}},
            }
        )
        with self._errors(table, f"cannot write record {key!r} of"):
            self._ensure_table(table)
            try:
                if value is None:
                    self.client.delete_item(TableName=table, Key=item_key, **condition)
                else:
                    item = {
                        **item_key,
                        "value": {"S": value},
                        "revision": {"N": str(expected + 1)},
                    }
                    self.client.put_item(TableName=table, Item=item, **condition)
            except ClientError as error:
                if _code(error) == "ConditionalCheckFailedException":
                    return False
                raise
        return True
