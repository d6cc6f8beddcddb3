"""HAProxy sample fetch expressions that more than one part of the config reads."""

from __future__ import annotations

# Host header without its optional ":port", compared case-insensitively. `host_only` would
# say it better but only exists from HAProxy 2.8 on; `field(1,:)` works on 2.6.
HOST_FETCH = "hdr(host),field(1,:)"
