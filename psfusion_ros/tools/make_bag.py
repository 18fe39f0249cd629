"""``psfusion-bag``: an image-folder dataset as a rosbag2 (``psfusion-bag [create] ...``), or a bag played live
(``psfusion-bag play BAG``, see :mod:`psfusion_ros.tools.bag_play`).

Pairs become two image topics with camera_info at a chosen rate, optionally with thermal timestamp jitter
(as unsynchronized cameras have) and a label topic. ``--compressed`` records them as drivers behind
image_transport do: CompressedImage on ``<topic>/compressed``, RGB as JPEG and thermal as (16-bit) PNG.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psfusion_ros.cli import EXIT_INTERRUPTED, existing_dir, run_cli
from psfusion_ros.errors import DataError, PSFusionError
from psfusion_ros.io.bags import BagWriter, camera_info_message, compressed_image_message, header, image_message
from psfusion_ros.io.image_files import label_path, matched_names, read_image, read_label

START_NS = 1_700_000_000 * 1_000_000_000  # a fixed epoch so bags are reproducible


def _frame_topic(image_topic: str, leaf: str) -> str:
    return image_topic.rsplit("/", 1)[0] + "/" + leaf


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-bag", description=__doc__.splitlines()[0])
    parser.add_argument("--ir", required=True, type=existing_dir, help="folder of infrared images")
    parser.add_argument("--vi", required=True, type=existing_dir, help="folder of visible images")
    parser.add_argument("--out", required=True, help="rosbag2 folder to create")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bag at --out")
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
    parser.add_argument("--compressed", action="store_true", help="CompressedImage on <topic>/compressed: RGB as "
                        "JPEG, thermal as PNG (lossless, 16-bit for mono16), as image_transport records them")
    parser.add_argument("--jpeg-quality", type=int, default=95, choices=range(1, 101), metavar="1..100",
                        help="JPEG quality with --compressed (default 95, image_transport's)")
    return parser


def _write_pair(bag: BagWriter, args: argparse.Namespace, name: str, k: int, rng: np.random.Generator) -> None:
    vi = read_image(Path(args.vi) / name, "RGB")
    ir = read_image(Path(args.ir) / name, "L")
    if vi.shape[:2] != ir.shape:
        raise DataError(f"{name}: infrared {ir.shape[1]}x{ir.shape[0]} and visible {vi.shape[1]}x{vi.shape[0]} "
                        "differ in size")
    label = None
    if args.labels and (path := label_path(Path(args.labels), name)):
        label = read_label(path)
    rgb_ns = START_NS + int(round(k * 1e9 / args.rate))
    ir_ns = rgb_ns + int(round(rng.normal(0.0, args.jitter_ms) * 1e6)) if args.jitter_ms else rgb_ns
    if args.thermal_encoding == "mono16":
        ir = ir.astype(np.uint16) * 257
    rgb_hdr, ir_hdr = header(rgb_ns, "rgb_optical"), header(ir_ns, "thermal_optical")
    if args.compressed:
        bag.write(args.thermal_topic + "/compressed", compressed_image_message(ir, "png", ir_hdr), ir_ns)
    else:
        bag.write(args.thermal_topic, image_message(ir, args.thermal_encoding, ir_hdr), ir_ns)
    bag.write(_frame_topic(args.thermal_topic, "camera_info"), camera_info_message(ir.shape[1], ir.shape[0], ir_hdr),
              ir_ns)
    if args.compressed:
        bag.write(args.rgb_topic + "/compressed", compressed_image_message(vi, "jpeg", rgb_hdr, args.jpeg_quality),
                  rgb_ns)
    else:
        bag.write(args.rgb_topic, image_message(vi, "rgb8", rgb_hdr), rgb_ns)
    bag.write(_frame_topic(args.rgb_topic, "camera_info"), camera_info_message(vi.shape[1], vi.shape[0], rgb_hdr),
              rgb_ns)
    if label is not None:
        bag.write(args.label_topic, image_message(label, "mono8", rgb_hdr), rgb_ns)


def create(argv: list[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.rate > 0:
        parser.error("--rate must be positive")

    def run() -> int:
        names, unmatched = matched_names(Path(args.ir), Path(args.vi))
        if not names:
            raise DataError(f"no image file names appear in both {args.ir} and {args.vi}")
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} is a file; --out names the bag folder to create")
        if out.exists():
            if not args.overwrite:
                raise DataError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
            shutil.rmtree(out)
        rng = np.random.default_rng(args.seed)
        for sig in (signal.SIGINT, signal.SIGTERM):  # finish the bag on either, even if SIGINT was inherited ignored
            signal.signal(sig, signal.default_int_handler)
        written, failed, interrupted = 0, [], False
        with BagWriter(out, args.storage) as bag:
            try:
                for k, name in enumerate(tqdm(names, unit="pair", dynamic_ncols=True)):
                    try:
                        _write_pair(bag, args, name, k, rng)
                        written += 1
                    except PSFusionError as exc:  # an unreadable pair: reported, the bag goes on
                        failed.append(str(exc))
                        tqdm.write(f"warning: skipped {exc}", file=sys.stderr)
            except KeyboardInterrupt:
                interrupted = True
                print(f"psfusion-bag: interrupted after {written} pairs; the bag is closed and valid", file=sys.stderr)
        note = f" ({len(unmatched)} unmatched files ignored)" if unmatched else ""
        kind = " compressed (JPEG RGB, PNG thermal)" if args.compressed else ""
        print(f"psfusion-bag: wrote {written}{kind} pairs ({bag.count} messages) at {args.rate:g} Hz to {args.out} "
              f"[{args.storage}]{note}" + (f"; {len(failed)} pairs skipped" if failed else ""))
        if not written and not interrupted:
            shutil.rmtree(out, ignore_errors=True)
            raise DataError(f"no pair could be read ({failed[0] if failed else 'nothing to write'}); no bag written")
        return EXIT_INTERRUPTED if interrupted else 1 if failed else 0

    return run_cli("psfusion-bag", run)


def main(argv: list[str] | None = None) -> int:
    """``psfusion-bag [create] --ir --vi --out`` makes a bag; ``psfusion-bag play BAG`` replays one."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["play"]:
        from psfusion_ros.tools.bag_play import main as play

        return play(argv[1:])
    if argv[:1] == ["create"]:
        argv = argv[1:]
    return create(argv)


if __name__ == "__main__":
    sys.exit(main())
