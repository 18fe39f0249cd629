"""Stopping ``psfusion_node`` cleanly, whatever it is doing when the signal comes.

Every way of stopping the node exits 0 without a traceback: SIGINT or SIGTERM while the weights load (the load
is abandoned), while running (the frame in flight finishes, then everything shuts down in order), and again
while shutting down (noted and ignored), and after "stopped cleanly" while the interpreter exits: Python puts
the default disposition back for every signal with a Python handler when it finalizes, and a SIGINT in that
window (launch and supervisors send a second one a fraction of a second after the first) killed the process
(exit -2), so the last thing :func:`~psfusion_ros.ros.entry.main` does is :meth:`StopSignals.ignore_from_now`.
rclpy's own signal handlers are not installed; the executor loop polls :attr:`StopSignals.requested`.

While the heavy modules are imported (phase ``importing``) a signal is only recorded: a KeyboardInterrupt raised
inside an import is turned by C extensions into an ImportError (numpy: "Importing the numpy C-extensions
failed"), a traceback instead of a clean stop. The entry point checks the request once the imports are done.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

PROG = "psfusion_node"


class StopSignals:
    """First SIGINT/SIGTERM: stop (interrupting start-up); later ones: noted and ignored."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.phase = "importing"  # importing → starting → running → stopping → exiting
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def ignore_from_now(self) -> None:
        """Stop signals are ignored for the rest of the process (finalization leaves SIG_IGN alone)."""
        self.phase = "exiting"
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.requested.is_set()
        self.requested.set()
        if not first:
            print(f"{PROG}: {signal.Signals(signum).name} again: already stopping", file=sys.stderr, flush=True)
        elif self.phase == "starting":
            raise KeyboardInterrupt  # abandon loading the weights / building the engine
