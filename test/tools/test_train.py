"""psfusion-train end to end: real runs of the real network at 64x64 crops on the CPU."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from helpers import SHARED_PAIRS, TRAIN_ARGS, started_as_a_background_job
from psfusion_ros.constants import OFFICIAL_CHECKPOINT_KEY
from psfusion_ros.harness.synthetic import write_msrs_dataset
from psfusion_ros.io.image_files import read_image
from psfusion_ros.model.checkpoint import load_checkpoint
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.train.cli import main as train_main

BIN = Path(sys.executable).parent
TERMS = ("segmentation", "binary", "boundary", "fusion", "vi_reconstruction", "ir_reconstruction")


def _run(tool: str, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _history(out: Path) -> list[dict[str, Any]]:
    return json.loads((out / "history.json").read_text())


def test_ten_epochs_lower_the_loss_and_leave_official_checkpoints(trained_run: dict[str, Any]) -> None:
    out = trained_run["out"]
    history = _history(out)
    assert [h["epoch"] for h in history] == list(range(1, 11))
    assert history[-1]["loss"] < 0.8 * history[0]["loss"], [h["loss"] for h in history]
    for h in history:
        assert set(TERMS) <= set(h) and h["lr"] > 0 and h["seconds"] > 0 and h["steps"] == 4
        assert h["loss"] == pytest.approx(h["segmentation"] * 10 + h["binary"] * 10 + h["boundary"] * 10
                                          + h["fusion"] + h["vi_reconstruction"] + h["ir_reconstruction"], rel=1e-5)
    assert [h["epoch"] for h in history if "test_mIoU" in h] == [5, 10]
    assert 0 <= history[-1]["test_mIoU"] <= 1 and "EN" in history[-1]["test_metrics"]

    checkpoint = torch.load(out / "last.pth", weights_only=False)
    assert {OFFICIAL_CHECKPOINT_KEY, "optimizer", "ep", "total_it", "best_mIou"} <= set(checkpoint)
    assert (checkpoint["ep"], checkpoint["total_it"]) == (9, 40)  # the reference counts epochs from 0
    PSFusion().load_state_dict(checkpoint[OFFICIAL_CHECKPOINT_KEY], strict=True)
    assert load_checkpoint(out / "best_model.pth").num_classes == 9
    assert checkpoint["best_mIou"] == max(h["test_mIoU"] for h in history if "test_mIoU" in h)

    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preview = read_image(out / "previews" / "epoch_0010.jpg", "RGB")
    assert preview.shape == (64, 5 * 64, 3)  # infrared, visible, fused, prediction, label
    log = (out / "train.log").read_text()
    assert sum(line.startswith("epoch ") for line in log.splitlines()) == 10
    assert "targets derived: bi, bd, mask" in log
    assert "Traceback" not in trained_run["stderr"]


def test_history_miou_is_the_number_psfusion_eval_reports(trained_run: dict[str, Any], tmp_path: Path) -> None:
    data, out = trained_run["data"], trained_run["out"]
    result = _run("psfusion-eval", "--ir", data / "test" / "ir", "--vi", data / "test" / "vi", "--checkpoint",
                  out / "last.pth", "--device", "cpu", "--out", tmp_path / "eval", "--no-html")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    last = _history(out)[-1]
    # Same code, two processes: oneDNN may pick other convolution blockings (thread count, load), so fp32 sums differ
    # in the last bits and a borderline pixel of the uint8 fused image or of the argmax can flip. One grey level in a
    # few of 2x96x128 pixels moved EN by 1e-5 relative (3.9046935 vs 3.9046835 seen once); one flipped class pixel
    # moves an IoU by ~1e-4. The tolerances admit that and nothing more: a different network or split would differ
    # by orders of magnitude.
    assert report["segmentation"]["mIoU"] == pytest.approx(last["test_mIoU"], abs=1e-3)
    for name, value in report["metrics"].items():  # 2 test pairs: the sample is all of them
        assert last["test_metrics"][name] == pytest.approx(value, rel=1e-4, abs=1e-9), name


def test_resume_continues_epochs_schedule_and_history(trained_run: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(trained_run["out"], out)
    before = _history(out)
    result = _run("psfusion-train", "--dataroot", trained_run["data"], "--out", out, "--resume", out / "last.pth",
                  "--epochs", "12", "--eval-every", "0", "--workers", "0", *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    history = _history(out)
    assert [h["epoch"] for h in history] == list(range(1, 13))
    assert history[:10] == before
    checkpoint = torch.load(out / "last.pth", weights_only=False)
    assert (checkpoint["ep"], checkpoint["total_it"]) == (11, 48)
    # the schedule goes on from step 40 over the new horizon of 48 steps (the reference's max_iter = epochs x steps)
    assert history[10]["lr"] == pytest.approx(0.01 * (1 - 43 / 48) ** 0.9)
    assert "resumed from" in (out / "train.log").read_text()


def test_a_trained_checkpoint_works_in_fuse_and_export(trained_run: dict[str, Any], onnx_artifact: dict[str, Any],
                                                       tmp_path: Path) -> None:
    data, ckpt = trained_run["data"], trained_run["out"] / "last.pth"
    fused = _run("psfusion-fuse", "--ir", data / "test" / "ir", "--vi", data / "test" / "vi", "--checkpoint", ckpt,
                 "--device", "cpu", "--out", tmp_path / "fused")
    assert fused.returncode == 0, fused.stderr
    assert len(list((tmp_path / "fused").rglob("*.png"))) >= 2
    onnx = onnx_artifact["path"]  # psfusion-export --backend onnx of this last.pth (conftest)
    assert onnx_artifact["checkpoint"] == ckpt
    assert onnx.exists() and json.loads(onnx.with_name(onnx.name + ".json").read_text())["checkpoint"] == str(ckpt)


def test_ctrl_c_saves_last_pth_and_exits_130(tmp_path: Path, trained_run: dict[str, Any]) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen([str(BIN / "psfusion-train"), "--dataroot", str(trained_run["data"]), "--out", str(out),
                             "--epochs", "1000", "--eval-every", "0", "--workers", "2", *TRAIN_ARGS],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=started_as_a_background_job)
    try:
        deadline = time.monotonic() + 600
        log = out / "train.log"
        while time.monotonic() < deadline and proc.poll() is None:  # the first epoch's line is in the log
            if log.exists() and "\nepoch 1/1000:" in log.read_text():
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGINT)  # a second Ctrl-C while saving must not break the checkpoint
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr
    checkpoint = torch.load(out / "last.pth", weights_only=False)
    assert checkpoint["ep"] >= 0 and checkpoint["total_it"] >= 4
    PSFusion().load_state_dict(checkpoint[OFFICIAL_CHECKPOINT_KEY], strict=True)
    assert "interrupted after epoch" in (out / "train.log").read_text()
    assert not list(out.glob("*.partial"))


def _unlabelled_pairs(tmp_path: Path) -> Path:
    """The shared TNO sample pairs (vi/ + ir/, no labels), or generated ones where the shared data is absent."""
    if (SHARED_PAIRS / "tno" / "vi").is_dir():
        return SHARED_PAIRS / "tno"
    root = write_msrs_dataset(tmp_path / "gen", train=6, test=0, height=96, width=128) / "train"
    shutil.rmtree(root / "label")
    return root


def test_fusion_only_training_on_unlabelled_pairs_lowers_the_fusion_loss(tmp_path: Path) -> None:
    pairs = _unlabelled_pairs(tmp_path)
    out = tmp_path / "run"
    args = ["--lr", "0.001", "--warmup-steps", "0", "--crop", "64", "--batch-size", "2", "--device", "cpu"]
    result = _run("psfusion-train", "--dataroot", pairs, "--task", "fusion", "--out", out, "--epochs", "10",
                  "--workers", "0", *args)
    assert result.returncode == 0, result.stderr[-3000:]
    fusion = [h["fusion"] for h in _history(out)]
    assert np.mean(fusion[-3:]) < 0.85 * fusion[0], fusion
    assert not {"segmentation", "binary", "boundary"} & set(_history(out)[0])
    assert (out / "best_model.pth").exists()


def test_fusion_only_training_keeps_the_semantic_heads(trained_run: dict[str, Any], tmp_path: Path) -> None:
    source = trained_run["out"] / "last.pth"
    out = tmp_path / "adapt"
    result = _run("psfusion-train", "--dataroot", trained_run["data"], "--task", "fusion", "--checkpoint", source,
                  "--out", out, "--epochs", "1", "--max-steps", "2", "--workers", "0", *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    before = torch.load(source, weights_only=False)[OFFICIAL_CHECKPOINT_KEY]
    after = torch.load(out / "last.pth", weights_only=False)[OFFICIAL_CHECKPOINT_KEY]
    semantic = [k for k in before if k.startswith(("classfier.", "seg_decoder.", "to_fused_seg."))]
    assert semantic and all(torch.equal(before[k], after[k]) for k in semantic)  # weights and BN statistics
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("encoder_rgb_") for k in changed) and any(k.startswith("pred_fusion") for k in changed)


def test_two_processes_under_torchrun_take_the_same_first_step_as_one_with_accumulate(
        trained_run: dict[str, Any], tmp_path: Path) -> None:
    """Same global batch: 2 processes x 2 pairs (gloo) vs 1 process x 2 micro-batches of 2. One intra-op thread
    each: BatchNorm over two pooled values amplifies rounding differences between thread counts."""
    common = ["--dataroot", str(trained_run["data"]), "--epochs", "1", "--max-steps", "1", "--eval-every", "0",
              "--workers", "0", *TRAIN_ARGS]
    one_thread = {"OMP_NUM_THREADS": "1"}
    ddp = subprocess.run([str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "psfusion_ros.train",
                          "--out", str(tmp_path / "ddp"), *common], capture_output=True, text=True, timeout=900,
                         env={**os.environ, **one_thread})
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = _run("psfusion-train", "--out", tmp_path / "single", "--accumulate", "2", *common, env=one_thread)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = _history(tmp_path / "ddp")[0], _history(tmp_path / "single")[0]
    for term in ("loss", *TERMS):
        assert a[term] == pytest.approx(b[term], rel=1e-5), term
    torch.manual_seed(0)  # the runs' initial weights (seed 0)
    init = PSFusion().state_dict()
    pa = torch.load(tmp_path / "ddp" / "last.pth", weights_only=False)[OFFICIAL_CHECKPOINT_KEY]
    pb = torch.load(tmp_path / "single" / "last.pth", weights_only=False)[OFFICIAL_CHECKPOINT_KEY]
    names = [n for n, _ in PSFusion().named_parameters()]
    step = sum(float(((pb[n] - init[n]) ** 2).sum()) for n in names) ** 0.5
    diff = sum(float(((pa[n] - pb[n]) ** 2).sum()) for n in names) ** 0.5
    assert step > 0 and diff < 1e-4 * step, (diff, step)
    assert len(list((tmp_path / "ddp").glob("*.pth"))) == 2  # rank 0 alone wrote (last and best)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "compressed"])
def test_a_rosbag_as_the_training_source(trained_run: dict[str, Any], tmp_path: Path, compressed: bool) -> None:
    train = trained_run["data"] / "train"
    bag = tmp_path / "drive"
    made = _run("psfusion-bag", "--ir", train / "ir", "--vi", train / "vi", "--labels", train / "label", "--out", bag,
                *(["--compressed"] if compressed else []))
    assert made.returncode == 0, made.stderr
    out = tmp_path / "run"
    topics = ["--thermal-topic", "/thermal/image_raw/compressed", "--rgb-topic", "/rgb/image_raw/compressed"]
    result = _run("psfusion-train", "--bag", bag, "--out", out, "--epochs", "1", "--workers", "0", *TRAIN_ARGS,
                  *(topics if compressed else []))
    assert result.returncode == 0, result.stderr[-3000:]
    for sub in ("vi", "ir", "label"):
        assert len(list((out / "bag_pairs" / "train" / sub).glob("*.png"))) == 8, sub
    assert np.array_equal(read_image(out / "bag_pairs" / "train" / "label" / "000003.png", "L"),
                          read_image(train / "label" / "00003.png", "L"))
    # the thermal frame went through a lossless PNG: the extracted pair is the raw bag's
    assert np.array_equal(read_image(out / "bag_pairs" / "train" / "ir" / "000003.png", "L"),
                          read_image(train / "ir" / "00003.png", "L"))
    assert len(_history(out)) == 1 and "8 pairs from" in result.stderr


def test_another_class_set_trains_and_runs_in_the_tools(trained_run: dict[str, Any], tmp_path: Path) -> None:
    palette = tmp_path / "classes.yaml"
    palette.write_text("classes:\n  - {name: background, color: [0, 0, 0]}\n  - {name: car, color: [200, 0, 0]}\n"
                       "  - {name: person, color: [0, 200, 0]}\n  - {name: bike, color: [0, 0, 200]}\n"
                       "  - {name: road_marking, color: [200, 200, 0]}\n")  # the generator's ids 0, 1, 2, 4
    out = tmp_path / "run"
    result = _run("psfusion-train", "--dataroot", trained_run["data"], "--palette", palette, "--out", out,
                  "--epochs", "1", "--max-steps", "1", "--workers", "0", *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(out / "last.pth", weights_only=False)
    assert checkpoint["num_classes"] == 5
    assert checkpoint["train"]["classes"] == ["background", "car", "person", "bike", "road_marking"]
    fused = _run("psfusion-fuse", "--ir", trained_run["data"] / "test" / "ir", "--vi",
                 trained_run["data"] / "test" / "vi", "--checkpoint", out / "last.pth", "--device", "cpu", "--out",
                 tmp_path / "fused")
    assert fused.returncode == 0, fused.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--batch-size", "1"], "--batch-size must be at least 2"),
    (["--amp", "fp16"], "--amp fp16 needs CUDA"),
    (["--num-classes", "2"], "class id 4 >= --num-classes 2"),  # the largest id in the file (road marking)
])
def test_errors_are_one_line(trained_run: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture,
                             args: list[str], message: str) -> None:
    code = train_main(["--dataroot", str(trained_run["data"]), "--out", str(tmp_path / "run"), "--device", "cpu",
                       *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("psfusion-train: error:") and message in err[-1], err


def test_resuming_from_weights_without_training_state_is_refused(official_checkpoint: Path, tmp_path: Path,
                                                                 trained_run: dict[str, Any],
                                                                 capsys: pytest.CaptureFixture) -> None:
    code = train_main(["--dataroot", str(trained_run["data"]), "--out", str(tmp_path / "run"), "--resume",
                       str(official_checkpoint), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("psfusion-train: error:") and "does not match this run" in err[-1], err
    assert "use --checkpoint" in err[-1]
