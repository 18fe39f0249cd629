"""``psfusion_node``'s entry point: signals handled before anything heavy is imported, then arguments checked.

Launch files and respawn logic read a non-zero exit or a traceback as a crash, so the stop signals are
caught first (:mod:`psfusion_ros.ros.signals`); rclpy, torch and the node are imported only after that.
"""

from __future__ import annotations

import sys

from psfusion_ros.ros.signals import PROG, StopSignals

USAGE = f"""usage: {PROG} [--ros-args [--params-file FILE] [-p NAME:=VALUE ...] [-r FROM:=TO ...]]

Fuses a thermal and an RGB camera with PSFusion and publishes fused/image, segmentation/mask,
segmentation/color, fused/camera_info and /diagnostics. Parameters are listed in the package's
config/psfusion.yaml and the README; for example:

  {PROG} --ros-args --params-file config/psfusion.yaml -p checkpoint:=/models/best_model.pth
"""


def _non_ros_args(argv: list[str]) -> list[str]:
    """Arguments outside ``--ros-args ... [--]`` blocks (what ROS would ignore)."""
    out, inside = [], False
    for arg in argv:
        if arg == "--ros-args":
            inside = True
        elif inside and arg == "--":
            inside = False
        elif not inside:
            out.append(arg)
    return out


def main(args: list[str] | None = None, lifecycle: bool = False) -> int:
    stop = StopSignals()
    argv = list(sys.argv[1:] if args is None else args)
    extra = _non_ros_args(argv)
    if any(a in ("-h", "--help") for a in extra):
        try:
            print(USAGE, flush=True)
        except BrokenPipeError:  # `psfusion_node --help | head`
            pass
        return 0
    if extra:
        bad = extra[0]
        hint = (f"parameters go after --ros-args: {PROG} --ros-args -p {bad}" if ":=" in bad
                else f"see {PROG} --help")
        print(f"{PROG}: error: unexpected argument {bad!r}; {hint}", file=sys.stderr)
        return 2
    print(f"{PROG}: starting", file=sys.stderr, flush=True)
    try:
        from psfusion_ros.ros.node import run  # phase "importing": a signal is recorded, not raised

        node_class = None
        if lifecycle:
            from psfusion_ros.ros import lifecycle_node

            node_class = lifecycle_node.PSFusionLifecycleNode
        if stop.requested.is_set():
            print(f"{PROG}: interrupted while starting; stopped cleanly", file=sys.stderr)
            return 0
        stop.phase = "starting"
        return run(argv, stop, node_class)
    finally:
        stop.ignore_from_now()  # through the interpreter's exit: see psfusion_ros.ros.signals


def lifecycle_main() -> int:
    """``psfusion_lifecycle_node``: the managed variant (see :mod:`psfusion_ros.ros.lifecycle_node`)."""
    return main(lifecycle=True)


if __name__ == "__main__":
    sys.exit(main())
