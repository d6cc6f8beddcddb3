"""Apply a config to the HAProxy container without ever applying a broken one.

For each new config (with map routing: a bundle, the config and the map files it reads):

1. skip it when it is identical to what runs;
2. parse it with the grammar and check the round trip (print -> parse -> compare), for every
   file; refuse what a registry may not send (``cosmonaut.apply.allowed``: no ``program``,
   Lua, ``setenv``, ...); the config must refer to exactly the maps that came with it;
3. write the maps beside the config under their content-named names (never a file the running
   config reads), then the config under a temporary name, and run ``haproxy -c`` there;
4. move the config into place atomically (a rename in the config's directory);
5. reload HAProxy hitlessly (``SIGUSR2`` to the master) and confirm a new worker came up;
   when ``haproxy -c`` refuses it, leave out the services its output names (``grammar.refusal``:
   their backends, userlists, routing lines and map entries) and check again, a few rounds at
   most: one service's line never keeps the rest of the config (every other host's services,
   in a fleet) from being applied. Nothing to blame, or still refused: the old config stays;
6. on a failed reload, restore the last known good config and reload that;
7. remove the maps that no config in place reads any more (the old ones after a success, the
   new ones after a refusal or a rollback).

At every moment the config in place reads only maps that are there, with its content.

``--dry-run`` stops after step 2 and returns the unified diff instead.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from compiler.ast import Backend, Config
from compiler.errors import LocatedError
from compiler.printer import CONFIG_NAME, print_map
from cosmonaut import logs
from cosmonaut.apply.allowed import ANY_REGISTRY, AllowList, Refusal
from cosmonaut.apply.container import Checked, HaproxyTarget
from cosmonaut.discovery.containers import HaproxyContainer
from cosmonaut.errors import ApplyError
from cosmonaut.state import History, digest
from grammar.maps import map_problems, parse_map
from grammar.parser import parse
from grammar.refusal import attribute_files, prune
from grammar.roundtrip import print_verified
from runtime.bundle import referenced_maps
from runtime.haproxy_check import PRUNE_ROUNDS

Outcome = Literal[
    "applied",
    "pruned",
    "unchanged",
    "dry-run",
    "rejected",
    "refused",
    "rolled-back",
    "failed",
    "runtime",
]
# "runtime": applied through HAProxy's runtime API, no reload (cosmonaut.apply.runtime_api).
# "refused": it holds what Cosmonaut does not accept from a registry (nothing was written).
# "pruned": applied without the services haproxy -c refused (``left_out`` names them).
OK_OUTCOMES = frozenset({"applied", "pruned", "unchanged", "dry-run", "runtime"})
# (service, what haproxy said about it): a service left out of the config that runs.
LeftOut = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    outcome: Outcome
    message: str
    digest: str
    seconds: float
    diff: str | None = None
    steps: dict[str, float] = field(default_factory=dict)
    left_out: LeftOut = ()

    @property
    def ok(self) -> bool:
        return self.outcome in OK_OUTCOMES

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "message": self.message,
            "digest": self.digest[:12],
            "seconds": round(self.seconds, 4),
            "steps": {k: round(v, 4) for k, v in self.steps.items()},
            "left_out": [{"service": name, "reason": why} for name, why in self.left_out],
        }


@dataclass(frozen=True, slots=True)
class _Pruned:
    """A refused bundle without the services haproxy named: what was checked and moved in
    place (``moved``), or that it is what runs already."""

    text: str
    maps: tuple[tuple[str, str], ...]
    added: dict[str, str]
    left_out: LeftOut
    moved: bool


class ApplyPath(Protocol):
    """How a config reaches HAProxy: ``Applier`` (check, move, reload) or ``RuntimePath``
    (the runtime API in front of it)."""

    def apply(
        self,
        text: str,
        haproxy: HaproxyContainer | None = None,
        *,
        maps: tuple[tuple[str, str], ...] = (),
        force: bool = False,
    ) -> ApplyResult: ...


class Applier:
    """``allow``: what a config may hold (``None`` only for configs that come from no
    registry: the tests' own)."""

    def __init__(
        self,
        target: HaproxyTarget,
        history: History | None = None,
        *,
        dry_run: bool = False,
        allow: AllowList | None = ANY_REGISTRY,
    ) -> None:
        self.target = target
        self.history = history
        self.dry_run = dry_run
        self.allow = allow
        self._running: str | None = None  # what HAProxy runs (its config file, once confirmed)
        self._known: tuple[str, str] | None = None  # (container id, started at) of _running
        # The last bundle applied without services haproxy refused: (its text and maps, what
        # ran instead, who was left out). The same bundle again is not checked again.
        self._pruned: tuple[tuple[str, tuple[tuple[str, str], ...]], str, LeftOut] | None = None

    def running_config(self, haproxy: HaproxyContainer) -> str | None:
        """What the HAProxy container runs; read again when it was replaced or restarted."""
        key = (haproxy.id, haproxy.started_at)
        if self._known != key:
            self._running = self.target.read_config(haproxy)
            self._known = key
        return self._running

    def adopt(self, text: str) -> None:
        """``text`` is what runs now: the runtime path changed HAProxy and wrote the file."""
        self._running = text
        if self.history is not None:
            self.history.record(text)

    def forget(self) -> None:
        """Read the running config again at the next apply."""
        self._known = None

    def refusal(self, config: Config, maps: tuple[tuple[str, str], ...] = ()) -> Refusal | None:
        """What in ``config`` (and its ``maps``) a registry may not send, if anything."""
        if self.allow is None:
            return None
        return self.allow.refusal(config, [name for name, _ in maps])

    def apply(
        self,
        text: str,
        haproxy: HaproxyContainer | None = None,
        *,
        maps: tuple[tuple[str, str], ...] = (),
        force: bool = False,
    ) -> ApplyResult:
        """Apply ``text`` and its ``maps`` (name, text); ``haproxy`` is the container as just
        inspected, if at hand. ``force``: check and reload even when ``text`` is what runs
        (certificate files changed: only a reload loads them)."""
        started = time.monotonic()
        steps: dict[str, float] = {}
        mark = started

        def step(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            steps[name] = now - mark
            mark = now

        left_out: LeftOut = ()

        def result(outcome: Outcome, message: str, diff: str | None = None) -> ApplyResult:
            return ApplyResult(
                outcome, message, digest(text), time.monotonic() - started, diff, steps, left_out
            )

        haproxy = self.target.located(haproxy)
        running = self.running_config(haproxy)
        step("locate")
        if text == running and not force:
            return result("unchanged", "the config is identical to the running one")
        pruned_before = self._pruned
        if (
            pruned_before is not None
            and pruned_before[0] == (text, maps)
            and pruned_before[1] == running
            and not force
        ):
            left_out = pruned_before[2]
            return result("unchanged", f"the config runs already, {_left_out_text(left_out)}")
        try:
            config = _verified(text)
        except LocatedError as error:
            return result("rejected", f"the config does not pass the grammar check: {error}")
        refused = self.refusal(config, maps)
        if refused is not None:
            logs.error(
                "config refused",
                line=refused.line,
                keyword=refused.keyword,
                reason=refused.reason,
                digest=digest(text)[:12],
            )
            return result("refused", f"not accepted from a registry: {refused}")
        problem = bundle_problem(text, maps)
        if problem is not None:
            return result("rejected", problem)
        step("verify")
        if self.dry_run:
            diff = unified_diff(running, text, haproxy)
            return result("dry-run", "not applied (--dry-run)", diff)

        self.target.validate(haproxy)  # master-worker mode, before anything changes
        old = referenced_maps(running or "")
        added = {name: content for name, content in maps if name not in old}
        temporary, checked = self._write_and_check(haproxy, text, added, step)
        step("check+move")
        if not checked.moved:
            self.target.remove_maps(haproxy, set(added))
            output = checked.output.strip().replace(temporary, "<new config>")
            pruned = self._without_refused(haproxy, text, maps, output, running, old, force, step)
            if pruned is None:
                return result("rejected", f"haproxy -c refused the config:\n{output}")
            self._pruned = ((text, maps), pruned.text, pruned.left_out)
            text, maps, added, left_out = pruned.text, pruned.maps, pruned.added, pruned.left_out
            if not pruned.moved:
                return result("unchanged", f"the config runs already, {_left_out_text(left_out)}")
        before = self.target.mark(haproxy)
        try:
            reloaded = self.target.reload(haproxy, before)
        except ApplyError as error:
            step("reload")
            rolled = self._roll_back(haproxy, running, error, result)
            if rolled.outcome == "rolled-back":
                self.target.remove_maps(haproxy, set(added) - old)
            return rolled
        step("reload")
        self.target.remove_maps(haproxy, old - {name for name, _ in maps})
        self._running = text
        if self.history is not None:
            self.history.record(text)
        workers = ", ".join(map(str, sorted(reloaded.new_workers)))
        if left_out:
            return result(
                "pruned", f"reloaded: new worker(s) {workers}; {_left_out_text(left_out)}"
            )
        return result("applied", f"reloaded: new worker(s) {workers}")

    def _without_refused(
        self,
        haproxy: HaproxyContainer,
        text: str,
        maps: tuple[tuple[str, str], ...],
        output: str,
        running: str | None,
        old: set[str],
        force: bool,
        step: Callable[[str], None],
    ) -> _Pruned | None:
        """The bundle without the services ``haproxy -c``'s ``output`` names, checked and
        moved into place; ``None`` when it names none, when no service would be left, or when
        it still refuses what is left after ``PRUNE_ROUNDS`` rounds (the running config
        stays)."""
        left_out: dict[str, str] = {}
        for _ in range(PRUNE_ROUNDS):
            blamed = attribute_files(output, {CONFIG_NAME: text, **dict(maps)})
            named = [name for name in blamed.services if name not in left_out]
            if not named:
                return None
            for name in named:
                left_out[name] = "; ".join(str(blame) for blame in blamed.reasons(name))
                logs.warning(
                    "service left out: haproxy -c refused it",
                    service=name,
                    reason=left_out[name],
                    digest=digest(text)[:12],
                )
            config, kept = prune(
                parse(text, file="<registry>"),
                [parse_map(content, name) for name, content in maps],
                named,
            )
            if not any(isinstance(section, Backend) for section in config.sections):
                return None  # nothing would be left: the old config serves more
            text = print_verified(config)
            maps = tuple((m.name, print_map(m.entries)) for m in kept)
            added = {name: content for name, content in maps if name not in old}
            reasons = tuple(sorted(left_out.items()))
            if text == running and not force:
                return _Pruned(text, maps, {}, reasons, moved=False)
            temporary, checked = self._write_and_check(haproxy, text, added, step)
            step("check+move")
            if checked.moved:
                return _Pruned(text, maps, added, reasons, moved=True)
            self.target.remove_maps(haproxy, set(added))
            output = checked.output.strip().replace(temporary, "<new config>")
        return None

    def _write_and_check(
        self,
        haproxy: HaproxyContainer,
        text: str,
        added: dict[str, str],
        step: Callable[[str], None],
    ) -> tuple[str, Checked]:
        """Write the new maps and config beside the old, ``haproxy -c`` it, move it in place."""
        temporary: str | None = None
        try:
            self.target.write_maps(haproxy, added)
            temporary = self.target.write_temporary(haproxy, text)
            step("write")
            return temporary, self.target.check_and_move(haproxy, temporary)
        except BaseException:
            # The old config is still in place: nothing new may stay beside it.
            if temporary is not None:
                self.target.remove(haproxy, temporary)
            self.target.remove_maps(haproxy, set(added))
            raise

    def _roll_back(
        self,
        haproxy: HaproxyContainer,
        good: str | None,
        error: ApplyError,
        result: Callable[[Outcome, str], ApplyResult],
    ) -> ApplyResult:
        if good is None:
            self.forget()
            return result("failed", f"{error.message}; no last known good config to restore")
        try:
            haproxy = self.target.locate()
            temporary = self.target.write_temporary(haproxy, good)
            if not self.target.check_and_move(haproxy, temporary).moved:
                raise ApplyError("haproxy -c refused it now", file="haproxy")
            self.target.reload(haproxy, self.target.mark(haproxy))
        except LocatedError as second:
            self.forget()
            return result(
                "failed",
                f"{error.message}; restoring the last known good config failed too: "
                f"{second.message}",
            )
        self._running = good
        self._known = (haproxy.id, haproxy.started_at)
        return result("rolled-back", f"{error.message}; the last known good config was restored")


def _left_out_text(left_out: LeftOut) -> str:
    names = ", ".join(name for name, _ in left_out)
    return f"without {len(left_out)} service(s) haproxy -c refused: {names}"


def bundle_problem(text: str, maps: tuple[tuple[str, str], ...]) -> str | None:
    """Why a config and its maps are not one sound bundle, or ``None``: the config must read
    exactly the maps given, and each map must read back as HAProxy reads it."""
    names = [name for name, _ in maps]
    wanted = referenced_maps(text)
    if set(names) != wanted or len(names) != len(set(names)):
        missing = sorted(wanted - set(names))
        extra = sorted(set(names) - wanted)
        return (
            f"a mismatched bundle: the config reads maps {missing} that did not come with it"
            if missing
            else f"a mismatched bundle: maps {extra} came with a config that does not read them"
        )
    for name, content in maps:
        problems = map_problems(content)
        parsed = parse_map(content, name)
        if problems or print_map(parsed.entries) != content:
            where = f"line {problems[0].line}: {problems[0].message}" if problems else "layout"
            return f"map {name} does not pass the map check ({where})"
    return None


def unified_diff(old: str | None, new: str, haproxy: HaproxyContainer) -> str:
    where = f"{haproxy.name}:{haproxy.config_path}"
    return "".join(
        difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=where,
            tofile=f"{where} (new)",
        )
    )


def _verified(text: str) -> Config:
    """``text`` parsed, once its round trip (print -> parse -> compare) holds."""
    config = parse(text, file="<registry>")
    print_verified(config)
    return config
