"""The certificate folder of the HAProxy container (the ``tls`` render option's ``certs_dir``).

HAProxy loads every file of the folder at start-up and at each reload, choosing one by SNI
(the first in name order is the default). Cosmonaut

* notices when the folder changes (``listing``: name, size, time and inode of each file), so
  that a certificate a user drops in is loaded by a reload on the safe path;
* writes the certificates ACME issued (``<name>.acme.pem``, mode 0600, owned by the user
  HAProxy runs as), and a self-signed default (``00-cosmonaut-default.pem``) when the folder
  holds no certificate at all, since HAProxy refuses an HTTPS ``bind`` without one.

Everything goes through the Docker API (exec and archive upload): Cosmonaut needs no mount of
its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from cosmonaut import logs
from cosmonaut.acme.vault import Issued
from cosmonaut.discovery.containers import HaproxyContainer
from cosmonaut.discovery.engine import Engine, EngineError

DEFAULT_FILE = "00-cosmonaut-default.pem"
DEFAULT_NAME = "cosmonaut-default.invalid"
ACME_SUFFIX = ".acme.pem"
# HAProxy reads these beside a certificate, not as certificates.
_COMPANIONS = (".key", ".ocsp", ".issuer", ".sctl")
# One line per regular file: name, size, modification time, inode (a file replaced by a
# rename has a new inode). Works with GNU coreutils and busybox.
_LIST = (
    'cd "$1" 2>/dev/null || exit 3; '
    'for f in * .*; do [ -f "$f" ] && stat -c "%n %s %Y %i" "$f"; done; exit 0'
)


def acme_file(name: str) -> str:
    return name + ACME_SUFFIX


class CertFolder:
    """``directory`` inside the HAProxy container."""

    def __init__(self, engine: Engine, directory: str) -> None:
        self.engine = engine
        self.directory = directory
        self._written: dict[tuple[str, str], dict[str, str]] = {}  # container -> file -> digest
        self._owner: dict[str, tuple[int, int]] = {}
        self._no_shell: set[str] = set()

    def listing(self, haproxy: HaproxyContainer) -> tuple[str, ...] | None:
        """The folder's files as ``name size mtime inode`` lines (none when it is missing);
        None when the image has no shell to list it with (then changes are not watched)."""
        result = self.engine.exec(haproxy.id, ["sh", "-c", _LIST, "sh", self.directory])
        if result.exit_code == 3:
            return ()
        if result.exit_code in (126, 127) or "executable file not found" in result.output:
            if haproxy.id not in self._no_shell:
                self._no_shell.add(haproxy.id)
                logs.warning(
                    "cannot watch the certificate folder: no sh in the HAProxy image",
                    folder=self.directory,
                )
            return None
        if result.exit_code != 0:
            raise EngineError(
                f"cannot list {self.directory} in {haproxy.name}: {result.output.strip()}",
                file="docker",
            )
        return tuple(sorted(line for line in result.output.splitlines() if line.strip()))

    @staticmethod
    def certificates(listing: Iterable[str]) -> tuple[str, ...]:
        """The file names HAProxy loads as certificates."""
        names = (line.split(" ", 1)[0] for line in listing)
        return tuple(n for n in names if not n.startswith(".") and not n.endswith(_COMPANIONS))

    def install(
        self, haproxy: HaproxyContainer, issued: Iterable[Issued], listing: tuple[str, ...] | None
    ) -> tuple[str, ...]:
        """Write what is missing or changed: each issued certificate, and the default when
        the folder is known to hold none (``listing`` None: unknown, so only what changed
        since this container last got it). Returns the files written."""
        key = (haproxy.id, haproxy.started_at)
        written = self._written.setdefault(key, {})
        present = None if listing is None else set(self.certificates(listing))
        files: dict[str, bytes] = {}
        digests: dict[str, str] = {}
        for certificate in issued:
            name = acme_file(certificate.name)
            missing = present is not None and name not in present
            if written.get(name) != certificate.digest or missing:
                files[name] = certificate.pem()
                digests[name] = certificate.digest
        # The default when the folder is known to be empty, and, in an image without a shell
        # (no listing), once per container: HAProxy refuses an HTTPS bind without any.
        unknown_first = present is None and DEFAULT_FILE not in written
        if (present is not None and not present and not files) or unknown_first:
            files[DEFAULT_FILE] = _self_signed(DEFAULT_NAME)
            digests[DEFAULT_FILE] = "default"
        if files:
            if haproxy.id not in self._no_shell:
                self.engine.exec(haproxy.id, ["mkdir", "-p", self.directory], user="0")
            self.engine.put_files(
                haproxy.id, self.directory, files, mode=0o600, owner=self._owner_of(haproxy)
            )
            written.update(digests)  # only once they are there
        return tuple(sorted(files))

    def _owner_of(self, haproxy: HaproxyContainer) -> tuple[int, int]:
        """The uid and gid HAProxy runs as (the container's user): who must read the keys."""
        if haproxy.id not in self._owner:
            result = self.engine.exec(haproxy.id, ["sh", "-c", "id -u; id -g"])
            numbers = result.output.split()
            owner = (0, 0)
            if result.exit_code == 0 and len(numbers) == 2 and all(n.isdigit() for n in numbers):
                owner = (int(numbers[0]), int(numbers[1]))
            self._owner[haproxy.id] = owner
        return self._owner[haproxy.id]


def _self_signed(common_name: str) -> bytes:
    """A throwaway self-signed certificate and key (PEM): HAProxy's default until real ones
    arrive; clients that check certificates refuse it, as they should."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
