"""The package's error family: what a user did wrong or what the world handed us, in one line.

Every expected failure (a bad parameter, a broken checkpoint, an undecodable image, a bag without the
topic) raises a :class:`PSFusionError` whose ``str()`` is one line that names the thing and the problem.
The CLIs and the node print exactly these as ``prog: error: ...`` and exit 2. Anything else, including a
plain ``ValueError`` raised by a bug in this package, stays a traceback so it gets reported and fixed.
"""

from __future__ import annotations


class PSFusionError(Exception):
    """Base of every expected failure; ``str()`` is a one-line message for the user."""


class ConfigError(PSFusionError, ValueError):
    """An invalid parameter, parameter file, calibration file or command-line value."""


class CheckpointError(PSFusionError, RuntimeError):
    """A checkpoint that cannot be used (missing, corrupt, foreign, incompatible)."""


class ImageDecodeError(PSFusionError, ValueError):
    """A sensor_msgs/Image that cannot be turned into pixels."""


class FrameError(PSFusionError, ValueError):
    """Decoded frames the pipeline cannot fuse (wrong type, sizes that do not fit, too small)."""


class EngineError(PSFusionError, RuntimeError):
    """An inference engine or exported artifact that cannot run here (mismatch, missing runtime)."""


class DataError(PSFusionError, OSError):
    """Input or output data on disk: a missing bag, a topic not in it, an output that already exists."""


def one_line(exc: BaseException) -> str:
    """First line of an exception's text (third-party errors can span many lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
