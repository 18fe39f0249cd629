"""Demo weights: PSFusion learned once on the synthetic drive, so a first run shows what fusion is for.

Untrained weights fuse the visible image with edge noise and segment one flat colour; the official weights
cannot be shipped. The synthetic generator knows what it drew (labels included), so the demo trains its own
weights with the paper's multi-task objective (``psfusion-train``'s trainer, ``--optimizer adam``) and
caches them.

What learned fastest on the 2-core CPU (held-out demo drive, 6 frames; 240 steps of crop 64, batch 4, about
2 min): with frozen encoder trunks, SGD lr 1e-3 (the reference's optimizer) reached mIoU 0.58 over
background/car/person once and 0.20 on a rerun; SGD lr 3e-3 0.55, 0.51 and 0.08 (collapsed to one class) over
three seeds; Adam lr 1e-3 0.45 and 0.40; Adam lr 3e-4 0.80 and 0.77 over two generator seeds (person IoU 0.57,
0.54), with the pedestrians' fused intensity 88 % of the way from the visible image's to the thermal image's.
Training every layer (SGD, 120 steps in the same time) reached 0.35. Seeded random trunks are a usable feature
bank; the decoders and heads are what must learn.

The cache file name is a hash of everything that changes the result (package version, generator version and
seed, training settings); a file that does not load, or that was made for other settings, is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from psfusion_ros import __version__
from psfusion_ros.errors import CheckpointError
from psfusion_ros.harness.synthetic import write_drive_dataset
from psfusion_ros.model.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from psfusion_ros.train.trainer import TrainConfig, Trainer

#: Bump when the synthetic generator draws different scenes: old caches then no longer match.
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class DemoTraining:
    """Everything the demo weights depend on (the cache key)."""

    steps: int = 240
    crop: int = 64
    batch_size: int = 4
    lr: float = 3e-4
    optimizer: str = "adam"
    freeze_encoders: bool = True
    train_pairs: int = 48
    height: int = 256
    width: int = 320
    generator_seed: int = 1  # the scenes trained on; the demo drive is seed 0, so it stays held out
    seed: int = 0  # initialisation and crops


@dataclass(frozen=True)
class DemoWeights:
    path: Path
    settings: DemoTraining
    trained_now: bool
    seconds: float

    def describe(self) -> str:
        return f"demo weights, {self.settings.steps} steps, trained on synthetic data — not the paper's"


def default_cache_dir() -> Path:
    base = os.environ.get("PSFUSION_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "psfusion_ros")
    return Path(base) / "demo_weights"


def cache_key(settings: DemoTraining) -> str:
    text = json.dumps({"psfusion_ros": __version__, "generator": GENERATOR_VERSION, **asdict(settings)},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(path: Path, key: str) -> str | None:
    """None when ``path`` holds loadable demo weights made with ``key``, else why not."""
    if not path.exists():
        return "none cached yet"
    try:
        obj = read_checkpoint(path)
        made_with = obj.get("metadata", {}).get("demo_key") if isinstance(obj, dict) else None
        if made_with != key:
            return f"{path.name} was not made with these settings (key {made_with!r})"
        load_checkpoint(path, num_classes=None)
    except CheckpointError as exc:
        return str(exc)
    return None


def demo_weights(settings: DemoTraining = DemoTraining(), cache_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> DemoWeights:
    """The cached demo weights for ``settings``, trained first when missing, broken or foreign."""
    directory = cache_dir or default_cache_dir()
    key = cache_key(settings)
    path = directory / f"psfusion_demo_{key}.pth"
    start = time.monotonic()
    why = cached(path, key)
    if why is None:
        log(f"using cached demo weights {path}")
        return DemoWeights(path, settings, False, time.monotonic() - start)
    if path.exists():
        log(f"rebuilding the cached demo weights: {why}")
    minutes = settings.steps * settings.crop ** 2 * settings.batch_size / (240 * 64 * 64 * 4) * 2  # measured
    log(f"learning demo weights on the synthetic drive, once ({settings.steps} steps): ~{max(minutes, 1):.0f} min on "
        f"a 2-core CPU; cached in {directory}")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="psfusion_demo_") as tmp:
        data = write_drive_dataset(Path(tmp) / "data", settings.train_pairs, 0, settings.height, settings.width,
                                   settings.generator_seed)
        config = TrainConfig(dataroot=str(data), out=str(Path(tmp) / "run"), epochs=10_000,
                             batch_size=settings.batch_size, crop=settings.crop, lr=settings.lr, warmup_steps=0,
                             workers=0, seed=settings.seed, freeze_encoders=settings.freeze_encoders,
                             max_steps=settings.steps, eval_every=0, preview_every=0, optimizer=settings.optimizer)
        result = Trainer(config).run()
        if result.interrupted:
            raise KeyboardInterrupt
        model = load_checkpoint(Path(tmp) / "run" / "last.pth", num_classes=None)
        partial = path.with_name(path.name + ".partial")
        save_checkpoint(model, partial, {"demo_key": key, "demo_settings": asdict(settings),
                                         "psfusion_ros": __version__, "generator": GENERATOR_VERSION})
        os.replace(partial, path)
    seconds = time.monotonic() - start
    log(f"demo weights learned in {seconds:.0f} s: {path}")
    return DemoWeights(path, settings, True, seconds)
