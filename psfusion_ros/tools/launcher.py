"""Console-script entry points of the long offline tools: stop signals are caught before the heavy imports.

Importing a tool loads torch, OpenCV and the pipeline (a second or more); a SIGTERM or Ctrl-C in that time
used to end the process by the signal (exit 143 / a KeyboardInterrupt traceback). Here the handlers come
first and only record the request while the imports run (a KeyboardInterrupt raised inside an import becomes
an ImportError in C extensions such as numpy); once they are done it is "interrupted while starting; nothing
written" and exit 130, like a stop at any later moment. Then SIGINT and SIGTERM raise KeyboardInterrupt until
the tool installs its own handlers. This module imports nothing heavy.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType

#: as psfusion_ros.cli.EXIT_INTERRUPTED (not imported: that module loads the pipeline)
EXIT_INTERRUPTED = 130


_requested: list[int] = []


def _record(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)


def _start(prog: str, module: str) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _record)
    main = importlib.import_module(module).main
    if _requested:
        print(f"{prog}: interrupted while starting; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when the shell started the tool with SIGINT ignored
        signal.signal(sig, signal.default_int_handler)
    return main()


def evaluate() -> int:
    return _start("psfusion-eval", "psfusion_ros.tools.evaluate")


def train() -> int:
    return _start("psfusion-train", "psfusion_ros.train.cli")


def make_bag() -> int:
    return _start("psfusion-bag", "psfusion_ros.tools.make_bag")


def fuse() -> int:
    return _start("psfusion-fuse", "psfusion_ros.tools.fuse")
