"""Checkpoint formats and every way a checkpoint can be wrong."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import DATA_DIR
from psfusion_ros import CheckpointError, PSFusion, load_checkpoint, save_checkpoint


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_checkpoint_loads_strictly_in_eval_mode(official_checkpoint: Path, det_model: PSFusion) -> None:
    model = load_checkpoint(official_checkpoint, num_classes=9, device="cpu")
    assert isinstance(model, PSFusion) and not model.training
    assert _same_weights(model, det_model)


def test_bare_state_dict_and_dataparallel_prefix(tmp_path: Path, det_model: PSFusion) -> None:
    bare, wrapped = tmp_path / "bare.pth", tmp_path / "dp.pth"
    torch.save(det_model.state_dict(), bare)
    torch.save({f"module.{k}": v for k, v in det_model.state_dict().items()}, wrapped)
    assert _same_weights(load_checkpoint(bare), det_model)
    assert _same_weights(load_checkpoint(wrapped), det_model)


def test_project_format_round_trip_is_readable_as_official(tmp_path: Path, det_model: PSFusion) -> None:
    path = tmp_path / "ours.pth"
    save_checkpoint(det_model, path, {"epoch": 3})
    assert _same_weights(load_checkpoint(path), det_model)
    raw = torch.load(path, weights_only=True)
    assert set(raw["MTAN"]) == set(det_model.state_dict())  # the official resume() reads it
    assert raw["format"] == "psfusion_ros" and raw["metadata"] == {"epoch": 3}
    assert not list(tmp_path.glob("*.partial"))


def test_num_classes_none_reads_class_count_from_file(tmp_path: Path) -> None:
    path = tmp_path / "four.pth"
    torch.save({"MTAN": PSFusion(num_classes=4).state_dict()}, path)
    assert load_checkpoint(path, num_classes=None).num_classes == 4
    with pytest.raises(CheckpointError, match=r"2 tensors have the wrong shape.*semantic_conv2"):
        load_checkpoint(path, num_classes=9)


def _one_line(exc: pytest.ExceptionInfo[CheckpointError], path: Path) -> str:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message
    return message


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(tmp_path / "nope.pth")
    assert "no such file" in _one_line(exc, tmp_path / "nope.pth")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


def test_corrupt_and_truncated_files(tmp_path: Path, official_checkpoint: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint at all" * 50)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(garbage)
    _one_line(exc, garbage)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(official_checkpoint.read_bytes()[: 5_000_000])
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(truncated)
    assert "corrupt or truncated" in _one_line(exc, truncated)


def test_foreign_and_partial_checkpoints_count_keys(tmp_path: Path, det_model: PSFusion) -> None:
    foreign = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 512)}, foreign)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(foreign)
    assert "not a PSFusion checkpoint: 1360 missing keys, 2 unexpected keys" in _one_line(exc, foreign)

    partial = tmp_path / "partial.pth"
    state = det_model.state_dict()
    for key in list(state)[:3]:
        del state[key]
    torch.save({"MTAN": state}, partial)
    with pytest.raises(CheckpointError, match="incompatible weights: 3 missing keys, 0 unexpected keys"):
        load_checkpoint(partial)


def test_non_dict_empty_and_nan_checkpoints(tmp_path: Path, det_model: PSFusion) -> None:
    cases = {
        "list.pth": ([torch.zeros(3)], "expected a dict of weights, found list"),
        "empty.pth": ({"ep": 3, "note": "no weights"}, "holds no tensors"),
    }
    for name, (payload, message) in cases.items():
        torch.save(payload, tmp_path / name)
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / name)
    state = det_model.state_dict()
    state["pred_fusion.conv_block.0.weight"] = torch.full_like(state["pred_fusion.conv_block.0.weight"], float("nan"))
    torch.save({"MTAN": state}, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match="1 tensors contain NaN or Inf"):
        load_checkpoint(tmp_path / "nan.pth")


def test_cli_reports_bad_checkpoint_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    result = subprocess.run(
        [sys.executable, "-m", "psfusion_ros.tools.fuse", "--checkpoint", str(bad),
         "--ir", str(DATA_DIR / "fuse" / "ir"), "--vi", str(DATA_DIR / "fuse" / "vi"),
         "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("psfusion-fuse: error: ") and str(bad) in lines[0]
    assert "Traceback" not in result.stderr
