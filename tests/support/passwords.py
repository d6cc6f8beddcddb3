"""Password hashes for the basic-auth tests, made the way a user makes them."""

from __future__ import annotations

import subprocess


def sha512_hash(password: str) -> str:
    """A SHA-512 crypt(3) hash (``$6$``), as ``openssl passwd -6`` makes it."""
    result = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"],
        input=password,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()
