"""The worker processes of a benchmark run: starting, talking to, and ending them.

A :class:`Worker` is one ``worker.py --serve`` process (one side). A
:class:`Pool` hands them out: normally a fresh process for every workload
(so that one workload's allocations, threads or imports never change
another's time or peak memory), under ``--quick`` one process per side for
the whole run (so transformers is imported once, not once per workload).
"""

from __future__ import annotations

import collections
import os
import queue
import subprocess
import sys
import threading

import common
from worker import PREFIX


def worker_cmd(side: str, quick: bool) -> list[str]:
    """The command line of a worker for ``side``."""
    cmd = [sys.executable, str(common.BENCH_DIR / "worker.py"), "--side", side]
    return cmd + ["--quick"] if quick else cmd


class WorkerError(Exception):
    """A served worker died, timed out or broke the protocol."""


class Worker:
    """A ``worker.py --serve`` process: builds on command, then timed steps on command."""

    def __init__(self, side: str, timeout: float, quick: bool) -> None:
        self.side, self.timeout = side, timeout
        env = dict(os.environ)
        if quick:  # tiny models: one BLAS / OpenMP thread per process, several processes at once
            env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [*worker_cmd(side, quick), "--serve"], stdin=subprocess.PIPE, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.replies: queue.Queue[str | None] = queue.Queue()
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                self.replies.put(line[len(PREFIX):].rstrip("\n"))
        self.replies.put(None)  # end of output: the process is gone

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if line.strip():
                self.stderr_tail.append(line.strip())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, cmd: str) -> None:
        """Send one command without waiting for its reply."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(cmd + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # reply() reports how the process ended

    def reply(self) -> tuple[str, str]:
        """The next protocol reply as (kind, payload)."""
        try:
            line = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            self.kill()
            raise WorkerError(f"timed out after {self.timeout:.0f} s")
        if line is None:
            self.proc.wait()
            raise WorkerError(f"worker exited with {self.proc.returncode}: "
                              + " | ".join(list(self.stderr_tail)[-3:]))
        kind, _, payload = line.partition(" ")
        return kind, payload

    def command(self, cmd: str) -> tuple[str, str]:
        """Send one command and wait for its reply."""
        self.send(cmd)
        return self.reply()

    def kill(self) -> None:
        """End this worker's process (only ever our own child): quit, or kill if it does not."""
        if self.proc.poll() is None:
            self.send("quit")
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Pool:
    """Hands out workers: fresh ones per workload, or (``shared``) one per side for the run."""

    def __init__(self, timeout: float, shared: bool, quick: bool) -> None:
        self.timeout, self.shared, self.quick = timeout, shared, quick
        self.kept: dict[str, Worker] = {}

    def get(self, side: str) -> Worker:
        """A worker for ``side`` with nothing built."""
        worker = self.kept.get(side)
        if worker is not None and worker.alive():
            return worker
        worker = Worker(side, self.timeout, self.quick)
        if self.shared:
            self.kept[side] = worker
        return worker

    def prestart(self, sides: list[str]) -> None:
        """Start the kept worker of each side now, so that its imports overlap other work."""
        for side in dict.fromkeys(sides + ["numpy"]):
            self.get(side)

    def release(self, worker: Worker) -> None:
        """The caller is done with ``worker``: ended, unless the pool keeps it for the next workload."""
        if not self.shared:
            worker.kill()

    def discard(self, worker: Worker) -> None:
        """``worker`` broke: end it and never hand it out again."""
        worker.kill()
        if self.kept.get(worker.side) is worker:
            del self.kept[worker.side]

    def __enter__(self) -> Pool:  # noqa: PYI034 - never subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self.kept.values():   # all told to quit first: they exit side by side
            worker.send("quit")
        for worker in self.kept.values():
            worker.kill()
        self.kept.clear()
