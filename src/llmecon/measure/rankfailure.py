"""When a rank of a distributed bench fails or hangs: its report, rank 0's verdict and watchdog (measure.distributed).

A rank whose configuration raises writes why into the process group's store (`Failures.report`) and waits for
rank 0 to acknowledge; a rank killed outright leaves nothing, but its peers' collectives fail at once (gloo:
"connection closed by peer") and they report that. Rank 0's `Watchdog` thread reads the reports, decides the
status (`verdict`), has the record written and ends the job; it also ends a configuration that runs past its
timeout (a hang), and keeps rank 0 alive through torchrun's SIGTERM (`TermSignal`) long enough to do so.
"""

from __future__ import annotations

import datetime
import json
import os
import select
import signal
import threading
import time
import traceback
from typing import Callable

from llmecon.measure.distributed import World

ACK_TIMEOUT_S = 20.0         # a failed rank waits this long for rank 0 to write its record, then exits anyway
REPORT_GRACE_S = 1.0         # after the first failure report, how long rank 0 waits for the other ranks' reports
# words in an exception that a collective raises because a peer failed, not because of this rank's own work
_PEER_WORDS = ("connection closed", "connection reset", "broken pipe", "peer", "socket", "gloo", "nccl",
               "remote process", "ProcessGroup", "DistBackendError")


def _peer_caused(message: str) -> bool:
    low = message.lower()
    return any(w.lower() in low for w in _PEER_WORDS)


def failure_report(rank: int, config_id: str, exc: BaseException, oom: str | None) -> dict:
    """What a failed rank tells rank 0: its status (oom, timeout, error) and whether a peer caused it."""
    message = f"{type(exc).__name__}: {exc}"[:1500]
    timed_out = "timed out" in message.lower() or "timeout" in type(exc).__name__.lower()
    return {"rank": rank, "config_id": config_id, "status": "oom" if oom else "timeout" if timed_out else "error",
            "message": message, "oom": oom, "peer": not oom and not timed_out and _peer_caused(message),
            "traceback": traceback.format_exc()[-3000:]}


def verdict(reports: list[dict], world_size: int) -> tuple[str, list[str], list[int]]:
    """(status, reasons, failed ranks) of a configuration from the ranks' failure reports: a rank's own failure
    (an OOM, an exception in its work) first; a collective that timed out next; and when every report blames a
    peer, the ranks that reported nothing are the ones that died (killed, or crashed outside Python)."""
    own = [r for r in reports if not r["peer"] and r["status"] != "timeout"]
    if own:
        first = min(own, key=lambda r: r["rank"])
        reasons = [f"rank {first['rank']}: {first['message']}"]
        if first.get("oom"):
            reasons.append(f"out of memory: {first['oom']}")
        return first["status"], reasons, sorted(r["rank"] for r in own)
    silent = sorted(set(range(world_size)) - {r["rank"] for r in reports})
    timed = [r for r in reports if r["status"] == "timeout"]
    if timed and not silent:
        return "timeout", [f"a collective timed out on rank {timed[0]['rank']}: {timed[0]['message']}"], []
    seen = reports[0]["message"] if reports else "no rank reported"
    return "error", [f"rank(s) {', '.join(map(str, silent)) or '?'} stopped without a report (killed, or crashed "
                     f"outside Python); rank {reports[0]['rank'] if reports else '?'} saw: {seen}"], silent


class Failures:
    """The store keys of failure reports: a failed rank's ``report`` and ``wait_ack``; rank 0's ``poll``."""

    PREFIX = "llmecon/fail"

    def __init__(self, world: World):
        self.world = world
        self.store = world.store()

    def report(self, report: dict) -> None:
        self.store.set(f"{self.PREFIX}/{report['rank']}", json.dumps(report))
        self.store.add(f"{self.PREFIX}/count", 1)

    def wait_ack(self, timeout_s: float = ACK_TIMEOUT_S) -> bool:
        try:
            self.store.wait([f"{self.PREFIX}/ack"], datetime.timedelta(seconds=timeout_s))
            return True
        except Exception:  # rank 0 died too, or never answered: exit anyway
            return False

    def count(self) -> int:
        return int(self.store.add(f"{self.PREFIX}/count", 0))

    def reports(self) -> list[dict]:
        out = []
        for rank in range(self.world.world_size):
            key = f"{self.PREFIX}/{rank}"
            if self.store.check([key]):
                out.append(json.loads(self.store.get(key)))
        return out

    def ack(self) -> None:
        self.store.set(f"{self.PREFIX}/ack", "1")


class Watchdog(threading.Thread):
    """Rank 0's guard: ends the configuration in progress with a status when a rank reports a failure, when the
    configuration runs past ``timeout_s``, or when torchrun stops the job (its agent sends SIGTERM to every rank as
    soon as one rank exits: ``wake_fd`` is the read end of `signal.set_wakeup_fd`'s pipe, which the signal reaches
    even while the main thread waits inside a collective). It writes through ``on_failure(config_id, status,
    reasons, failed_ranks, reports)``, then calls ``on_exit()`` (which ends the process: the world lost a rank)."""

    def __init__(self, world: World, timeout_s: float, on_failure: Callable, on_exit: Callable[[], None],
                 interval_s: float = 0.2, clock: Callable[[], float] = time.monotonic, wake_fd: int | None = None):
        super().__init__(daemon=True, name="llmecon-watchdog")
        self.world, self.timeout_s, self.on_failure, self.on_exit = world, timeout_s, on_failure, on_exit
        self.interval_s, self.clock, self.wake_fd = interval_s, clock, wake_fd
        self.failures = Failures(world)
        self.lock = threading.Lock()
        self.current: str | None = None
        self.since = clock()
        self.stopped = threading.Event()

    def mark(self, config_id: str | None) -> None:
        """A round of ``config_id`` starts (None: between configurations); its timeout clock restarts."""
        with self.lock:
            self.current, self.since = config_id, self.clock()

    def stop(self) -> None:
        self.stopped.set()

    def _terminated(self) -> bool:
        """Wait one interval; True when SIGTERM arrived meanwhile."""
        if self.wake_fd is None:
            self.stopped.wait(self.interval_s)
            return False
        if not select.select([self.wake_fd], [], [], self.interval_s)[0]:
            return False
        try:
            return signal.SIGTERM in os.read(self.wake_fd, 64)
        except OSError:
            return False

    def run(self) -> None:
        while not self.stopped.is_set():
            terminated = self._terminated()
            if self.stopped.is_set():
                return
            try:
                failed = self.failures.count() > 0
            except Exception:  # the store is gone: the job is ending
                failed = False
            with self.lock:
                current, since = self.current, self.since
            if failed or terminated:
                time.sleep(REPORT_GRACE_S)  # let the ranks' reports arrive (a peer's death reaches them at once)
                try:
                    reports = self.failures.reports()
                except Exception:
                    reports = []
                cid = current or (reports[0]["config_id"] if reports else None)
                if reports:
                    status, reasons, ranks = verdict(reports, self.world.world_size)
                else:
                    status, reasons, ranks = "interrupted", ["torchrun stopped the job (SIGTERM) while this "
                                                             "configuration ran, and no rank reported a failure"], []
                self.on_failure(cid, status, reasons, ranks, reports)
                try:
                    self.failures.ack()
                except Exception:
                    pass
                self.on_exit()
                return
            if current is not None and self.clock() - since > self.timeout_s:
                self.on_failure(current, "timeout", [f"ran longer than timeout_s={self.timeout_s:g} s with no rank "
                                                     "reporting a failure (a rank hangs, or waits on one that does)"],
                                [], [])
                self.on_exit()
                return


class TermSignal:
    """Rank 0 keeps running through torchrun's SIGTERM long enough for its watchdog to write the record: a no-op
    handler, and the signal's number written to a pipe the watchdog reads (``fd``). Restored on `close`."""

    def __init__(self):
        self.fd, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._old = signal.signal(signal.SIGTERM, lambda signum, frame: None)

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        signal.signal(signal.SIGTERM, self._old)
        os.close(self.fd)
        os.close(self._w)
