"""The training loop: one process, or one per GPU/CPU slot under torchrun (DistributedDataParallel).

Global batch = ``batch_size`` x ``accumulate`` x processes. Each loader batch of ``batch_size * accumulate``
samples is split into micro-batches ``batch[r::accumulate]``, which are exactly the batches that ``accumulate``
processes would each see from the same shuffled order; so one process with ``--accumulate 2`` reproduces a
2-process run step for step (BatchNorm, OHEM and the correlation term all work per micro-batch in both).

Checkpoints keep the official layout (``MTAN``, ``optimizer``, ``ep``, ``total_it``, ``best_mIou``) plus a
``train`` entry (history, best values, RNG state, class set) that ``--resume`` uses; every tool loads them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from psfusion_ros.constants import (
    BATCH_SIZE,
    CROP,
    LR,
    MOMENTUM,
    OFFICIAL_CHECKPOINT_KEY,
    PROJECT_CHECKPOINT_FORMAT,
    SIZE_MULTIPLE,
    WARMUP_STEPS,
    WEIGHT_DECAY,
)
from psfusion_ros.errors import CheckpointError, ConfigError, DataError
from psfusion_ros.io.json_files import write_json
from psfusion_ros.model.checkpoint import extract_state_dict, infer_num_classes, read_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.color import rgb_to_ycrcb
from psfusion_ros.pipeline.engines.base import resolve_device
from psfusion_ros.train.classes import MSRS, ClassSet, generic_class_set, load_class_set
from psfusion_ros.train.dataset import PairDataset, split_dir
from psfusion_ros.train.history import plot_history, save_preview
from psfusion_ros.train.losses import training_loss
from psfusion_ros.train.schedule import WarmupPoly

TASKS = ("full", "fusion")
#: ``sgd`` is the reference's (momentum 0.9, weight decay 5e-4); ``adam`` learns fresh heads in far fewer steps
#: (the demo weights: a run of a few hundred steps with SGD collapsed to one class on some seeds).
OPTIMIZERS = ("sgd", "adam")
AMP_MODES = ("none", "bf16", "fp16")
#: Modules left untouched by --task fusion (the semantic path: its heads keep the loaded weights).
SEMANTIC_MODULES = ("classfier", "seg_decoder", "to_fused_seg")
#: Parameters the forward pass never uses (kept for strict loading of the official checkpoint).
UNUSED_PARAMETERS = ("classfier.boundary_conv1.", "classfier.boundary_conv2.")
#: Consecutive non-finite steps after which training stops instead of spinning.
MAX_NONFINITE_STEPS = 20

#: ``evaluate(model) -> {"mIoU": float | None, "metrics": {...}, "pairs": int}`` (psfusion-eval's folder code).
Evaluator = Callable[[PSFusion], dict[str, Any]]


@dataclass
class TrainConfig:
    """Everything a run depends on; written to ``OUT/train_config.json`` and into every checkpoint."""

    dataroot: str
    out: str
    task: str = "full"
    num_classes: int | None = None  # default: the palette file's count, else the checkpoint's, else 9
    palette: str | None = None
    checkpoint: str | None = None  # weights to start from (e.g. the official best_model.pth)
    pretrained: str | None = None  # torchvision ResNet-34 state dict for both encoder trunks
    resume: str | None = None
    epochs: int = 300
    batch_size: int = BATCH_SIZE
    crop: int = CROP
    lr: float = LR
    warmup_steps: int = WARMUP_STEPS
    workers: int = 4
    device: str = "auto"
    amp: str = "none"
    seed: int = 0
    freeze_encoders: bool = False
    accumulate: int = 1
    max_steps: int = 0  # stop after this many optimizer steps in all (0: no limit)
    eval_every: int = 10
    preview_every: int = 10
    sync_bn: bool = False
    optimizer: str = "sgd"

    def check(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"--task {self.task!r}: expected one of {TASKS}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"--optimizer {self.optimizer!r}: expected one of {OPTIMIZERS}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"--amp {self.amp!r}: expected one of {AMP_MODES}")
        if self.crop < SIZE_MULTIPLE or self.crop % SIZE_MULTIPLE:
            raise ConfigError(f"--crop {self.crop}: must be a multiple of {SIZE_MULTIPLE} (the network's stride)")
        for name in ("epochs", "accumulate"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be at least 2: BatchNorm after global pooling needs two samples "
                              "(use --accumulate for larger steps on a small GPU)")
        if not self.lr > 0:
            raise ConfigError("--lr must be positive")
        if self.warmup_steps < 0 or self.workers < 0 or self.max_steps < 0:
            raise ConfigError("--warmup-steps, --workers and --max-steps cannot be negative")


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    last: Path | None = None
    best: Path | None = None


class Distributed:
    """torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK): gloo on CPU, NCCL on GPUs; one process without it."""

    def __init__(self, device_name: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = resolve_device(device_name)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", self.local_rank)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            if device.type == "cpu":  # share the cores instead of oversubscribing them
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE",
                                                                                         self.world))))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            dist.all_reduce(values)
            values /= self.world
        return values

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


# -- the model -------------------------------------------------------------------------------------------
def load_pretrained_trunks(model: PSFusion, path: str | Path) -> int:
    """Copy an ImageNet ResNet-34 (torchvision state dict, e.g. ``resnet34-b627a593.pth``) into both encoders:
    ``bn1`` and ``layer1..4`` become ``encoder_*_bn1`` and ``encoder_*_layer3..6``; ``conv1`` has no counterpart
    (PSFusion's first block is its own). Returns the number of tensors copied."""
    state = extract_state_dict(read_checkpoint(Path(path)), path)
    mapped = {}
    for key, value in state.items():
        head, _, rest = key.partition(".")
        target = "bn1" if head == "bn1" else f"layer{int(head[5:]) + 2}" if head in {f"layer{i}" for i in
                                                                                    range(1, 5)} else None
        if target:
            for modality in ("rgb", "thermal"):
                mapped[f"encoder_{modality}_{target}.{rest}"] = value
    own = model.state_dict()
    wanted = [k for k in own if k.startswith(("encoder_rgb_bn1", "encoder_rgb_layer", "encoder_thermal_bn1",
                                              "encoder_thermal_layer"))]
    missing = [k for k in wanted if k not in mapped]
    wrong = [k for k in wanted if k in mapped and mapped[k].shape != own[k].shape]
    if missing or wrong:
        raise CheckpointError(f"{path}: not a torchvision ResNet-34 state dict ({len(missing)} trunk tensors missing,"
                              f" {len(wrong)} of the wrong shape, e.g. {(missing or wrong)[0]})")
    model.load_state_dict({k: mapped[k] for k in wanted}, strict=False)
    return len(wanted)


def load_initial_weights(model: PSFusion, path: str | Path) -> str:
    """Start from a checkpoint's weights. With another class count only the last semantic layer starts fresh."""
    state = extract_state_dict(read_checkpoint(Path(path)), path)
    own = model.state_dict()
    fresh = [k for k in own if k.startswith("classfier.semantic_conv2.") and k in state
             and state[k].shape != own[k].shape]
    state = {k: v for k, v in state.items() if k not in fresh}
    missing = [k for k in own if k not in state and k not in fresh]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(f"{path}: not a PSFusion checkpoint ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected tensors, e.g. {(missing or unexpected)[0]!r})")
    model.load_state_dict(state, strict=False)
    return f"weights from {path}" + (f"; semantic classifier re-initialized for {model.num_classes} classes"
                                     if fresh else "")


def frozen_prefixes(config: TrainConfig) -> tuple[str, ...]:
    prefixes = list(UNUSED_PARAMETERS)
    if config.task == "fusion":
        prefixes += [f"{m}." for m in SEMANTIC_MODULES]
    if config.freeze_encoders:
        prefixes += ["encoder_rgb_", "encoder_thermal_"]
    return tuple(prefixes)


def freeze(model: PSFusion, prefixes: tuple[str, ...]) -> list[torch.nn.Module]:
    """Stop gradients for the given parameter prefixes; returns the frozen modules, whose BatchNorm statistics
    must stay too (:func:`set_train_mode`)."""
    for name, param in model.named_parameters():
        if name.startswith(prefixes):
            param.requires_grad_(False)
    return [m for name, m in model.named_modules() if name and (name + ".").startswith(prefixes)
            and not any(p.requires_grad for p in m.parameters())]


def set_train_mode(model: torch.nn.Module, frozen: list[torch.nn.Module]) -> None:
    model.train()
    for module in frozen:
        module.eval()


# -- checkpoints -------------------------------------------------------------------------------------------
def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """Write to a temporary file, flush it to disk, then rename: a crash never leaves a broken ``path``."""
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Ctrl-C or SIGTERM while checkpoints are written takes effect once they are complete."""
    received: list[int] = []
    handlers = {sig: signal.signal(sig, lambda number, _: received.append(number))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        if received:
            raise KeyboardInterrupt


def _y(vi: torch.Tensor) -> torch.Tensor:
    """Visible luminance (B,1,H,W), clamped like the reference's ``RGB2YCrCb``."""
    return rgb_to_ycrcb(vi.permute(0, 2, 3, 1))[0][:, None]


class Trainer:
    def __init__(self, config: TrainConfig, evaluate: Evaluator | None = None,
                 log: Callable[[str], None] | None = None) -> None:
        config.check()
        self.config = config
        self.evaluate = evaluate
        self.dist = Distributed(config.device)
        self.device = self.dist.device
        self._log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        if config.amp == "fp16" and self.device.type != "cuda":
            raise ConfigError("--amp fp16 needs CUDA; use --amp bf16 on the CPU")
        if config.sync_bn and self.device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA (torch's SyncBatchNorm runs on GPUs only); on the CPU each "
                              "process normalizes its own batch")
        self.out = Path(config.out)
        self.classes = self._class_set()
        self.nonfinite_run = 0

    def log(self, line: str) -> None:
        if self.dist.main:
            self._log(line)
            with (self.out / "train.log").open("a") as f:
                f.write(line + "\n")

    def _class_set(self) -> ClassSet:
        c = self.config
        classes = load_class_set(c.palette) if c.palette else None
        count = c.num_classes or (len(classes) if classes else None)
        if count is None and (c.checkpoint or c.resume):
            count = infer_num_classes(extract_state_dict(read_checkpoint(Path(c.resume or c.checkpoint))))
        count = count or len(MSRS)
        if classes and len(classes) != count:
            raise ConfigError(f"--palette lists {len(classes)} classes but --num-classes is {count}")
        if not 2 <= count <= 255:
            raise ConfigError(f"--num-classes {count}: expected 2..255")
        return classes or (MSRS if count == len(MSRS) else generic_class_set(count))

    def _build_model(self) -> tuple[PSFusion, list[torch.nn.Module]]:
        c = self.config
        torch.manual_seed(c.seed)  # identical initial weights in every process
        model = PSFusion(len(self.classes))
        if c.pretrained:
            self.log(f"pretrained encoders: {load_pretrained_trunks(model, c.pretrained)} tensors from {c.pretrained}")
        if c.checkpoint and not c.resume:
            self.log("starting from " + load_initial_weights(model, c.checkpoint))
        frozen = freeze(model, frozen_prefixes(c))
        model.to(self.device)
        if c.sync_bn and self.dist.world > 1:
            model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, frozen

    def _payload(self, model: PSFusion, optimizer: torch.optim.Optimizer, ep: int, total_it: int,
                 state: dict[str, Any]) -> dict[str, Any]:
        return {
            OFFICIAL_CHECKPOINT_KEY: {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(), "ep": ep, "total_it": total_it,
            "best_mIou": float(state["best_mIou"]),
            "format": PROJECT_CHECKPOINT_FORMAT, "num_classes": model.num_classes,
            "train": {"config": asdict(self.config), "history": state["history"],
                      "best_loss": state["best_loss"], "torch_rng": torch.get_rng_state(),
                      "classes": list(self.classes.names), "palette": [list(c) for c in self.classes.colors],
                      "world_size": self.dist.world},
        }

    def _resume(self, model: PSFusion, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> tuple[int, int]:
        path = Path(self.config.resume)
        payload = read_checkpoint(path)
        if not isinstance(payload, dict) or not {"optimizer", "ep", "total_it"} <= set(payload):
            raise CheckpointError(f"{path}: not a training checkpoint (needs 'optimizer', 'ep', 'total_it'); to start "
                                  "from its weights use --checkpoint")
        weights = extract_state_dict(payload, path)
        try:
            model.load_state_dict(weights, strict=True)
            optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: does not match this run ({str(exc).splitlines()[0][:160]}); did "
                                  "--task, --freeze-encoders or --num-classes change? (To start from its weights "
                                  "use --checkpoint)") from None
        extra = payload.get("train") or {}
        ep = int(payload["ep"])
        state["history"] = [h for h in extra.get("history", []) if h["epoch"] <= ep + 1]
        state["best_mIou"] = float(payload.get("best_mIou", 0.0))
        state["best_loss"] = extra.get("best_loss")
        if isinstance(extra.get("torch_rng"), torch.Tensor):
            torch.set_rng_state(extra["torch_rng"])
        return ep + 1, int(payload["total_it"])

    def run(self) -> TrainResult:
        try:
            return self._run()
        finally:
            self.dist.close()

    def _run(self) -> TrainResult:
        c, d = self.config, self.dist
        dataset = PairDataset(split_dir(Path(c.dataroot), "train"), c.task, c.crop, c.seed, len(self.classes))
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_json(self.out / "train_config.json", {**asdict(c), "world_size": d.world,
                                                        "classes": list(self.classes.names)})
        d.barrier()
        self.log(f"psfusion-train: task {c.task}, {len(dataset)} training pairs from {dataset.folder}, "
                 f"{len(self.classes)} classes, device {self.device}, {d.world} process(es), global batch "
                 f"{c.batch_size * c.accumulate * d.world}" + (f", targets derived: {', '.join(dataset.derived)}"
                                                               if c.task == "full" and dataset.derived else ""))
        if dataset.problems:
            listed = self.out / "data_problems.txt"
            self.log(f"warning: {len(dataset.problems)} samples left out (all in {listed}), e.g. {dataset.problems[0]}")
            if d.main:
                (self.out / "data_problems.txt").write_text("\n".join(dataset.problems) + "\n")
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=d.world, rank=d.rank, shuffle=True,
                                                      seed=c.seed)
        per_step = c.batch_size * c.accumulate
        if len(sampler) < per_step:
            raise DataError(f"{len(dataset)} training pairs are fewer than one step needs ({per_step} per process "
                            f"x {d.world}); lower --batch-size or --accumulate")
        # full batches only: a batch of one cannot train BatchNorm after global pooling (the reference crashes)
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=per_step, sampler=sampler, num_workers=c.workers, drop_last=True,
            worker_init_fn=_quiet_worker, pin_memory=self.device.type == "cuda")
        model, frozen = self._build_model()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer: torch.optim.Optimizer = (
            torch.optim.SGD(params, lr=c.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY) if c.optimizer == "sgd"
            else torch.optim.Adam(params, lr=c.lr))
        state: dict[str, Any] = {"history": [], "best_mIou": 0.0, "best_loss": None}
        start_epoch, total_it = self._resume(model, optimizer, state) if c.resume else (0, 0)
        if c.resume:
            self.log(f"resumed from {c.resume}: epoch {start_epoch}, step {total_it}")
        if start_epoch >= c.epochs:
            self.log(f"already trained {start_epoch} epochs; raise --epochs to train more")
            return TrainResult(state["history"])
        wrapped: torch.nn.Module = model
        if d.world > 1:
            wrapped = DistributedDataParallel(model, device_ids=[self.device.index] if self.device.type == "cuda"
                                              else None)
        schedule = WarmupPoly(c.lr, c.epochs * len(loader), c.warmup_steps)
        scaler = torch.amp.GradScaler("cuda", enabled=c.amp == "fp16")
        result = TrainResult(state["history"])
        # Ctrl-C and SIGTERM save and stop, also when SIGINT was inherited ignored (a background job of a script)
        previous = tuple(signal.signal(sig, signal.default_int_handler) for sig in (signal.SIGINT, signal.SIGTERM))
        done = start_epoch - 1  # the last epoch whose checkpoint is written
        try:
            for epoch in range(start_epoch, c.epochs):
                total_it, stop = self._epoch(epoch, wrapped, model, frozen, loader, sampler, dataset, optimizer,
                                             schedule, scaler, total_it, state)
                with deferred_interrupts():
                    self._save(model, optimizer, epoch, total_it, state, result)
                    done = epoch
                if stop:
                    break
        except KeyboardInterrupt:
            result.interrupted = True
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C cannot cut the checkpoint short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if d.main:  # the weights of this moment, counted as the last complete epoch
                save_atomic(self._payload(model, optimizer, done, total_it, state), self.out / "last.pth")
                result.last = self.out / "last.pth"
            self.log(f"interrupted after epoch {done + 1}: weights saved to {self.out / 'last.pth'} (resume with "
                     "--resume; an epoch cut short runs again)")
        finally:  # (SIGTERM saves like Ctrl-C while training)
            for sig, handler in zip((signal.SIGINT, signal.SIGTERM), previous):
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)  # None: set outside Python
        result.history = state["history"]
        return result

    def _epoch(self, epoch: int, wrapped: torch.nn.Module, model: PSFusion, frozen: list[torch.nn.Module],
               loader: torch.utils.data.DataLoader, sampler: torch.utils.data.DistributedSampler,
               dataset: PairDataset, optimizer: torch.optim.Optimizer, schedule: WarmupPoly,
               scaler: torch.amp.GradScaler, total_it: int, state: dict[str, Any]) -> tuple[int, bool]:
        c, d = self.config, self.dist
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        set_train_mode(wrapped, frozen)
        sums: dict[str, float] = {}
        steps = nonfinite = 0  # nonfinite: steps skipped this epoch; self.nonfinite_run: in a row, across epochs
        problems: set[str] = set()
        last = None
        stop = False
        start = time.perf_counter()
        bar = tqdm(total=len(loader), desc=f"epoch {epoch + 1}/{c.epochs}", unit="step", leave=False,
                   disable=not d.main, dynamic_ncols=True)
        try:
            for batch in loader:
                problems.update(p for p in batch.pop("problem") if p)
                lr = schedule(total_it)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                terms, last = self._step(wrapped, batch, optimizer, scaler)
                total_it += 1
                if terms is None:
                    nonfinite += 1
                    self.nonfinite_run += 1
                    if self.nonfinite_run >= MAX_NONFINITE_STEPS:
                        raise DataError(f"training diverged: {self.nonfinite_run} steps in a row with a NaN/Inf loss "
                                        "(lower --lr, or check the data); last.pth holds the last good epoch")
                else:
                    self.nonfinite_run = 0
                    steps += 1
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v
                    bar.set_postfix(loss=f"{terms['loss']:.3f}", lr=f"{lr:.2e}")
                bar.update(1)
                if c.max_steps and total_it >= c.max_steps:
                    stop = True
                    break
        finally:
            bar.close()  # before any log line, also when interrupted
        entry: dict[str, Any] = {"epoch": epoch + 1, **{k: v / max(steps, 1) for k, v in sums.items()},
                                 "lr": schedule(max(total_it - 1, 0)), "steps": steps,
                                 "seconds": round(time.perf_counter() - start, 3)}
        if nonfinite or steps == 0:
            entry["nonfinite_steps"] = nonfinite
        if problems:
            entry["unreadable_samples"] = sorted(problems)
            self.log(f"warning: {len(problems)} samples could not be decoded this epoch, e.g. {sorted(problems)[0]}")
        last_epoch = stop or epoch + 1 == c.epochs
        if self.evaluate and c.eval_every and ((epoch + 1) % c.eval_every == 0 or last_epoch):
            entry.update(self._evaluate(model, frozen, wrapped))
        state["history"].append(entry)
        if d.main and last is not None and c.preview_every and ((epoch + 1) % c.preview_every == 0 or last_epoch):
            save_preview(self.out / "previews" / f"epoch_{epoch + 1:04d}.jpg", *last, self.classes)
        self.log(_epoch_line(entry, c.epochs))
        return total_it, stop

    def _step(self, wrapped: torch.nn.Module, batch: dict[str, Any], optimizer: torch.optim.Optimizer,
              scaler: torch.amp.GradScaler) -> tuple[dict[str, float] | None, tuple | None]:
        c = self.config
        tensors = {k: v.to(self.device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
        optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        last = None
        for r in range(c.accumulate):
            micro = {k: v[r::c.accumulate] for k, v in tensors.items()}
            if not len(micro["vi"]):
                continue
            sync = (contextlib.nullcontext() if r == c.accumulate - 1 or not hasattr(wrapped, "no_sync")
                    else wrapped.no_sync())
            with sync:
                with torch.autocast(self.device.type, dtype=_AMP_DTYPE[c.amp], enabled=c.amp != "none"):
                    out = wrapped(micro["vi"], micro["ir"])
                loss, terms = training_loss(out, _y(micro["vi"]), micro["ir"], micro.get("mask"),
                                            micro.get("label"), micro.get("bi"), micro.get("bd"))
                scaler.scale(loss / c.accumulate).backward()
            for k, v in {"loss": float(loss.detach()), **terms}.items():
                totals[k] = totals.get(k, 0.0) + v / c.accumulate
            last = (micro, out.fused.detach(), out.semantic.detach() if c.task == "full" else None)
        values = self.dist.mean(torch.tensor(list(totals.values()), dtype=torch.float64))
        if not torch.isfinite(values).all():  # the same decision in every process: all skip the step
            optimizer.zero_grad(set_to_none=True)
            return None, last
        scaler.step(optimizer)
        scaler.update()
        return dict(zip(totals, values.tolist())), last

    def _evaluate(self, model: PSFusion, frozen: list[torch.nn.Module], wrapped: torch.nn.Module) -> dict[str, Any]:
        found: dict[str, Any] = {}
        if self.dist.main:
            start = time.perf_counter()
            model.eval()
            with torch.no_grad():
                report = self.evaluate(model)
            found = {"test_mIoU": report.get("mIoU"), "test_metrics": report.get("metrics", {}),
                     "test_pairs": report.get("pairs", 0), "eval_seconds": round(time.perf_counter() - start, 3)}
            set_train_mode(wrapped, frozen)
        self.dist.barrier()
        return found

    def _save(self, model: PSFusion, optimizer: torch.optim.Optimizer, epoch: int, total_it: int,
              state: dict[str, Any], result: TrainResult) -> None:
        """last.pth every epoch; best_model.pth on a better test mIoU (full task with a test split) or a lower
        mean fusion loss (fusion task) or total loss (no test split)."""
        if not self.dist.main:
            self.dist.barrier()
            return
        entry = state["history"][-1]
        better = False
        if self.config.task == "full" and entry.get("test_mIoU") is not None:
            better = entry["test_mIoU"] > state["best_mIou"] or not (self.out / "best_model.pth").exists()
            state["best_mIou"] = max(state["best_mIou"], entry["test_mIoU"])
        elif self.config.task == "fusion" or self.evaluate is None:
            key = "fusion" if self.config.task == "fusion" else "loss"
            if key in entry and (state["best_loss"] is None or entry[key] < state["best_loss"]):
                state["best_loss"], better = entry[key], True
        payload = self._payload(model, optimizer, epoch, total_it, state)
        save_atomic(payload, self.out / "last.pth")
        result.last = self.out / "last.pth"
        if better:
            save_atomic(payload, self.out / "best_model.pth")
            result.best = self.out / "best_model.pth"
        write_json(self.out / "history.json", state["history"])
        plot_history(self.out / "history.png", state["history"])
        self.dist.barrier()


_AMP_DTYPE = {"none": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _quiet_worker(_: int) -> None:
    """Loader workers leave Ctrl-C to the main process (which saves and exits), instead of each printing a trace."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _epoch_line(entry: dict[str, Any], epochs: int) -> str:
    terms = ", ".join(f"{k} {entry[k]:.4f}" for k in ("segmentation", "binary", "boundary", "fusion",
                                                      "vi_reconstruction", "ir_reconstruction") if k in entry)
    line = f"epoch {entry['epoch']}/{epochs}: loss {entry.get('loss', float('nan')):.4f} ({terms}), " \
           f"lr {entry['lr']:.3g}, {entry['seconds']:.1f} s"
    if entry.get("test_mIoU") is not None:
        line += f", test mIoU {entry['test_mIoU']:.4f}"
    if entry.get("test_metrics"):
        line += " (" + ", ".join(f"{k} {v:.3f}" for k, v in list(entry["test_metrics"].items())[:4]) + ")"
    return line


def history_of(out: str | Path) -> list[dict[str, Any]]:
    """The history a run left in ``out`` (for tools and tests)."""
    return json.loads((Path(out) / "history.json").read_text())
