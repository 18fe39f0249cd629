"""Shared command-line plumbing: one-line errors instead of tracebacks, consistent exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from psfusion_ros.model.checkpoint import CheckpointError

EXIT_USAGE = 2


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Run ``main``; expected failures print ``prog: error: message`` and return a non-zero code."""
    try:
        return main()
    except (CheckpointError, ValueError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """Options every inference tool shares."""
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
        help="bf16 only pays off on CPUs with AVX-512 BF16/AMX (psfusion-bench backends); fp16 needs CUDA",
    )


def existing_dir(text: str) -> str:
    """argparse type: a directory that exists."""
    import os

    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: no such directory")
    return text
