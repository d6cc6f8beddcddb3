"""Self-signed test certificates (``cryptography``) and a TLS client that reports which one a
server presented: what the HTTPS tests need to look at HAProxy from the outside."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(name: str, *, days: int = 30, also: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for ``name`` (CN and first SAN); ``also``: more
    SANs, IP addresses or host names."""
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    for other in also:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(other)))
        except ValueError:
            names.append(x509.DNSName(other))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def write_pem(folder: Path, file_name: str, host: str) -> bytes:
    """``folder/file_name`` holding a certificate for ``host`` and its key (HAProxy's combined
    PEM); returns the certificate PEM, which a client can trust."""
    cert, key = self_signed(host)
    path = folder / file_name
    path.write_bytes(cert + key)
    path.chmod(0o600)
    return cert


@dataclass(frozen=True, slots=True)
class Answer:
    """What an HTTPS request saw: the presented certificate's CN, the status line, headers."""

    common_name: str
    status: int
    headers: dict[str, str]
    body: bytes


def https_get(
    port: int,
    sni: str | None,
    *,
    host: str | None = None,
    path: str = "/",
    method: str = "GET",
    timeout: float = 5,
    address: str = "127.0.0.1",
) -> Answer:
    """One HTTP/1.1 request over TLS to ``address``:``port``, with ``sni`` as the server name
    (no verification: the test asks which certificate came back)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=sni) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        cert = x509.load_der_x509_certificate(der)
        name = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: {host or sni or 'unknown'}\r\n"
            "Connection: close\r\nContent-Length: 0\r\n\r\n"
        )
        conn.sendall(request.encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return _parse(str(name), data)


def http_get(
    port: int,
    host: str,
    *,
    path: str = "/",
    method: str = "GET",
    timeout: float = 5,
    address: str = "127.0.0.1",
) -> Answer:
    """The same request in clear text (``common_name`` is empty)."""
    with socket.create_connection((address, port), timeout=timeout) as conn:
        request = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        conn.sendall(request.encode())
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    return _parse("", data)


def _parse(common_name: str, data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(common_name, status, headers, body)


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key (PEM files)."""
    cert, key = self_signed("localhost", days=1, also=("127.0.0.1",))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path
