"""Which processes still work in a run directory, and making DDP workers die with their job.

Every rank of a job holds a shared `flock` on `<run dir>/.alive.lock` while it runs (the kernel drops it
when the process ends, also on SIGKILL). A resume first tries an exclusive lock on the same file: if any
process of the earlier attempt still lives (an orphaned DDP worker, a job that is still shutting down),
two jobs would write one directory, so the resume stops with the pids instead.

DDP workers started by the job (mtv.runner.launch) ask the kernel for SIGTERM when their parent dies
(`prctl(PR_SET_PDEATHSIG)`): a job killed with SIGKILL takes its workers with it, and SIGTERM lets them
save last.ckpt first (mtv.runner.checkpointing).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mtv import ConfigError

LOCK_FILE = ".alive.lock"
PARENT_PID_ENV = "MTV_JOB_PID"  # pid of the job process that started the workers
_PR_SET_PDEATHSIG = 1


@contextmanager
def alive_in(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's shared lock for the duration of the block."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_SH)
        yield


def _holders(lock_file: Path) -> list[int]:
    """Pids holding a lock on `lock_file` (from /proc/locks; empty where that is not available)."""
    try:
        inode = lock_file.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return []
    pids = []
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiting request, not a holder
            continue
        if len(fields) >= 6 and fields[5].rsplit(":", 1)[-1] == str(inode):
            pids.append(int(fields[4]))
    return sorted(set(pids))


def check_nothing_alive(run_dir: Path) -> None:
    """Refuse to resume a run directory that processes of an earlier attempt still write to."""
    lock_file = run_dir / LOCK_FILE
    if not lock_file.exists():
        return
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pids = _holders(lock_file)
            raise ConfigError(
                f"resume: {run_dir} is still in use by processes of an earlier attempt "
                f"(pids {', '.join(map(str, pids)) or 'unknown'}, holding {lock_file}): wait until they end "
                "or kill them, then resume") from None
        fcntl.flock(handle, fcntl.LOCK_UN)


def die_with_parent() -> None:
    """In a DDP worker: get SIGTERM when the job process that started us dies (Linux); exit at once if it
    is already gone (it died between starting us and this call)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    parent = os.environ.get(PARENT_PID_ENV)
    if parent and os.getppid() != int(parent):
        sys.exit(f"the job process {parent} that started this worker is gone")
