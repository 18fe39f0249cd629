"""``psfusion-bag play BAG``: a rosbag2's image and camera_info topics, published live with their recorded timing.

For set-ups without ``ros2 bag play`` (this package's pip-only install). Messages go out byte for byte as
recorded (serialized CDR, so every stamp and field is the recorded one), spaced by their log times divided by
``--rate``. ``--loop`` starts over (stamps jump back, as with a bag loop in the field); ``--clock`` also publishes
``/clock`` for nodes with ``use_sim_time``. MCAP and sqlite3 bags, including ones recorded by ``ros2 bag record``.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from psfusion_ros.cli import positive_float, run_cli
from psfusion_ros.errors import ConfigError
from psfusion_ros.harness.bag_player import BagPlayer


def parse_remaps(items: list[str]) -> dict[str, str]:
    remaps = {}
    for item in items:
        old, sep, new = item.partition(":=")
        if not sep or not old or not new:
            raise ConfigError(f"--remap {item!r} is not OLD:=NEW")
        remaps[old] = new
    return remaps


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-bag play", description=__doc__.splitlines()[0])
    parser.add_argument("bag", help="rosbag2 folder or file (MCAP or sqlite3)")
    parser.add_argument("--rate", type=positive_float, default=1.0, help="speed factor (default 1: recorded timing)")
    parser.add_argument("--loop", action="store_true", help="start over at the end (until Ctrl-C)")
    parser.add_argument("--start", type=float, default=0.0, help="seconds into the bag to start at")
    parser.add_argument("--duration", type=positive_float, help="seconds of the bag to play")
    parser.add_argument("--topics", nargs="+", help="topics to play (default: every Image and CameraInfo topic)")
    parser.add_argument("--remap", nargs="+", default=[], metavar="OLD:=NEW", help="publish OLD under NEW")
    parser.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable",
                        help="publisher reliability (reliable: nothing lost between processes on one machine)")
    parser.add_argument("--depth", type=int, default=100, help="publisher history depth")
    parser.add_argument("--clock", action="store_true", help="also publish /clock (for use_sim_time nodes)")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="SECONDS",
                        help="wait up to this long for a subscriber on every topic before starting")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        player = BagPlayer(args.bag, args.topics, parse_remaps(args.remap), args.rate, args.loop, args.start,
                           args.duration, args.qos, args.depth, args.clock)
        stop = threading.Event()

        def stop_playing(signum: int, frame: object) -> None:
            if stop.is_set():
                print("psfusion-bag: signal again: already stopping", file=sys.stderr, flush=True)
            stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, stop_playing)
        try:
            if player.skipped:
                print(f"psfusion-bag: warning: message types of {', '.join(player.skipped)} are not installed here; "
                      "not played", file=sys.stderr)
            if args.wait_for_subscribers and not player.wait_for_subscribers(args.wait_for_subscribers):
                print("psfusion-bag: warning: not every topic has a subscriber; playing anyway", file=sys.stderr)
            stats = player.play(stop)
        finally:
            player.close()
        counts = ", ".join(f"{topic} {n}" for topic, n in sorted(stats.published.items()))
        print(f"psfusion-bag: {'stopped' if stop.is_set() else 'played'} {sum(stats.published.values())} messages in "
              f"{stats.seconds:.1f} s" + (f" ({stats.loops} loops)" if stats.loops else "") + f": {counts}")
        return 0

    return run_cli("psfusion-bag", run)
