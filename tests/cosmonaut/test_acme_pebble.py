"""ACME end to end against pebble, HTTP-01 answered by HAProxy itself.

pebble and its DNS (``tests.support.pebble``) run on loopback and point every name at a real haproxy
whose config answers ``<token>.<thumbprint>``: no challenge file, no extra server. The
certificate is ordered by Cosmonaut's own client (``cosmonaut.acme.client``) and managed by
its ``CertificateManager`` over a real SQLite vault; the test clock decides when renewal is
due. The issued certificate is then served by SNI and validates against pebble's root.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.options import RenderOptions
from runtime.pipeline import compile_payload
from runtime.stores.sqlite import SQLiteStore
from tests.support.aws import MotoServer
from tests.support.deploy import actions, policy_statements, template
from tests.support.net import echo_server, haproxy_serving, listening, port_of
from tests.support.pebble import Pebble, require_pebble
from tests.support.tls_certs import write_pem

NAME = "app.example.test"


@pytest.fixture
def http_front() -> Iterator[socket.socket]:
    """The HTTP socket of every haproxy of a test, where pebble validates HTTP-01."""
    with listening() as sock:
        yield sock


@pytest.fixture
def pebble(tmp_path: Path, http_front: socket.socket) -> Iterator[Pebble]:
    require_pebble()
    server = Pebble(tmp_path, http_port=port_of(http_front)).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def haproxy_for(
    haproxy: str, http: socket.socket, folder: Path, thumbprint: str, certs: Path
) -> Iterator[int]:
    """A haproxy answering challenges on ``http`` (pebble's HTTP port), serving ``certs`` on
    HTTPS (the port it yields); ``NAME`` goes to an echo backend."""
    backend, backend_port = echo_server("app")
    payload = {
        "table": "acme-test",
        "running": [],
        "candidates": [
            {
                "serviceName": "app",
                "predicate": NAME,
                "tls": "on",
                "containers": [{"id": "app1", "ip": f"127.0.0.1:{backend_port}"}],
            }
        ],
    }
    with listening() as https:
        options = RenderOptions.model_validate(
            {**served_options(http, https, certs), "acme_thumbprint": thumbprint}
        )
        config = folder / "haproxy.cfg"
        config.write_text(compile_payload(payload, options=options).text)
        try:
            with haproxy_serving(haproxy, config, http, https):
                yield port_of(https)
        finally:
            backend.shutdown()


def served(port: int, roots: str) -> tuple[int, dict[str, object]]:
    """HTTPS to ``NAME`` on ``port``, verified against ``roots``: the status and the served
    certificate (its serial and validity)."""
    verify = ssl.create_default_context(cadata=roots)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        verify.wrap_socket(raw, server_hostname=NAME) as conn,
    ):
        certificate = conn.getpeercert()
        conn.sendall(f"GET /x HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    assert json.loads(data.partition(b"\r\n\r\n")[2])["backend"] == "app"
    return int(data.split(b" ", 2)[1]), dict(certificate)


def account(tmp_path: Path, store: SQLiteStore, holder: str = "host-a") -> tuple[object, str]:
    from cosmonaut.acme.client import new_account_key, thumbprint
    from cosmonaut.acme.vault import Vault

    vault = Vault(store, "acme-test", holder)
    key = vault.account_key(new_account_key)
    return vault, thumbprint(key)


def test_certificate_issued_through_http01_answered_by_haproxy(
    pebble: Pebble, haproxy: str, http_front: socket.socket, tmp_path: Path
) -> None:
    from cosmonaut.acme.client import AcmeClient, new_account_key, thumbprint

    key = new_account_key()
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")  # HAProxy refuses an empty folder
    with haproxy_for(haproxy, http_front, tmp_path, thumbprint(key), certs):
        client = AcmeClient(pebble.directory, key, email=None, verify=str(pebble.ca))
        issued = client.order(NAME)
    assert issued.name == NAME and issued.not_after > issued.not_before
    (certs / f"{NAME}.acme.pem").write_bytes(issued.pem())
    with haproxy_for(haproxy, http_front, tmp_path, thumbprint(key), certs) as https:
        status, certificate = served(https, pebble.roots())
    assert status == 200
    assert ("DNS", NAME) in certificate["subjectAltName"]  # type: ignore[operator]


def test_a_refusing_ca_is_reported_with_its_words(
    pebble: Pebble, haproxy: str, http_front: socket.socket, tmp_path: Path
) -> None:
    from cosmonaut.acme.client import AcmeClient, AcmeError, new_account_key, thumbprint

    pebble.restart(reject=100)  # every request gets badNonce
    key = new_account_key()
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")
    with haproxy_for(haproxy, http_front, tmp_path, thumbprint(key), certs):
        client = AcmeClient(pebble.directory, key, email=None, verify=str(pebble.ca))
        with pytest.raises(AcmeError, match="badNonce"):
            client.order(NAME)


def test_manager_orders_then_renews_when_the_clock_says_so(
    pebble: Pebble, haproxy: str, http_front: socket.socket, tmp_path: Path
) -> None:
    from cosmonaut.acme.client import AcmeClient
    from cosmonaut.acme.manager import CertificateManager
    from cosmonaut.acme.vault import Vault

    store = SQLiteStore(tmp_path / "registry.db")
    vault, print_ = account(tmp_path, store)
    assert isinstance(vault, Vault)
    now = [time.time()]
    vault.clock = lambda: now[0]
    key = vault.account_key(lambda: "unused")
    client = AcmeClient(pebble.directory, key, email=None, verify=str(pebble.ca), holder="a")
    manager = CertificateManager(vault, client, clock=lambda: now[0])
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")
    with haproxy_for(haproxy, http_front, tmp_path, print_, certs):
        manager.want([NAME])
        manager.tick()
        first = vault.certificate(NAME)
        assert first is not None, manager.status()
        assert manager.status()[0]["state"] == "valid"
        manager.tick()  # not due: nothing ordered
        assert vault.certificate(NAME) == first
        now[0] = first.renew_at + 1  # a third of the lifetime left
        manager.tick()
        second = vault.certificate(NAME)
    assert second is not None and second.digest != first.digest
    assert manager.metrics.values["cosmonaut_acme_certificates_issued_total"] == 2
    assert (tmp_path / "registry.db").stat().st_mode & 0o777 == 0o600  # keys inside
    (certs / f"{NAME}.acme.pem").write_bytes(second.pem())
    with haproxy_for(haproxy, http_front, tmp_path, print_, certs) as https:
        status, certificate = served(https, pebble.roots())
    assert status == 200
    assert int(str(certificate["serialNumber"]), 16) == _serial(second.fullchain)


def test_two_hosts_sharing_a_registry_order_one_certificate(
    pebble: Pebble, haproxy: str, http_front: socket.socket, tmp_path: Path
) -> None:
    from cosmonaut.acme.client import AcmeClient
    from cosmonaut.acme.manager import CertificateManager
    from cosmonaut.acme.vault import Vault

    store = SQLiteStore(tmp_path / "shared.db")
    managers = []
    for holder in ("host-a", "host-b"):
        vault, print_ = account(tmp_path, store, holder)
        assert isinstance(vault, Vault)
        key = vault.account_key(lambda: "unused")
        client = AcmeClient(pebble.directory, key, email=None, verify=str(pebble.ca), holder=holder)
        managers.append(CertificateManager(vault, client))
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")
    with haproxy_for(haproxy, http_front, tmp_path, print_, certs):
        for manager in managers:
            manager.want([NAME])
        threads = [threading.Thread(target=m.tick) for m in managers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        issued = [m.metrics.values["cosmonaut_acme_certificates_issued_total"] for m in managers]
        assert sorted(issued) == [0, 1], [m.status() for m in managers]
        waiting = managers[issued.index(0)]
        assert waiting.status()[0]["state"] in ("waiting", "valid")
    ready = [m.ready(NAME) for m in managers]
    assert ready[0] is not None and ready[0] == ready[1]


def test_an_acme_table_keeps_the_keys_out_of_the_routing_table(
    pebble: Pebble,
    haproxy: str,
    http_front: socket.socket,
    tmp_path: Path,
    dynamodb: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--acme-store dynamodb --acme-table fleet-acme``, through Cosmonaut's own flags and
    wiring: the account key and the certificate land in ``fleet-acme``, and the routing table
    (what the registry reads) holds the hosts' reports and no ACME record at all. The ACME
    table is made as deploy/template.yaml makes it, and Cosmonaut calls nothing on it that
    the template's AcmeHostsPolicy does not grant."""
    import boto3

    from cosmonaut.cli import build_parser
    from cosmonaut.registry.client import LocalRegistry
    from cosmonaut.wiring import Wiring

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/cosmonaut-test.sock")  # not asked
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", dynamodb.endpoint)
    routes, acme = f"routes-{uuid.uuid4().hex[:8]}", f"fleet-acme-{uuid.uuid4().hex[:8]}"
    resources = template()["Resources"]
    table = resources["AcmeTable"]["Properties"]
    sse = table["SSESpecification"]  # CloudFormation's spelling of the API's
    key = boto3.client("kms").create_key(Description="acme")["KeyMetadata"]["Arn"]
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=acme,
        **{name: table[name] for name in ("AttributeDefinitions", "KeySchema", "BillingMode")},
        SSESpecification={
            "Enabled": sse["SSEEnabled"],
            "SSEType": sse["SSEType"],
            "KMSMasterKeyId": key,
        },
    )
    described = client.describe_table(TableName=acme)["Table"]["SSEDescription"]
    assert (described["SSEType"], described["KMSMasterKeyArn"]) == ("KMS", key)
    start = len(dynamodb.calls)
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")
    backend, backend_port = echo_server("app")
    with listening() as https:
        options = tmp_path / "options.json"
        options.write_text(json.dumps(served_options(http_front, https, certs)))
        flags = [
            *("once", "--table", routes, "--host-id", "host-a"),
            *("--state-dir", str(tmp_path / "state"), "--options", str(options)),
            *("--store", "dynamodb", "--acme-store", "dynamodb", "--acme-table", acme),
            *("--acme-directory", pebble.directory, "--acme-accept-tos"),
            *("--acme-ca-bundle", str(pebble.ca)),
        ]
        parts = Wiring(build_parser().parse_args(flags), wait_for_docker=None)
        assert parts.https is not None and parts.https.certificates is not None
        manager = parts.https.certificates
        # The registry renders the challenge answer with the account the wiring made.
        payload = {
            "table": routes,
            "host": "host-a",
            "running": [{"serviceName": "app", "id": "app1", "ip": f"127.0.0.1:{backend_port}"}],
            "candidates": [
                {
                    "serviceName": "app",
                    "predicate": NAME,
                    "tls": "on",
                    "containers": [{"id": "app1", "ip": f"127.0.0.1:{backend_port}"}],
                }
            ],
        }
        config = tmp_path / "haproxy.cfg"
        config.write_text(parts.registry.compile(payload).text)
        try:
            with haproxy_serving(haproxy, config, http_front, https):
                manager.want([NAME])
                manager.tick()
        finally:
            backend.shutdown()
    assert manager.status()[0]["state"] == "valid", manager.status()

    called = {f"dynamodb:{op}" for op, name in dynamodb.calls[start:] if name == acme}
    (policy,) = policy_statements(resources["AcmeHostsPolicy"])[:1]
    assert called and called <= set(actions(policy)), called

    def keys(table: str) -> set[str]:
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
        return {item["serviceName"]["S"] for item in items}

    routing = keys(routes)
    assert routing, "the registry wrote its table"
    assert [key for key in routing if "acme" in key] == []
    assert {"@record:acme:account-key", f"@record:acme:cert:{NAME}"} <= keys(acme)
    # A dry run finds the account there too, and renders its challenge answer.
    dry = Wiring(build_parser().parse_args([*flags, "--dry-run"]), wait_for_docker=None)
    assert isinstance(dry.registry, LocalRegistry)
    assert dry.registry.options.acme_thumbprint == parts.https.thumbprint


def served_options(http: socket.socket, https: socket.socket, certs: Path) -> dict[str, object]:
    """Render options for a haproxy on ``http`` (pebble's HTTP port) and ``https``."""
    return {
        "bind_address": "127.0.0.1",
        "bind_port": port_of(http),
        "log_targets": [],
        "user": None,
        "group": None,
        "daemon": False,
        "health_check": {"enabled": False},
        "tls": {"certs_dir": str(certs), "bind_port": port_of(https)},
    }


def _serial(chain: str) -> int:
    from cryptography import x509

    return int(x509.load_pem_x509_certificate(chain.encode()).serial_number)
