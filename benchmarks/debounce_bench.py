"""The debouncer (``cosmonaut.daemon.trigger.Trigger``) on the wall clock: the figures its
tests used to assert, measured instead (the tests replay exact event sequences on a clock they
move).

Three cases, each repeated ``--runs`` times:

* lone event: one event, quiet period 50 ms, maximum 5 s: seconds from the event to its batch
  (the quiet period plus what the machine adds);
* burst: ten events 20 ms apart from another thread, quiet period 100 ms: how many batches the
  burst became (one when nothing stalled 80 ms or more), and the seconds to the first batch;
* endless: an event every 10 ms that never stops, quiet period 50 ms, maximum 300 ms: seconds
  from the first event to the batch (the maximum plus what the machine adds).

    python benchmarks/debounce_bench.py [--runs 20]

Fails (exit 1) when a case did not happen as described: no batch, or a batch with events lost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cosmonaut.daemon.trigger import (  # noqa: E402
    Batch,
    Trigger,
)


class Failed(Exception):
    pass


def lone_event() -> float:
    trigger = Trigger()
    trigger.notify("start a", "a")
    started = time.monotonic()
    batch = trigger.wait_batch(quiet=0.05, maximum=5, timeout=10)
    elapsed = time.monotonic() - started
    if batch is None or batch.reasons != ("start a",):
        raise Failed(f"lone event: expected one batch with 'start a', got {batch}")
    return elapsed


def burst() -> tuple[int, float]:
    trigger = Trigger()

    def send() -> None:
        for index in range(10):
            trigger.notify(f"start {index}", str(index))
            time.sleep(0.02)

    thread = threading.Thread(target=send)
    started = time.monotonic()
    thread.start()
    batches: list[Batch] = []
    first_at = 0.0
    while thread.is_alive() or trigger.pending():
        batch = trigger.wait_batch(quiet=0.1, maximum=5, timeout=10)
        if batch is None:
            raise Failed("burst: no batch within 10 s")
        if not batches:
            first_at = time.monotonic() - started
        batches.append(batch)
    thread.join()
    got = [reason for batch in batches for reason in batch.reasons]
    if got != [f"start {index}" for index in range(10)]:
        raise Failed(f"burst: events lost or reordered: {got}")
    return len(batches), first_at


def endless() -> float:
    trigger = Trigger()
    stop = threading.Event()

    def send() -> None:
        while not stop.is_set():
            trigger.notify("start x", "x")
            time.sleep(0.01)

    thread = threading.Thread(target=send)
    thread.start()
    try:
        started = time.monotonic()
        batch = trigger.wait_batch(quiet=0.05, maximum=0.3, timeout=10)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
    if batch is None or not batch.reasons:
        raise Failed("endless: no batch within 10 s although events never stopped")
    return elapsed


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"p50 {statistics.median(ordered) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The debouncer on the wall clock.")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args(argv)
    try:
        lone = [lone_event() for _ in range(args.runs)]
        bursts = [burst() for _ in range(args.runs)]
        endlessly = [endless() for _ in range(args.runs)]
    except Failed as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    split = sum(1 for count, _ in bursts if count > 1)
    print(f"runs per case: {args.runs}")
    print(f"lone event, quiet 50 ms, event -> batch: {summary(lone)}")
    print(
        f"burst of 10 events 20 ms apart, quiet 100 ms: one batch in {args.runs - split}/"
        f"{args.runs} runs (batches: max {max(count for count, _ in bursts)}); "
        f"first event -> first batch: {summary([at for _, at in bursts])}"
    )
    print(f"endless events every 10 ms, maximum 300 ms, first event -> batch: {summary(endlessly)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
