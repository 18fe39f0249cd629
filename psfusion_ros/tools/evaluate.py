"""``psfusion-eval``: the node's pipeline, offline, on a rosbag2 (MCAP or sqlite3) or an image-folder dataset.

The pipeline is built from the node's parameter file (``--params-file``, default: the package's
``config/psfusion.yaml``) with command-line flags overriding single values, so the numbers are those of the
node on the vehicle. Every synchronized pair is fused (none dropped), scored with the fusion metrics (and mIoU
when labels are given), timed per stage, and written to an output bag that plays next to the original. The run
streams: memory does not grow with the bag, and an interrupted run still leaves a valid report and bag.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from psfusion_ros.cli import (
    EXIT_INTERRUPTED,
    Interrupts,
    add_pipeline_args,
    config_from_args,
    existing_dir,
    positive_float,
    positive_int,
    prepare_output_dir,
    run_cli,
)
from psfusion_ros.errors import DataError, PSFusionError
from psfusion_ros.evaluation.scoring import PREVIEWS, build_report, check_pair_registration, keep_preview, process
from psfusion_ros.evaluation.sources import Accumulator, bag_items, folder_items, topic_transports
from psfusion_ros.io.bags import BagReader, BagWriter
from psfusion_ros.io.image_files import matched_names
from psfusion_ros.io.json_files import write_json
from psfusion_ros.metrics import PROFILES
from psfusion_ros.pipeline.builder import build_pipeline
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.parameters import default_params_file
from psfusion_ros.pipeline.sync import ApproximateTimeSync


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-eval", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bag", help="rosbag2 folder or file (MCAP or sqlite3)")
    source.add_argument("--ir", type=existing_dir, help="image-folder dataset: infrared folder (with --vi)")
    parser.add_argument("--vi", type=existing_dir, help="image-folder dataset: visible folder")
    parser.add_argument("--out", required=True, help="output folder: report.json, report.html, bag/")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier result in --out")
    parser.add_argument("--thermal-topic", default="/thermal/image_raw")
    parser.add_argument("--rgb-topic", default="/rgb/image_raw")
    parser.add_argument("--label-topic", default="/labels/image", help="mono8 class-id labels in the bag")
    parser.add_argument("--labels", type=existing_dir, help="folder of label PNGs (default: label/, Label/ or "
                        "Segmentation_labels/ beside --ir)")
    parser.add_argument("--calibration", help="registration YAML from psfusion-calibrate (overrides "
                        "registration.calibration_file)")
    parser.add_argument("--profile", default="cddfuse", choices=tuple(PROFILES), help="fusion metrics profile")
    parser.add_argument("--limit", type=positive_int, default=0, help="stop after N pairs")
    parser.add_argument("--max-interval", type=float, help="largest stamp spread in a pair, s (sync.max_interval)")
    parser.add_argument("--queue-size", type=positive_int, help="synchronizer queue per topic (sync.queue_size)")
    parser.add_argument("--storage", default="mcap", choices=("mcap", "sqlite3"), help="output bag storage")
    parser.add_argument("--compress-output", action="store_true", help="output bag with image_transport's compressed "
                        "topics: fused image as JPEG, class ids as lossless PNG (…/compressed)")
    parser.add_argument("--no-html", action="store_true", help="skip report.html")
    parser.add_argument("--registration-checks", type=int, default=20, metavar="N",
                        help="check the registration on N pairs spread over the drive, as the node's monitor does "
                        "(0: off; default 20)")
    live = parser.add_argument_group("live (the bag through the real node; needs --bag)")
    live.add_argument("--live", action="store_true", help="also play the bag into a real psfusion_node with the same "
                      "parameter file: end-to-end latency, drops by reason, node CPU/RSS (OUT/bag = what it published)")
    live.add_argument("--rate", type=positive_float, default=1.0, help="playback speed factor (default 1: recorded)")
    live.add_argument("--rate-sweep", type=_rates, metavar="R1,R2,...", help="also play at these factors to find "
                      "the highest rate the node sustains")
    add_pipeline_args(parser)
    return parser


def _rates(text: str) -> list[float]:
    try:
        rates = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of rate factors, e.g. 1,2,4") from None
    if not rates or any(not r > 0 for r in rates):
        raise argparse.ArgumentTypeError("rate factors must be positive")
    return rates


def eval_config(args: argparse.Namespace) -> PipelineConfig:
    """The node's pipeline from the parameter file, single values overridden by flags; image folders take the
    paper's resizing and identity registration (registered datasets) unless flags say otherwise."""
    overrides = {"registration.calibration_file": args.calibration, "sync.max_interval": args.max_interval,
                 "sync.queue_size": args.queue_size}
    base = PipelineConfig.from_yaml(args.params_file or default_params_file())
    base = base.with_params({k: v for k, v in overrides.items() if v is not None})
    return config_from_args(args, base if args.bag else base.for_image_folders())


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ir and not args.vi:
        parser.error("--ir needs --vi")
    if args.live and not args.bag:
        parser.error("--live plays a bag: give --bag")

    def run() -> int:
        config = eval_config(args)
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise DataError(f"{args.out} is a file; --out names a folder")
        pipeline = build_pipeline(config)
        reader = BagReader(args.bag) if args.bag else None  # checked before anything is written
        transports = {}
        if reader is not None:
            reader.check_topics([args.thermal_topic, args.rgb_topic])  # raw Image or CompressedImage
            transports = topic_transports(reader, [args.thermal_topic, args.rgb_topic])
        out = prepare_output_dir(args.out, args.overwrite, "evaluation")
        acc = Accumulator()
        sync = None
        if reader is not None:
            sync = ApproximateTimeSync(2, config.sync.queue_size, config.sync.max_interval_ns)
            total = reader.topics().get(args.rgb_topic, (None, None))[1]
            items = bag_items(reader, args, config, acc, sync)
        else:
            total = len(matched_names(Path(args.ir), Path(args.vi))[0])
            items = folder_items(args, acc)
        total = min(total, args.limit) if (total and args.limit) else total
        every = max((total or 1) // PREVIEWS, 1)
        check_every = max((total or 1) // args.registration_checks, 1) if args.registration_checks > 0 else 0
        stops = Interrupts("psfusion-eval")  # the report is written whatever comes after the first stop
        print(f"psfusion-eval: {config.summary()}; checkpoint {config.checkpoint or 'UNTRAINED'}", file=sys.stderr)
        start, interrupted, failed = time.perf_counter(), False, False
        offline_bag = out / ("offline_bag" if args.live else "bag")
        with BagWriter(offline_bag, args.storage) as out_bag:
            bar = tqdm(total=total, unit="pair", dynamic_ncols=True)
            try:
                with stops.stoppable():
                    for item in items:
                        result = process(item, pipeline, args.profile, acc, out_bag, compress=args.compress_output)
                        if result is not None:
                            keep_preview(acc, item, result, every)
                            if check_every and item.index % check_every == 0:
                                check_pair_registration(item, pipeline, acc)
                        bar.update(1)
            except KeyboardInterrupt:
                interrupted = True
            except PSFusionError:  # a bag corrupt half-way: no output bag that looks complete
                failed = True
                raise
            finally:
                bar.close()
                if reader is not None:
                    reader.close()
                if failed:
                    out_bag.abandon()
        interrupted = interrupted or stops.requested
        report = build_report(args, config, acc, sync, pipeline, time.perf_counter() - start, interrupted)
        report["output_bag"] = str(offline_bag)
        report["output_compressed"] = bool(args.compress_output)
        if transports:
            report["source"]["transports"] = transports
        if args.live and not interrupted:
            from psfusion_ros.evaluation.live import run_live

            try:
                with stops.stoppable():
                    report["live"] = run_live(args, config, out, sync.stats.matched if sync else report["pairs"])
            except KeyboardInterrupt:
                interrupted = report["interrupted"] = True
        write_json(out / "report.json", report)
        if not args.no_html:
            from psfusion_ros.evaluation.report_html import write_html

            write_html(out / "report.html", report, acc.previews)
        means = ", ".join(f"{k} {v:.3f}" for k, v in report["metrics"].items())
        seg = report.get("segmentation")
        print(f"psfusion-eval: {report['pairs']} pairs in {report['seconds']:.1f} s "
              f"({report['pairs_per_second']:.2f} pairs/s){' [interrupted]' if interrupted else ''}; {means}"
              + (f"; mIoU {seg['mIoU']:.4f}" if seg else "") + f" -> {out / 'report.json'}")
        reg = report["registration"]
        if reg["checks"]:
            print(f"psfusion-eval: registration ({reg['mode']}): {reg['verdict']}; {reg['confident_checks']} of "
                  f"{reg['checks']} checks confident")
        if acc.skipped:
            print(f"psfusion-eval: warning: {len(acc.skipped)} inputs skipped, e.g. {acc.skipped[0]}", file=sys.stderr)
        if not report["pairs"] and not interrupted:
            raise DataError("no synchronized pairs: check the topics, the stamps and --max-interval")
        return EXIT_INTERRUPTED if interrupted else 0

    return run_cli("psfusion-eval", run)


if __name__ == "__main__":
    sys.exit(main())
