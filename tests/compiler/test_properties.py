"""Property tests: any valid payload compiles to a config haproxy accepts, and the output
does not depend on the order of the input."""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.options import RenderOptions
from runtime.pipeline import compile_payload

IDENT_CHARS = string.ascii_letters + string.digits + "_.:-"
LABEL = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
SEGMENT = st.text(
    string.ascii_letters + string.digits + "-._~!$&()*+,;=:@", min_size=1, max_size=10
)

service_names = st.text(IDENT_CHARS, min_size=1, max_size=64).filter(
    lambda name: name.lower() not in {"or", "if", "unless"}
)
container_ids = st.text(IDENT_CHARS, min_size=1, max_size=64)
hosts = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
paths = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4, st.integers(1, 65535)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}.{t[3]}:{t[4]}"
)
ipv6 = (
    st.ip_addresses(v=6)
    .map(str)
    .flatmap(lambda a: st.integers(1, 65535).map(lambda port: f"[{a}]:{port}"))
)
cookies = st.none() | st.text(
    string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=20
)


@st.composite
def candidates(draw: st.DrawFn) -> dict[str, Any]:
    mode = draw(st.sampled_from(["host", "path", "Host", "PATH"]))
    entry: dict[str, Any] = {
        "serviceName": draw(service_names),
        "configMode": mode,
        "predicate": draw(paths if mode.lower() == "path" else hosts),
        "containers": draw(
            st.lists(st.fixed_dictionaries({"id": container_ids, "ip": ipv4 | ipv6}), max_size=5)
        ),
    }
    cookie = draw(cookies)
    if cookie is not None:
        entry["cookie"] = cookie
    return entry


payloads = st.fixed_dictionaries(
    {
        "table": st.just("prop"),
        "running": st.just([]),
        "candidates": st.lists(candidates(), max_size=8),
    }
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads, st.randoms(use_true_random=False))
def test_output_is_independent_of_input_order(payload: dict[str, Any], rnd: random.Random) -> None:
    expected = compile_payload(payload)
    shuffled = dict(payload)
    shuffled["candidates"] = [
        {**c, "containers": rnd.sample(c["containers"], k=len(c["containers"]))}
        for c in rnd.sample(payload["candidates"], k=len(payload["candidates"]))
    ]
    result = compile_payload(shuffled)
    assert result.text == expected.text
    # Only cross-entry problems (conflicts, duplicates) can be reported for valid entries.
    for diagnostic in result.diagnostics:
        assert (
            "conflict" in diagnostic.message
            or "different settings" in diagnostic.message
            or "two addresses" in diagnostic.message
        )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads, routing=st.sampled_from(["acl", "map"]))
def test_generated_configs_pass_haproxy(
    payload: dict[str, Any], routing: str, assert_haproxy_accepts: Callable[[Any], None]
) -> None:
    # Map routing: every key and value a valid payload can give is a well-formed map line
    # (the printer refuses any other), and the whole bundle passes haproxy -c.
    result = compile_payload(payload, options=RenderOptions.model_validate({"routing": routing}))
    left_out = {d.path.split(".predicate")[0] for d in result.diagnostics}
    routed = {s.name for s in result.services}
    for index, entry in enumerate(payload["candidates"]):
        if f"$.candidates[{index}]" not in left_out:
            assert entry["serviceName"] in routed
    if routing == "map" and result.services:
        assert len(result.files) > 1
    assert_haproxy_accepts(result.files)
