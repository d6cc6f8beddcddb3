"""Cosmonaut's composition root: every collaborator of ``run`` and ``once`` is built here,
from the flags, and handed over; then the command runs them.

Imported only by those two commands, since it needs the Docker SDK (``cosmonaut status``
does not). Tests build the daemon through ``assemble_daemon`` too.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cosmonaut import logs
from cosmonaut.acme.certfolder import CertFolder
from cosmonaut.acme.manager import CertificateManager
from cosmonaut.acme.policy import Https
from cosmonaut.acme.vault import Vault
from cosmonaut.apply.allowed import ANY_REGISTRY, AllowList, Expected
from cosmonaut.apply.container import HaproxyTarget
from cosmonaut.apply.reload import Applier
from cosmonaut.apply.runtime_api import RuntimeApi, RuntimePath
from cosmonaut.daemon.loop import Daemon, Schedule
from cosmonaut.daemon.sync import PassResult, Syncer
from cosmonaut.daemon.trigger import Trigger
from cosmonaut.daemon.watcher import Watcher
from cosmonaut.discovery.containers import Discoverer
from cosmonaut.discovery.engine import Engine, EngineUnavailable
from cosmonaut.discovery.modes import AUTO_HOST_ID
from cosmonaut.discovery.payload import host_id_for, table_for_host
from cosmonaut.errors import INSTALL_HINT, UnavailableError, UsageError
from cosmonaut.metrics import Metrics, MetricsServer
from cosmonaut.registry.auth import BearerToken, registry_auth
from cosmonaut.registry.client import LocalRegistry, RegistryClient
from cosmonaut.registry.poll import Poller
from cosmonaut.registry.remote import RemoteRegistry
from cosmonaut.state import PRIVATE_DIR, PRIVATE_FILE, History, default_state_dir, make_private
from runtime.backoff import Backoff
from runtime.cli.exits import Exit
from runtime.config import host_ttl_env, load_render_options
from runtime.files import write_atomic
from runtime.stores import Store, StoreError
from runtime.stores.select import choose_store

RESYNC = 60.0
FLEET_RESYNC = 30.0


class Wiring:
    """Everything ``run`` and ``once`` share, built from the flags."""

    def __init__(
        self, args: argparse.Namespace, *, wait_for_docker: threading.Event | None
    ) -> None:
        self.state_dir: Path = args.state_dir or default_state_dir()
        self.engine = Engine(timeout=args.docker_timeout)
        self.metrics = Metrics()
        self.discoverer = Discoverer(
            self.engine,
            haproxy_container=args.haproxy_container,
            network=args.network,
            keyword=args.keyword,
            config_path=args.haproxy_config,
            address_mode=args.address_mode,
            advertise_address=args.advertise_address,
        )
        self.registry = _registry(args, self.state_dir)
        self.target = HaproxyTarget(
            self.engine, self.discoverer, reload_timeout=args.reload_timeout
        )
        if not args.dry_run:  # a dry run writes nothing of its own there
            make_private(self.state_dir)
        history = None if args.dry_run else History(self.state_dir / "history", args.keep)
        self.applier = Applier(
            self.target, history, dry_run=args.dry_run, allow=_allow_list(self.registry)
        )
        name: str | None = None
        if args.table is None or args.host_id == AUTO_HOST_ID:
            name = _host_name(self.engine, wait=wait_for_docker)
        table = args.table or table_for_host(name or "")
        host = host_id_for(name or "") if args.host_id == AUTO_HOST_ID else args.host_id
        runtime = None
        if args.runtime_socket:
            api = RuntimeApi(args.runtime_socket)
            runtime = RuntimePath(self.applier, api, self.metrics, self.engine)
        # Events, polls and arrived certificates all ask the loop for a pass through it.
        self.trigger = Trigger()
        self.https = _https(args, self, table=table, holder=host or name)
        self.syncer = Syncer(
            self.discoverer,
            self.registry,
            self.applier,
            table=table,
            host=host,
            metrics=self.metrics,
            status_path=None if args.dry_run else self.state_dir / "status.json",
            runtime=runtime,
            https=self.https,
        )

    def daemon(self, args: argparse.Namespace) -> Daemon:
        schedule = Schedule(
            debounce_min=args.debounce_min,
            debounce_max=args.debounce_max,
            resync_interval=resync_interval(args.resync_interval, fleet=self.syncer.host),
        )
        return assemble_daemon(
            self.syncer,
            self.engine,
            self.target,
            self.discoverer,
            trigger=self.trigger,
            schedule=schedule,
            poll_interval=args.poll_interval,
        )


def assemble_daemon(
    syncer: Syncer,
    engine: Engine,
    target: HaproxyTarget,
    discoverer: Discoverer,
    *,
    trigger: Trigger | None = None,
    schedule: Schedule | None = None,
    poll_interval: float = 0.0,
    retry_backoff: Backoff | None = None,
    on_pass: Callable[[PassResult], None] | None = None,
) -> Daemon:
    """The daemon around ``syncer``: the event watcher (on a connection of its own), the
    poller with ``poll_interval``, and what stops with it."""
    trigger = trigger or Trigger()
    poller = None
    if poll_interval > 0:
        poller = Poller(
            syncer.registry,
            syncer.table,
            interval=poll_interval,
            health=syncer.health,
            state=lambda: (syncer.generation, syncer.etag),
            deliver=trigger.offer,
            report=trigger.notify,
            changed=syncer.save_status,
        )
    watcher = Watcher(
        engine.clone(),
        trigger,
        metrics=syncer.metrics,
        keyword=discoverer.keyword,
        haproxy=discoverer.haproxy_name,
        drain=syncer.drain if syncer.runtime is not None else None,
    )
    return Daemon(
        syncer,
        trigger,
        watcher,
        schedule=schedule,
        poller=poller,
        https=syncer.https,
        retry_backoff=retry_backoff,
        on_pass=on_pass,
        on_stop=(target.stop, syncer.registry.close),
    )


def _https(
    args: argparse.Namespace, parts: Wiring, *, table: str, holder: str | None
) -> Https | None:
    """The certificate folder (``--certs-dir``, else the ``tls`` render option's) and, with
    ``--acme-directory``, the ACME manager, whose account key's thumbprint the in-process
    registry renders (the remote registry's options must carry it: the log says which)."""
    registry = parts.registry
    local = registry if isinstance(registry, LocalRegistry) else None
    tls = local.options.tls if local is not None else None
    directory = args.certs_dir or (tls.certs_dir if tls is not None else None)
    folder = CertFolder(parts.engine, directory) if directory else None
    if not args.acme_directory:
        return Https(folder, parts.target) if folder is not None else None
    if args.dry_run:
        # Nothing ordered, stored or written; the diff still shows the challenge answer
        # when the account exists.
        logs.info("acme off with --dry-run: nothing is ordered, stored or written")
        _existing_thumbprint(args, local, table)
        return None
    if folder is None:
        raise UsageError(
            "--acme-directory needs a certificate folder: the 'tls' render option (--options) "
            "or --certs-dir",
            file="--acme-directory",
        )
    try:
        from cosmonaut.acme.client import AcmeClient, new_account_key, thumbprint
    except ImportError:
        raise UsageError(
            f"ACME needs the 'acme' extra: {INSTALL_HINT.replace('cosmonaut]', 'cosmonaut,acme]')}",
            file="--acme-directory",
        ) from None
    store = _acme_store(args, local, parts.state_dir)
    vault = Vault(store, args.acme_table or table, holder or _holder_id(parts.state_dir))
    try:
        key = vault.account_key(new_account_key)
    except StoreError as error:
        raise UnavailableError(
            f"cannot read or create the ACME account key: {error}", file=vault.label
        ) from None
    try:
        account_thumbprint = thumbprint(key)
    except (ValueError, TypeError):
        raise UsageError(
            f"the stored ACME account key (record 'acme:account-key' of {vault.label}) is not "
            "a private key; delete the record to make a new account",
            file="--acme-directory",
        ) from None
    if local is not None:
        local.options = local.options.model_copy(update={"acme_thumbprint": account_thumbprint})
    else:
        logs.info(
            "acme: the registry's render options need this thumbprint",
            acme_thumbprint=account_thumbprint,
        )
    verify: bool | str = str(args.acme_ca_bundle) if args.acme_ca_bundle else True
    client = AcmeClient(
        args.acme_directory, key, email=args.acme_email, verify=verify, holder=vault.holder
    )
    manager = CertificateManager(
        vault,
        client,
        metrics=parts.metrics,
        retry_min=args.acme_retry_min,
        retry_max=args.acme_retry_max,
        notify=parts.trigger.notify,
    )
    logs.info(
        "acme on", directory=args.acme_directory, store=vault.label, thumbprint=account_thumbprint
    )
    return Https(
        folder,
        parts.target,
        certificates=manager,
        everyone=args.acme_all,
        thumbprint=account_thumbprint,
    )


def _acme_store(args: argparse.Namespace, local: LocalRegistry | None, state_dir: Path) -> Store:
    """Where ACME state lives: ``--acme-store``, else the in-process registry's store, else a
    file of this host's own (a fleet should share one: the log says so). The records go into
    ``--acme-table`` of it, else into the registry table."""
    if args.acme_store:
        return choose_store(args.acme_store)
    if local is not None:
        return local.store
    store = choose_store(f"sqlite:{state_dir / 'acme.db'}")
    if args.host_id:
        logs.warning(
            "acme state is this host's own (no --acme-store): every host of the fleet "
            "orders its own certificates; give --acme-store a store the fleet shares",
            store=store.label,
        )
    return store


def _existing_thumbprint(
    args: argparse.Namespace, local: LocalRegistry | None, table: str
) -> str | None:
    """The stored account's thumbprint, rendered by the in-process registry, without making
    an account (``--dry-run``); None when there is none or it cannot be read."""
    if local is None:
        return None
    try:
        from cosmonaut.acme.client import thumbprint
        from cosmonaut.acme.vault import ACCOUNT_KEY

        store = choose_store(args.acme_store) if args.acme_store else local.store
        record = store.record(args.acme_table or table, ACCOUNT_KEY)
        if record is None:
            return None
        account_thumbprint = thumbprint(record.value)
    except (ImportError, StoreError, ValueError, TypeError):
        return None
    local.options = local.options.model_copy(update={"acme_thumbprint": account_thumbprint})
    return account_thumbprint


def _holder_id(state_dir: Path) -> str:
    """This host's name in ACME leases without a host id: a random id kept in the state
    folder, so that hosts sharing an --acme-store never take each other's leases, and a
    restarted Cosmonaut still knows its own."""
    path = state_dir / "acme-holder"
    try:
        try:
            return path.read_text(encoding="utf-8").strip() or _new_holder(path)
        except FileNotFoundError:
            return _new_holder(path)
    except OSError as error:
        raise UsageError(
            f"cannot keep this host's ACME lease id: {error.strerror or error}", file=str(path)
        ) from None


def _new_holder(path: Path) -> str:
    holder = f"cosmonaut-{uuid.uuid4().hex[:12]}"
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    write_atomic(str(path), holder + "\n", mode=PRIVATE_FILE)
    return holder


def run_once(args: argparse.Namespace) -> int:
    parts = Wiring(args, wait_for_docker=None)
    certificates = parts.https.certificates if parts.https is not None else None
    if certificates is not None:
        # Once: learn the names, order what is due (one round, bounded by the CA's answers),
        # then the pass that installs and routes them.
        parts.syncer.sync(("once",))
        certificates.tick()
    result = parts.syncer.sync(("once",))
    applied = result.applied
    if applied is not None and applied.outcome == "dry-run" and applied.diff:
        sys.stdout.write(applied.diff)
    if result.failure in ("docker", "registry", "haproxy"):
        return Exit.UNAVAILABLE
    if result.failure == "internal":
        return Exit.INTERNAL
    return Exit.OK if result.ok else Exit.FAILED


def run_daemon(args: argparse.Namespace) -> int:
    stop = threading.Event()
    server: MetricsServer | None = None
    holder: dict[str, Daemon] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        logs.info("stopping", signal=signal.Signals(signum).name)
        stop.set()
        daemon = holder.get("daemon")
        if daemon is not None:
            daemon.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        parts = Wiring(args, wait_for_docker=stop)
        if stop.is_set():
            return Exit.OK
        if args.metrics_address:
            server = MetricsServer(parts.metrics, args.metrics_address)
            server.start()
            logs.info("metrics", address=server.url)  # the bound address (port 0: a free one)
        daemon = parts.daemon(args)
        holder["daemon"] = daemon
        logs.info(
            "started",
            haproxy_container=args.haproxy_container,
            table=parts.syncer.table,
            host=parts.syncer.host,
            address_mode=args.address_mode,
            registry=parts.registry.label,
            poll_interval=args.poll_interval,
            state_dir=str(parts.state_dir),
            dry_run=args.dry_run,
        )
        if not stop.is_set():
            daemon.run()
        return Exit.OK
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server is not None:
            server.stop()


def _registry(args: argparse.Namespace, state_dir: Path) -> RegistryClient:
    if args.registry_url:
        if args.store or args.options or args.compat:
            raise UsageError(
                "--store, --options and --compat configure the in-process registry; the remote "
                "registry is configured where it runs",
                file="--registry-url",
            )
        auth = registry_auth(
            args.registry_auth, args.registry_url, token_file=args.registry_token_file
        )
        if isinstance(auth, BearerToken) and _in_clear(args.registry_url):
            if not args.insecure_http:
                raise UsageError(
                    "the bearer token would travel unencrypted over http:// to another host "
                    "(anyone on the path could read it and report as any host): give an "
                    "https:// URL, or --insecure-http to send it anyway",
                    file="--registry-url",
                )
            logs.warning("the registry token travels unencrypted", url=args.registry_url)
        return RemoteRegistry(
            args.registry_url,
            timeout=args.registry_timeout,
            retries=args.registry_retries,
            auth=auth,
        )
    if args.registry_auth or args.registry_token_file or args.insecure_http:
        raise UsageError(
            "--registry-auth, --registry-token-file and --insecure-http are for a remote "
            "registry (--registry-url)",
            file="--registry-auth",
        )
    store = choose_store(args.store, local_default=f"sqlite:{state_dir / 'registry.db'}")
    options = load_render_options(args.options, args.compat)
    return LocalRegistry(store, options, host_ttl=host_ttl_env(os.environ))


def _allow_list(registry: RegistryClient) -> AllowList:
    """What a config from ``registry`` may hold: with the in-process registry, the runtime
    API socket and the server state file its render options print, and no other."""
    if isinstance(registry, LocalRegistry):
        return AllowList(Expected.of(registry.options))
    return ANY_REGISTRY


def resync_interval(given: float | None, *, fleet: str | None) -> float:
    """``--resync-interval``, else 30 s in fleet mode (each resync renews this host's report:
    three fit in the registry's default 90 s lease) and 60 s otherwise."""
    if given is not None:
        return given
    return FLEET_RESYNC if fleet is not None else RESYNC


def _in_clear(url: str) -> bool:
    """Plain HTTP to a host other than this one."""
    from runtime.server_io import is_loopback

    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback(parts.hostname or "")


def _host_name(engine: Engine, *, wait: threading.Event | None) -> str:
    """The Docker host's name. With ``wait`` (an event that is set to give up), wait for
    Docker with backoff."""
    backoff = Backoff(0.2, 10.0)
    while True:
        try:
            return str(engine.info().get("Name") or "")
        except EngineUnavailable as error:
            if wait is None:
                raise
            delay = backoff.next()
            logs.warning("docker unavailable", error=str(error), retry_in=round(delay, 2))
            if wait.wait(delay):
                raise
