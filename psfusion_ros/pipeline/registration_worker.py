"""Registration checks in a separate process at the lowest priority, so they never slow inference down.

A check is numpy and OpenCV work. On a thread of the node it held the GIL between array operations while the
inference thread waited for it between torch operations, and OpenCV ran it on its shared (normal-priority)
pool: measured with ``psfusion-bench monitor`` on the 2-core CPU, inference cycles got 47 % slower. In its own
process at nice 19, with one OpenCV thread, it only takes what the node leaves idle. The process starts on
the first check, gets the latest pair through a pipe, and ends with the node (or when its pipe closes).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from typing import Any, BinaryIO

import numpy as np

#: A check that takes longer than this (a starved machine) is given up; the next one starts a new process.
TIMEOUT_S = 120.0


class CheckWorker:
    """Client side: ``measure(current, thermal, rgb)`` → the check from the worker process (None if it failed)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self.error = ""

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "psfusion_ros.pipeline.registration_worker"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)  # Ctrl-C at a terminal goes to the node, which ends it

    def measure(self, current: np.ndarray, thermal: np.ndarray, rgb: np.ndarray) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
        reply: list[Any] = []

        def exchange() -> None:
            try:
                pickle.dump((np.asarray(current), np.ascontiguousarray(thermal), np.ascontiguousarray(rgb)),
                            proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                proc.stdin.flush()
                reply.append(pickle.load(proc.stdout))
            except (OSError, EOFError, pickle.UnpicklingError) as exc:
                reply.append(exc)

        talker = threading.Thread(target=exchange, daemon=True)
        talker.start()
        talker.join(TIMEOUT_S)
        if not reply or isinstance(reply[0], BaseException):
            self.error = "registration check process did not answer" if not reply else f"worker: {reply[0]}"
            self.close()
            return None
        kind, value = reply[0]
        if kind == "error":
            self.error = value
            return None
        self.error = ""
        return value

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def serve(source: BinaryIO, sink: BinaryIO) -> None:
    """Worker side: one check per request until the pipe closes."""
    from psfusion_ros.pipeline.registration_check import measure

    while True:
        try:
            current, thermal, rgb = pickle.load(source)
        except (EOFError, OSError):
            return
        try:
            answer: tuple[str, Any] = ("ok", measure(current, thermal, rgb))
        except Exception as exc:  # noqa: BLE001 - reported to the node as text, the worker lives on
            answer = ("error", f"{type(exc).__name__}: {exc}"[:300])
        pickle.dump(answer, sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()


def lowest_priority() -> str:
    """SCHED_IDLE where Linux offers it (runs only on a processor nothing else wants, never preempts the node's
    threads on wake-up), else nice 19."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return "SCHED_IDLE"
    except (AttributeError, OSError):
        pass
    try:
        os.nice(19)
        return "nice 19"
    except OSError:
        return "normal"


if __name__ == "__main__":
    lowest_priority()
    import cv2

    cv2.setNumThreads(1)
    serve(sys.stdin.buffer, sys.stdout.buffer)
