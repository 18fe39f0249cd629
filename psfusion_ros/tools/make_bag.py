"""``psfusion-bag``: an image-folder dataset as a rosbag2, to replay into the node or evaluate as a bag.

Pairs become two image topics with camera_info at a chosen rate, optionally with thermal timestamp jitter
(as unsynchronized cameras have) and a label topic.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psfusion_ros.errors import DataError
from psfusion_ros.io.bags import BagWriter, camera_info_message, header, image_message
from psfusion_ros.io.image_files import matched_names, read_image
from psfusion_ros.tools.cli import existing_dir, run_cli

START_NS = 1_700_000_000 * 1_000_000_000  # a fixed epoch so bags are reproducible


def _frame_topic(image_topic: str, leaf: str) -> str:
    return image_topic.rsplit("/", 1)[0] + "/" + leaf


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-bag", description=__doc__.splitlines()[0])
    parser.add_argument("--ir", required=True, type=existing_dir, help="folder of infrared images")
    parser.add_argument("--vi", required=True, type=existing_dir, help="folder of visible images")
    parser.add_argument("--out", required=True, help="rosbag2 folder to create")
    parser.add_argument("--labels", type=existing_dir, help="folder of class-id label PNGs (same names)")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--jitter-ms", type=float, default=0.0, help="std-dev of thermal stamp jitter (ms)")
    parser.add_argument("--seed", type=int, default=0, help="jitter seed")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"))
    parser.add_argument("--thermal-topic", default="/thermal/image_raw")
    parser.add_argument("--rgb-topic", default="/rgb/image_raw")
    parser.add_argument("--label-topic", default="/labels/image")
    parser.add_argument("--thermal-encoding", default="mono8", choices=("mono8", "mono16"),
                        help="mono16 scales 8-bit grey to 16-bit counts (x257), like a raw camera")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rate <= 0:
        parser.error("--rate must be positive")

    def run() -> int:
        names, unmatched = matched_names(Path(args.ir), Path(args.vi))
        if not names:
            raise DataError(f"no image file names appear in both {args.ir} and {args.vi}")
        rng = np.random.default_rng(args.seed)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # finish the bag on SIGTERM as on Ctrl-C
        written = 0
        with BagWriter(args.out, args.storage) as bag:
            try:
                for k, name in enumerate(tqdm(names, unit="pair", dynamic_ncols=True)):
                    vi = read_image(Path(args.vi) / name, "RGB")
                    ir = read_image(Path(args.ir) / name, "L")
                    rgb_ns = START_NS + int(round(k * 1e9 / args.rate))
                    ir_ns = rgb_ns + int(round(rng.normal(0.0, args.jitter_ms) * 1e6)) if args.jitter_ms else rgb_ns
                    if args.thermal_encoding == "mono16":
                        ir = ir.astype(np.uint16) * 257
                    rgb_hdr, ir_hdr = header(rgb_ns, "rgb_optical"), header(ir_ns, "thermal_optical")
                    bag.write(args.thermal_topic, image_message(ir, args.thermal_encoding, ir_hdr), ir_ns)
                    bag.write(_frame_topic(args.thermal_topic, "camera_info"),
                              camera_info_message(ir.shape[1], ir.shape[0], ir_hdr), ir_ns)
                    bag.write(args.rgb_topic, image_message(vi, "rgb8", rgb_hdr), rgb_ns)
                    bag.write(_frame_topic(args.rgb_topic, "camera_info"),
                              camera_info_message(vi.shape[1], vi.shape[0], rgb_hdr), rgb_ns)
                    if args.labels:
                        label_path = Path(args.labels) / (Path(name).stem + ".png")
                        if label_path.exists():
                            label = read_image(label_path, "L")
                            bag.write(args.label_topic, image_message(label, "mono8", rgb_hdr), rgb_ns)
                    written += 1
            except KeyboardInterrupt:
                print(f"psfusion-bag: interrupted after {written} pairs; the bag is closed and valid", file=sys.stderr)
        note = f" ({len(unmatched)} unmatched files ignored)" if unmatched else ""
        print(f"psfusion-bag: wrote {written} pairs ({bag.count} messages) at {args.rate:g} Hz to {args.out} "
              f"[{args.storage}]{note}")
        return 0 if written == len(names) else 130

    return run_cli("psfusion-bag", run)


if __name__ == "__main__":
    sys.exit(main())
