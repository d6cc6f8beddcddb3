"""The library call: payload in, verified haproxy.cfg out.

``compile_payload`` validates the payload (bad entries are left out and reported), reconciles
it with the store (a host-less payload as the seed did; a payload with a ``host`` as that
host's report, in fleet mode), lowers the services to the AST, prints it and proves the text
parses back to the same AST before returning it. ``render_table`` renders what a table holds
now, writing nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from compiler.ast import Bundle, Config
from compiler.backend_settings import seed_unsupported
from compiler.errors import Diagnostic, PayloadError
from compiler.lower import lower_bundle
from compiler.models import HostReport, Payload, Service
from compiler.options import RenderOptions, dialect
from compiler.payload import load_payload, parse_payload_text
from compiler.perf import paused_gc
from compiler.printer import CONFIG_NAME
from compiler.tls import diagnostics as tls_diagnostics
from grammar.refusal import attribute_files
from grammar.roundtrip import print_verified_bundle
from runtime.contract import etag_of
from runtime.fleet import (
    DEFAULT_TTL,
    FleetResult,
    live,
    render,
    report_and_render,
    without_local_addresses,
)
from runtime.haproxy_check import PRUNE_ROUNDS, CheckResult, RefusedError
from runtime.merge import Reconciled, reconcile
from runtime.stores import RegistryStore
from runtime.stores.memory import MemoryStore

R = TypeVar("R", Reconciled, FleetResult)  # what a store's decide returns, by mode
# ``haproxy -c`` on a bundle (files by name, the config first); None: it could not run.
Check = Callable[[Mapping[str, str]], CheckResult | None]


@dataclass(frozen=True, slots=True)
class CompileResult:
    text: str  # the config
    config: Config
    # Every file of the bundle by name: the config first (as CONFIG_NAME), then its maps.
    files: Mapping[str, str]
    services: tuple[Service, ...]  # what the config routes (without any haproxy refused)
    diagnostics: tuple[Diagnostic, ...]
    reconciled: Reconciled | FleetResult
    attempts: int  # how many times the store ran the decision (more than 1 after conflicts)


def compile_payload(
    payload: str | bytes | dict[str, Any] | Payload,
    *,
    options: RenderOptions | None = None,
    store: RegistryStore | None = None,
    file: str | None = None,
    strict: bool = False,
    before_commit: Callable[[Mapping[str, str]], None] | None = None,
    clock: Callable[[], float] = time.time,
    host_ttl: float = DEFAULT_TTL,
    check: Check | None = None,
) -> CompileResult:
    """Compile a payload (JSON text, decoded JSON, or a ``Payload``) into a verified config.

    With no ``store``, nothing is remembered: the output is built from the candidates alone.
    Raises ``PayloadError`` for a malformed envelope and ``InternalError`` when the round trip
    fails; bad entries are reported in ``diagnostics`` instead, unless ``strict``, which makes
    any of them a ``PayloadError``. ``before_commit`` sees the bundle's files (by name, the
    config first as ``CONFIG_NAME``) before the store
    commits (``haproxy -c``, say); whatever it raises leaves the store unchanged. ``clock``
    and ``host_ttl`` are fleet mode's: a host silent for longer than ``host_ttl`` seconds of
    ``clock`` is expired.

    ``check`` (``haproxy -c``) judges each bundle before ``before_commit`` sees it: the
    services whose lines haproxy names are left out of the output, each with a diagnostic
    saying what haproxy said (the store keeps them: only the output goes without). A
    refusal that names no service raises ``RefusedError``, and the store is unchanged.
    """
    with paused_gc():
        return _compile(
            payload, options, store, file, strict, before_commit, clock, host_ttl, check
        )


def _compile(
    payload: str | bytes | dict[str, Any] | Payload,
    options: RenderOptions | None,
    store: RegistryStore | None,
    file: str | None,
    strict: bool,
    before_commit: Callable[[Mapping[str, str]], None] | None,
    clock: Callable[[], float],
    host_ttl: float,
    check: Check | None,
) -> CompileResult:
    entry_diagnostics: tuple[Diagnostic, ...] = ()
    if isinstance(payload, Payload):
        model = payload
    else:
        data = (
            parse_payload_text(payload, file=file) if isinstance(payload, str | bytes) else payload
        )
        model, entry_diagnostics = load_payload(data, file=file)
    if strict:
        _refuse_diagnostics(entry_diagnostics, file)
    store = store or MemoryStore(ephemeral=True)
    options = options or RenderOptions()
    rendering = options  # (narrowed for the closure below)
    if not dialect(options).service_settings:  # the seed cannot express them: said so
        entry_diagnostics += seed_unsupported(model)
    if model.host is not None:
        model, refused = without_local_addresses(model, options.fleet_allow)
        entry_diagnostics += refused

    # The last attempt's (stores may retry): config, files, services, refusal diagnostics.
    produced: list[tuple[Config, dict[str, str], tuple[Service, ...], tuple[Diagnostic, ...]]] = []
    attempts = 0

    def produce(result: R) -> R:
        """Lower and verify inside the transaction: a config that cannot be produced (or that
        ``before_commit`` refuses) must not leave the store changed."""
        nonlocal attempts
        attempts += 1
        if strict:
            _refuse_diagnostics(result.diagnostics, file)
        services, bundle, files, refused = accepted_bundle(result.render, rendering, check)
        if strict:
            _refuse_diagnostics(refused, file)
        if before_commit is not None:
            before_commit(files)
        produced.append((bundle.config, files, services, refused))
        return result

    def decide(stored: Mapping[str, Service]) -> Reconciled:
        return produce(reconcile(stored, model))

    def decide_hosts(reports: Mapping[str, HostReport]) -> FleetResult:
        return produce(report_and_render(reports, model, clock(), host_ttl, options.fleet_owners))

    reconciled: Reconciled | FleetResult
    if model.host is None:
        reconciled = store.update(model.table, decide)
    else:
        reconciled = store.update_hosts(model.table, decide_hosts)
    config, files, services, refused = produced[-1]
    return CompileResult(
        text=files[CONFIG_NAME],
        config=config,
        files=files,
        services=services,
        diagnostics=entry_diagnostics
        + reconciled.diagnostics
        + tls_diagnostics(reconciled.render, options)
        + refused,
        reconciled=reconciled,
        attempts=attempts,
    )


def accepted_bundle(
    services: tuple[Service, ...], options: RenderOptions, check: Check | None
) -> tuple[tuple[Service, ...], Bundle, dict[str, str], tuple[Diagnostic, ...]]:
    """The services' bundle, once ``check`` accepts it: each round leaves out the services
    haproxy's refusal names (one service's bad line must not keep every other service, on
    every host of a fleet, on an old config) and checks again. Returns the services kept, the
    bundle, its files and a diagnostic per service left out. Raises ``RefusedError`` when a
    refusal names no service still in, or every one, or after ``PRUNE_ROUNDS`` rounds."""
    left_out: list[Diagnostic] = []
    output = ""
    for _ in range(PRUNE_ROUNDS + 1):
        bundle = lower_bundle(services, options)
        files = print_verified_bundle(bundle)
        verdict = check(files) if check is not None else None
        if verdict is None or verdict.ok:
            return services, bundle, files, tuple(left_out)
        output = verdict.output
        names = {service.name for service in services}
        blamed = attribute_files(output, files)
        named = [name for name in blamed.services if name in names]
        if not named or len(named) == len(names):
            break  # nothing to blame, or nothing would be left: refused as a whole
        for name in named:
            why = "; ".join(str(blame) for blame in blamed.reasons(name))
            left_out.append(
                Diagnostic(
                    f"service '{name}'",
                    f"haproxy -c refused its configuration, so it is left out of the output "
                    f"(the store keeps it): {why}",
                )
            )
        services = tuple(service for service in services if service.name not in named)
    said = "\n".join(str(d) for d in left_out)
    raise RefusedError(output + (f"\nleft out before that:\n{said}" if said else ""))


def _refuse_diagnostics(diagnostics: tuple[Diagnostic, ...], file: str | None) -> None:
    if diagnostics:
        raise PayloadError(
            f"{len(diagnostics)} problem(s) in the payload; nothing was compiled or stored "
            "(strict mode)",
            file=file,
            diagnostics=diagnostics,
        )


@dataclass(frozen=True, slots=True)
class TableConfig:
    """What a table renders now; ``etag`` names the bundle (an HTTP entity tag)."""

    text: str
    services: tuple[Service, ...]
    hosts: int  # live host reports (0 for a host-less table)
    files: Mapping[str, str]  # the whole bundle, the config first (CONFIG_NAME)

    @property
    def etag(self) -> str:
        return etag_of(self.text, self.files)


def render_table(
    store: RegistryStore,
    table: str,
    *,
    options: RenderOptions | None = None,
    clock: Callable[[], float] = time.time,
    host_ttl: float = DEFAULT_TTL,
) -> TableConfig | None:
    """The config a table gives now (leases applied, nothing written); ``None`` when the
    table holds nothing at all."""
    options = options or RenderOptions()
    with paused_gc():
        reports = store.hosts(table)
        if reports:
            current = live(reports, clock(), host_ttl)
            services = render(current, owners=options.fleet_owners).render
            count = len(current)
        else:
            stored = store.services(table)
            if not stored:
                return None
            services = tuple(stored[name] for name in sorted(stored))
            count = 0
        files = print_verified_bundle(lower_bundle(services, options))
        return TableConfig(files[CONFIG_NAME], services, count, files)
