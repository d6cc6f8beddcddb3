"""ACME HTTP-01 answered by HAProxy itself, end to end against pebble (issue 14).

pebble (Let's Encrypt's ACME test server, Debian package ``pebble``) and
``pebble-challtestsrv`` (its DNS, pointing every name at 127.0.0.1) run on loopback. The test
orders a certificate with certbot's ``acme`` library; pebble validates the HTTP-01 challenge
against the haproxy under test, whose config answers ``<token>.<thumbprint>`` without any
challenge file or extra server. The issued certificate is then served by SNI and validates
against pebble's root.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from compiler.options import RenderOptions
from runtime.pipeline import compile_payload
from tests.required import require
from tests.test_tls import echo_server, free_port, wait_listening
from tests.tls_certs import self_signed, write_pem

NAME = "app.example.test"


def _tools() -> None:
    for tool in ("pebble", "pebble-challtestsrv"):
        if shutil.which(tool) is None:
            require("pebble", f"no {tool} on PATH; scripts/bootstrap installs Debian's pebble")
    try:
        import acme  # noqa: F401
    except ImportError:
        require("acme", "not installed; it is in the 'acme' extra")


def _wait_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    end = time.monotonic() + 15
    while time.monotonic() < end:
        assert process.poll() is None, f"{what} exited at start-up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} never listened on {port}")


@pytest.fixture
def pebble(tmp_path: Path) -> Iterator[dict[str, object]]:
    _tools()
    http_port, dns_port, acme_port, mgmt_port = (free_port() for _ in range(4))
    cert, key = self_signed("localhost")
    (tmp_path / "pebble-cert.pem").write_bytes(cert)
    (tmp_path / "pebble-key.pem").write_bytes(key)
    config = {
        "pebble": {
            "listenAddress": f"127.0.0.1:{acme_port}",
            "managementListenAddress": f"127.0.0.1:{mgmt_port}",
            "certificate": str(tmp_path / "pebble-cert.pem"),
            "privateKey": str(tmp_path / "pebble-key.pem"),
            "httpPort": http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (tmp_path / "pebble.json").write_text(json.dumps(config))
    dns = subprocess.Popen(
        [
            "pebble-challtestsrv",
            *("-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""),
            *("-dns01", f"127.0.0.1:{dns_port}", "-http01", "", "-https01", ""),
            *("-tlsalpn01", "", "-management", f"127.0.0.1:{free_port()}"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
    server = subprocess.Popen(
        [
            "pebble",
            *("-config", str(tmp_path / "pebble.json")),
            *("-dnsserver", f"127.0.0.1:{dns_port}"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(acme_port, server, "pebble")
        yield {
            "directory": f"https://localhost:{acme_port}/dir",
            "ca": str(tmp_path / "pebble-cert.pem"),
            "roots": f"https://localhost:{mgmt_port}/roots/0",
            "http_port": http_port,
        }
    finally:
        for process in (server, dns):
            process.terminate()
            process.wait(timeout=10)


def test_certificate_issued_through_http01_answered_by_haproxy(
    pebble: dict[str, object], haproxy: str, tmp_path: Path
) -> None:
    import josepy
    from acme import challenges, client, messages
    from acme.crypto_util import make_csr
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    account = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    thumbprint = josepy.b64encode(account.thumbprint()).decode()
    network = client.ClientNetwork(account, alg=josepy.ES256, verify_ssl=str(pebble["ca"]))
    directory = client.ClientV2.get_directory(str(pebble["directory"]), network)
    acme = client.ClientV2(directory, network)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))

    # HAProxy with the thumbprint, on the port pebble validates; one placeholder certificate
    # (HAProxy refuses an empty folder).
    certs = tmp_path / "certs"
    certs.mkdir()
    write_pem(certs, "00-default.pem", "default.invalid")
    backend, backend_port = echo_server("app")
    http, https = int(str(pebble["http_port"])), free_port()
    payload = {
        "table": "acme-test",
        "running": [],
        "candidates": [
            {
                "serviceName": "app",
                "predicate": NAME,
                "tls": "redirect",
                "containers": [{"id": "app1", "ip": f"127.0.0.1:{backend_port}"}],
            }
        ],
    }
    options = RenderOptions.model_validate(
        {
            "bind_address": "127.0.0.1",
            "bind_port": http,
            "log_targets": [],
            "user": None,
            "group": None,
            "daemon": False,
            "health_check": {"enabled": False},
            "tls": {"certs_dir": str(certs), "bind_port": https},
            "acme_thumbprint": thumbprint,
        }
    )
    config = tmp_path / "haproxy.cfg"
    config.write_text(compile_payload(payload, options=options).text)

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen([haproxy, "-db", "-f", str(config)], stderr=subprocess.PIPE)
        wait_listening(http, process)
        wait_listening(https, process)
        return process

    process = start()
    try:
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        order = acme.new_order(make_csr(key_pem, [NAME]))
        for authorization in order.authorizations:
            challenge = next(
                c for c in authorization.body.challenges if isinstance(c.chall, challenges.HTTP01)
            )
            # Nothing is served for it: HAProxy's config already answers every token.
            acme.answer_challenge(challenge, challenge.chall.response(account))
        order = acme.poll_and_finalize(
            order, deadline=datetime.datetime.now() + datetime.timedelta(seconds=60)
        )
        chain = order.fullchain_pem.encode()
        path = certs / f"{NAME}.pem"
        path.write_bytes(chain + key_pem)
        path.chmod(0o600)
    finally:
        process.terminate()
        process.wait(timeout=10)

    process = start()  # a restart loads the new certificate
    try:
        context = ssl.create_default_context(cafile=str(pebble["ca"]))
        roots = urllib.request.urlopen(str(pebble["roots"]), context=context).read()
        verify = ssl.create_default_context(cadata=roots.decode())
        with (
            socket.create_connection(("127.0.0.1", https), timeout=5) as raw,
            verify.wrap_socket(raw, server_hostname=NAME) as conn,
        ):
            conn.sendall(f"GET /x HTTP/1.1\r\nHost: {NAME}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        assert data.split(b" ", 2)[1] == b"200", data[:200]
        assert json.loads(data.partition(b"\r\n\r\n")[2])["backend"] == "app"
    finally:
        process.terminate()
        process.wait(timeout=10)
        backend.shutdown()
