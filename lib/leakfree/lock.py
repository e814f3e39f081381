"""One writer per warehouse: a lock file that a second run sees at once, and that a run
killed without cleaning up does not leave in the way.

The lock is `<warehouse>/_lock`, created atomically (O_CREAT | O_EXCL) with the owner's
host, pid, process start time and run id, and touched every `heartbeat_s` while the run
lives. A lock is stale, and taken over, when its owner's process is gone (same host: the
pid no longer runs, or runs a different process) or its heartbeat is older than
`stale_after_s` (another host). Only a local warehouse folder can hold the lock; on a
remote warehouse the scheduler must keep runs apart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from leakfree import storage, tables
from leakfree.errors import LeakfreeError

log = logging.getLogger("leakfree")
# Locks this process holds, and for which run.
_held: dict[Path, str] = {}
# An empty or half-written lock younger than this belongs to a run that is writing it.
_BEING_WRITTEN_S = 10.0


class WarehouseBusy(LeakfreeError):
    """Another live run holds the warehouse."""


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    started: str  # the process's start time, so a reused pid is not mistaken for the owner
    run_id: str
    since: float

    @classmethod
    def me(cls, run_id: str) -> Owner:
        return cls(socket.gethostname(), os.getpid(), _process_start(os.getpid()), run_id, time.time())

    def alive(self, heartbeat_age_s: float, stale_after_s: float) -> bool:
        if self.host == socket.gethostname():
            return _process_start(self.pid) == self.started
        return heartbeat_age_s < stale_after_s


@contextlib.contextmanager
def exclusive(
    warehouse: str, run_id: str, *, heartbeat_s: float = 30.0, stale_after_s: float = 300.0
) -> Iterator[None]:
    """Hold the warehouse for the duration of the block, or raise WarehouseBusy."""
    if storage.is_remote(warehouse):
        log.warning("lock: %s is remote; leakfree cannot keep two runs apart there", warehouse)
        yield
        return
    path = Path(tables.table_path(warehouse, "_lock"))
    if _held.get(path) == run_id:
        yield  # this run holds it already (the CLI takes it before Spark starts)
        return
    if path.parent.exists() and not path.parent.is_dir():
        raise LeakfreeError(f"the warehouse {path.parent} is a file, not a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        me = Owner.me(run_id)
        _acquire(path, me, stale_after_s)
    except OSError as exc:
        raise LeakfreeError(f"cannot use the warehouse {path.parent}: {exc.strerror or exc}") from None
    _held[path] = run_id
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop, heartbeat_s), daemon=True)
    beat.start()
    try:
        yield
    finally:
        _held.pop(path, None)
        stop.set()
        beat.join()
        with contextlib.suppress(FileNotFoundError):
            if _read(path) == me:
                path.unlink()


def _acquire(path: Path, me: Owner, stale_after_s: float) -> None:
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _read(path)
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile: try again
            if holder is None and age < _BEING_WRITTEN_S:
                raise WarehouseBusy(f"the warehouse {path.parent} is being locked by another run right now") from None
            if holder is not None and holder.alive(age, stale_after_s):
                raise WarehouseBusy(
                    f"the warehouse {path.parent} is in use by run {holder.run_id} (pid {holder.pid} on "
                    f"{holder.host}, since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.since))}); "
                    "wait for it to finish"
                ) from None
            log.warning(
                "lock: released a lock left by %s, whose process is gone",
                f"run {holder.run_id} (pid {holder.pid} on {holder.host})" if holder else "an unreadable owner",
            )
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me.__dict__, f)
        return
    raise WarehouseBusy(f"could not take the lock {path}: other runs keep taking it")


def _read(path: Path) -> Owner | None:
    try:
        return Owner(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _heartbeat(path: Path, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        with contextlib.suppress(OSError):
            os.utime(path)


def _process_start(pid: int) -> str:
    """The kernel's start time of a process ('' when it does not exist)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""
