"""What a training run leaves to look at: ``history.json``, ``history.png`` and preview images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from psfusion_ros.io.image_files import write_image
from psfusion_ros.pipeline.color import fused_rgb_uint8
from psfusion_ros.train.classes import ClassSet

#: Loss terms drawn in history.png (the total first).
PLOTTED_TERMS = ("loss", "fusion", "vi_reconstruction", "ir_reconstruction", "segmentation", "binary", "boundary")


def plot_history(path: Path, history: list[dict[str, Any]]) -> None:
    """Loss terms per epoch (log scale), learning rate, and test mIoU where evaluated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    has_miou = any(h.get("test_mIoU") is not None for h in history)
    fig, axes = plt.subplots(1, 2 + has_miou, figsize=(5 * (2 + has_miou), 3.6))
    for term in PLOTTED_TERMS:
        values = [h.get(term) for h in history]
        if any(v is not None for v in values):
            axes[0].plot(epochs, [np.nan if v is None else v for v in values], marker=".", label=term,
                         linewidth=2.2 if term == "loss" else 1.2)
    axes[0].set(title="training loss (epoch mean)", xlabel="epoch", yscale="log")
    axes[0].legend(fontsize=7)
    axes[1].plot(epochs, [h["lr"] for h in history], marker=".")
    axes[1].set(title="learning rate (end of epoch)", xlabel="epoch")
    if has_miou:
        points = [(h["epoch"], h["test_mIoU"]) for h in history if h.get("test_mIoU") is not None]
        axes[2].plot(*zip(*points), marker="o")
        axes[2].set(title="test mIoU (psfusion-eval)", xlabel="epoch", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".partial.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    os.replace(tmp, path)


def _u8(image: torch.Tensor) -> np.ndarray:
    return (image.detach().float().clamp(0, 1) * 255).to(torch.uint8).cpu().numpy()


def save_preview(path: Path, batch: dict[str, torch.Tensor], fused: torch.Tensor, semantic: torch.Tensor | None,
                 classes: ClassSet) -> None:
    """One row for the batch's first sample: infrared, visible, fused (visible colour), prediction, label."""
    vi = batch["vi"][0].detach().float().cpu()
    tiles = [np.repeat(_u8(batch["ir"][0, 0])[..., None], 3, axis=2), _u8(vi.permute(1, 2, 0)),
             fused_rgb_uint8(fused[0, 0].detach().float().cpu(), vi.permute(1, 2, 0)).numpy()]
    if semantic is not None:
        tiles.append(classes.colorize(semantic[0].argmax(0).cpu().numpy()))
    if "label" in batch:
        tiles.append(classes.colorize(batch["label"][0].cpu().numpy()))
    write_image(path, np.concatenate(tiles, axis=1))
