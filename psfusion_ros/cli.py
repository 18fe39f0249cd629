"""Shared command-line plumbing: the pipeline options every tool has, one-line errors, consistent exit codes.

Exit codes: 0 done, 1 done but some inputs failed (reported), 2 a user error (``prog: error: ...``),
130 interrupted (outputs written so far are valid). Only :class:`~psfusion_ros.errors.PSFusionError` becomes a
one-line error: anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import shutil
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from psfusion_ros.errors import ConfigError, DataError, PSFusionError
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.parameters import BACKENDS, DEVICES, PRECISIONS, RESAMPLERS, default_params_file
from psfusion_ros.pipeline.resize import parse_size

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Interrupts:
    """SIGINT/SIGTERM for a tool that saves what it did: inside :meth:`stoppable` the first one stops the work
    (KeyboardInterrupt where it is); outside it (writing the report, closing a bag) and after the first, they
    are noted and ignored, so a second Ctrl-C never loses the report or the summary line. Installed for both
    signals, so Ctrl-C works even when the shell started the tool with SIGINT ignored (a background job)."""

    def __init__(self, prog: str) -> None:
        self.prog, self.requested, self._raising = prog, False, False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first, self.requested = not self.requested, True
        if first and self._raising:
            self._raising = False
            raise KeyboardInterrupt
        print(f"{self.prog}: {signal.Signals(signum).name}: stopping; saving what was done first", file=sys.stderr,
              flush=True)

    @contextmanager
    def stoppable(self) -> Iterator[None]:
        """Work that a signal may cut short; a stop requested before it starts skips it."""
        if self.requested:
            raise KeyboardInterrupt
        self._raising = True
        try:
            yield
        finally:
            self._raising = False


def os_error_text(exc: OSError) -> str:
    """``cannot write out/x/y.png: Not a directory`` rather than errno numbers and a traceback."""
    where = str(exc.filename) if exc.filename is not None else ""
    if len(where) > 100:
        where = f"{where[:40]}...{where[-40:]}"
    reason = exc.strerror or type(exc).__name__
    if exc.errno == errno.ENAMETOOLONG:
        reason += " (the file system allows 255 bytes per name)"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST) and where:
        reason += " (a regular file is in the way of that path)"
    return f"{where}: {reason}" if where else reason


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Run ``main``; the package's errors print ``prog: error: message`` and return 2."""
    try:
        return main()
    except PSFusionError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # an output under a regular file, a name too long, a full disk, no permission
        print(f"{prog}: error: {os_error_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# -- argparse types: their messages are what the user reads ---------------------------------------------
def network_size_arg(text: str) -> tuple[int, int] | None:
    """``HxW`` (multiples of 32) or ``auto`` (each frame shrunk to a multiple of 32, as the paper)."""
    if text.strip().lower() == "auto":
        return None
    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def existing_dir(text: str) -> str:
    path = Path(text)
    if path.is_file():
        raise argparse.ArgumentTypeError(f"{text} is a file; expected a directory")
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    return text


def existing_file(text: str) -> str:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; expected a file")
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return text


def _int_at_least(text: str, minimum: int, requirement: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{value} {requirement}")
    return value


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "must be at least 1")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "cannot be negative")


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a positive number")
    return value


def prepare_output_dir(path: str | Path, overwrite: bool, what: str = "output") -> Path:
    """An output folder that is new or may be replaced; never writes into a file or an old result."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} is a file; --out names a folder")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DataError(f"{out} already holds an earlier {what}; pass --overwrite to replace it or choose "
                            "another --out")
        shutil.rmtree(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{out}: cannot create ({exc.strerror})") from None
    return out


# -- the pipeline options every inference tool shares ---------------------------------------------------
def add_pipeline_args(parser: argparse.ArgumentParser, params_file: bool = True) -> None:
    group = parser.add_argument_group("pipeline (defaults: the parameter file, i.e. what the node runs)")
    if params_file:
        group.add_argument("--params-file", type=existing_file,
                           help="node parameter file whose pipeline settings to use (default: the package's "
                                "config/psfusion.yaml)")
    group.add_argument("--checkpoint", help="best_model.pth or a psfusion_ros checkpoint (default: the "
                       "parameter file's checkpoint)")
    group.add_argument("--allow-untrained", action="store_true",
                       help="run seeded untrained weights when no checkpoint is given (demos, tests)")
    group.add_argument("--device", choices=DEVICES)
    group.add_argument("--backend", choices=BACKENDS)
    group.add_argument("--engine-path", help="artifact from psfusion-export (backends compile, tensorrt)")
    group.add_argument("--precision", choices=PRECISIONS,
                       help="bf16 pays off on CPUs with AVX-512 BF16/AMX (measure with psfusion-bench backends); "
                            "fp16 needs CUDA")
    group.add_argument("--network-size", type=network_size_arg, metavar="HxW|auto", default=argparse.SUPPRESS,
                       help="network input size; auto: each frame shrunk to a multiple of 32")
    group.add_argument("--resample", choices=RESAMPLERS, help="fast (OpenCV) or paper (PIL bicubic, exact)")


def config_from_args(args: argparse.Namespace, base: PipelineConfig | None = None,
                     **defaults: Any) -> PipelineConfig:
    """The parameter file's configuration (or ``base``), then ``defaults``, then every flag the user gave."""
    if base is None:
        params_file = getattr(args, "params_file", None) or default_params_file()
        base = PipelineConfig.from_yaml(params_file)
    config = base.replace(**defaults) if defaults else base
    flags = {"checkpoint": args.checkpoint, "device": args.device, "backend": args.backend,
             "engine_path": args.engine_path, "precision": args.precision, "resample": args.resample}
    config = config.with_params({k: v for k, v in flags.items() if v is not None})
    if args.allow_untrained:
        config = config.replace(allow_untrained=True)
    if hasattr(args, "network_size"):  # given on the command line (None: auto)
        config = config.replace(network_size=args.network_size)
    return config
