"""``psfusion-train``: PSFusion's multi-task training, or fusion-only training for rigs without labels.

    psfusion-train --dataroot datasets/MSRS --out runs/msrs                       # the paper's training
    psfusion-train --dataroot my_pairs --task fusion --checkpoint best_model.pth --out runs/adapt
    psfusion-train --bag drive.mcap --task fusion --checkpoint best_model.pth --out runs/drive
    torchrun --nproc_per_node 4 -m psfusion_ros.train --dataroot datasets/MSRS --out runs/ddp

Evaluation during training (``--eval-every``) runs ``psfusion-eval``'s folder code on ``DATAROOT/test``, so the
mIoU in ``history.json`` is the number ``psfusion-eval --ir test/ir --vi test/vi --checkpoint OUT/last.pth``
prints for the same weights.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from psfusion_ros.cli import (
    EXIT_INTERRUPTED,
    existing_file,
    non_negative_int,
    positive_float,
    positive_int,
    prepare_output_dir,
    run_cli,
)
from psfusion_ros.constants import BATCH_SIZE, CROP, LR, WARMUP_STEPS
from psfusion_ros.errors import DataError
from psfusion_ros.evaluation.scoring import folder_scores
from psfusion_ros.evaluation.sources import Accumulator, bag_items
from psfusion_ros.io.bags import BagReader
from psfusion_ros.io.image_files import find_label_dir, write_image
from psfusion_ros.metrics import PROFILES
from psfusion_ros.pipeline.config import PipelineConfig
from psfusion_ros.pipeline.parameters import default_params_file
from psfusion_ros.pipeline.registration import Registration
from psfusion_ros.pipeline.sync import ApproximateTimeSync
from psfusion_ros.pipeline.thermal import ThermalNormalizer
from psfusion_ros.train.trainer import AMP_MODES, OPTIMIZERS, TASKS, Evaluator, TrainConfig, Trainer

BAG_PAIRS = "bag_pairs"


def _crop(text: str) -> int:
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 32 (the network's stride)")
    return value


def _pretrained(text: str) -> str | None:
    return None if text.lower() == "none" else existing_file(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="psfusion-train", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataroot", help="MSRS layout: train/{vi,ir,label}, optional test/ (--task fusion: "
                        "vi/ + ir/ pairs are enough)")
    source.add_argument("--bag", help="rosbag2 whose synchronized pairs become the training set (as psfusion-eval "
                        "pairs them; labels from --label-topic when present)")
    parser.add_argument("--out", required=True, help="output folder: checkpoints, history.json/png, previews")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    parser.add_argument("--task", choices=TASKS, default="full",
                        help="full: the paper's multi-task objective (needs labels); fusion: fusion and "
                             "reconstruction losses only, the semantic heads keep their weights")
    weights = parser.add_argument_group("weights")
    weights.add_argument("--checkpoint", type=existing_file, help="start from these weights (e.g. the official "
                         "best_model.pth); a different --num-classes re-initializes only the last semantic layer")
    weights.add_argument("--pretrained", type=_pretrained, default=None, metavar="none|PATH",
                         help="ImageNet ResNet-34 weights for both encoder trunks: a torchvision state dict file "
                              "(resnet34-b627a593.pth); nothing is downloaded")
    weights.add_argument("--resume", type=existing_file, help="continue a run from its last.pth: epochs, optimizer, "
                         "schedule, RNG and history")
    weights.add_argument("--num-classes", type=positive_int, help="semantic classes (default: --palette's count, "
                         "else the checkpoint's, else 9 as MSRS)")
    weights.add_argument("--palette", type=existing_file, help="YAML with the class names and colours of another "
                         "class set (README: Training)")
    opt = parser.add_argument_group("optimization (defaults: the reference train.py)")
    opt.add_argument("--epochs", type=positive_int, default=TrainConfig.epochs)
    opt.add_argument("--batch-size", type=positive_int, default=BATCH_SIZE, help="per process and micro-batch")
    opt.add_argument("--accumulate", type=positive_int, default=1, help="micro-batches per optimizer step")
    opt.add_argument("--crop", type=_crop, default=CROP, help="square training patch, multiple of 32")
    opt.add_argument("--lr", type=positive_float, default=LR)
    opt.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd", help="sgd (the reference's) or adam")
    opt.add_argument("--warmup-steps", type=non_negative_int, default=WARMUP_STEPS)
    opt.add_argument("--amp", choices=AMP_MODES, default="none", help="mixed precision (fp16 needs CUDA)")
    opt.add_argument("--freeze-encoders", action="store_true", help="keep both encoder trunks fixed")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--max-steps", type=non_negative_int, default=0, help="stop after this many steps (0: no limit)")
    run = parser.add_argument_group("running")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: each process its "
                     "LOCAL_RANK GPU)")
    run.add_argument("--workers", type=non_negative_int, default=min(4, os.cpu_count() or 1), help="loader processes")
    run.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm across processes (CUDA)")
    run.add_argument("--eval-every", type=non_negative_int, default=10, help="evaluate on DATAROOT/test every N "
                     "epochs and at the end (0: never)")
    run.add_argument("--eval-metrics-pairs", type=non_negative_int, default=8,
                     help="fusion metrics on the first N test pairs (0: all); mIoU always uses every pair")
    run.add_argument("--profile", choices=tuple(PROFILES), default="cddfuse", help="fusion metrics profile")
    run.add_argument("--preview-every", type=non_negative_int, default=10, help="preview image every N epochs")
    bag = parser.add_argument_group("--bag source (as psfusion-eval)")
    bag.add_argument("--params-file", type=existing_file, help="node parameter file for sync, thermal "
                     "normalization and registration (default: the package's config/psfusion.yaml)")
    bag.add_argument("--thermal-topic", default="/thermal/image_raw")
    bag.add_argument("--rgb-topic", default="/rgb/image_raw")
    bag.add_argument("--label-topic", default="/labels/image")
    bag.add_argument("--limit", type=non_negative_int, default=0, help="use the first N pairs of the bag")
    return parser


def extract_bag_pairs(args: argparse.Namespace, folder: Path) -> Path:
    """The bag's synchronized pairs as ``folder/train/{vi,ir[,label]}`` PNGs: thermal normalized and registered
    into the RGB frame exactly as the node does, so the network trains on what it will see."""
    config = PipelineConfig.from_yaml(args.params_file or default_params_file())
    registration = Registration.from_config(config.registration)
    if not registration.ready:
        raise DataError("registration.mode camera_info needs both cameras' camera_info at run time; give a "
                        "calibration file (psfusion-calibrate) in --params-file to train from a bag")
    normalize = ThermalNormalizer(config.thermal)
    reader = BagReader(args.bag)
    reader.check_topics([args.thermal_topic, args.rgb_topic])
    sync = ApproximateTimeSync(2, config.sync.queue_size, config.sync.max_interval_ns)
    acc = Accumulator()
    partial = folder.with_name(folder.name + ".partial")  # becomes ``folder`` only when the bag was read to the end
    shutil.rmtree(partial, ignore_errors=True)
    train = partial / "train"
    labelled = 0
    total = reader.topics().get(args.rgb_topic, (None, 0))[1]
    try:
        with reader, tqdm(total=min(total, args.limit) if args.limit else total, unit="pair",
                          desc="extracting pairs") as bar:
            for item in bag_items(reader, args, config, acc, sync):
                rgb = np.asarray(item.pair.rgb.pixels)
                ir = registration.apply(normalize(np.asarray(item.pair.thermal.pixels)), rgb.shape[:2])
                ir = ir if ir.dtype == np.uint8 else np.round(np.clip(ir, 0, 1) * 255).astype(np.uint8)
                name = f"{item.index:06d}.png"
                write_image(train / "vi" / name, rgb)
                write_image(train / "ir" / name, ir)
                if item.label is not None:
                    write_image(train / "label" / name, item.label.astype(np.uint8))
                    labelled += 1
                bar.update(1)
        pairs = len(list((train / "vi").glob("*.png"))) if (train / "vi").is_dir() else 0
        if not pairs:
            raise DataError(f"{args.bag}: no synchronized pairs on {args.thermal_topic} and {args.rgb_topic}"
                            + (f" ({len(acc.skipped)} messages skipped, e.g. {acc.skipped[0]})" if acc.skipped
                               else ""))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # nothing half-extracted left to train on
        raise
    (partial / ".complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    print(f"psfusion-train: {pairs} pairs from {args.bag} ({labelled} with labels) -> {folder / 'train'}"
          + (f"; {len(acc.skipped)} messages skipped, e.g. {acc.skipped[0]}" if acc.skipped else ""),
          file=sys.stderr)
    return folder


def make_evaluator(dataroot: Path, device: str, args: argparse.Namespace) -> Evaluator | None:
    """psfusion-eval on DATAROOT/test (mIoU when it has labels, fusion metrics on a sample), or None."""
    test = dataroot / "test"
    if args.eval_every == 0 or not ((test / "vi").is_dir() and (test / "ir").is_dir()):
        return None
    labels = find_label_dir(test)

    def evaluate(model):  # noqa: ANN001, ANN202 - a PSFusion in, a small dict out
        return folder_scores(model, str(test / "ir"), str(test / "vi"), str(labels) if labels else None, device,
                             args.eval_metrics_pairs, args.profile)

    return evaluate


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> int:
        out = Path(args.out)
        config = TrainConfig(
            dataroot=str(out / BAG_PAIRS) if args.bag else args.dataroot, out=str(out), task=args.task,
            num_classes=args.num_classes, palette=args.palette, checkpoint=args.checkpoint,
            pretrained=args.pretrained, resume=args.resume, epochs=args.epochs, batch_size=args.batch_size,
            crop=args.crop, lr=args.lr, warmup_steps=args.warmup_steps, workers=args.workers, device=args.device,
            amp=args.amp, seed=args.seed, freeze_encoders=args.freeze_encoders, accumulate=args.accumulate,
            max_steps=args.max_steps, eval_every=args.eval_every, preview_every=args.preview_every,
            sync_bn=args.sync_bn, optimizer=args.optimizer)
        if args.dataroot and not Path(args.dataroot).is_dir():
            raise DataError(f"--dataroot {args.dataroot}: no such directory")
        trainer = Trainer(config)  # joins torchrun's process group, if any
        if trainer.dist.main:
            if args.resume:
                out.mkdir(parents=True, exist_ok=True)
            else:
                prepare_output_dir(out, args.overwrite, "training run")
            if args.bag and not (out / BAG_PAIRS / ".complete").exists():
                extract_bag_pairs(args, out / BAG_PAIRS)
        trainer.dist.barrier()
        # "cuda" is the trainer's GPU (it made it the current device), so evaluation never moves the weights
        trainer.evaluate = make_evaluator(Path(config.dataroot), trainer.device.type, args)
        result = trainer.run()
        if trainer.dist.main and result.history:
            final = result.history[-1]
            print(f"psfusion-train: {len(result.history)} epochs, loss {final.get('loss', float('nan')):.4f}"
                  + (f", test mIoU {final['test_mIoU']:.4f}" if final.get("test_mIoU") is not None else "")
                  + f" -> {out}", file=sys.stderr)
        return EXIT_INTERRUPTED if result.interrupted else 0

    return run_cli("psfusion-train", run)


if __name__ == "__main__":
    sys.exit(main())
