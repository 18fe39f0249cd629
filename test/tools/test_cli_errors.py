"""Every CLI mistake a new user makes is one line (``prog: error: ...``) with exit code 2, never a traceback; files
that are not checkpoints are described by what they look like."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import DATA_DIR

BIN = Path(sys.executable).parent
FUSE_DATA = DATA_DIR / "fuse"


def _run(tool: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=300, env=env)


def _one_line_error(result: subprocess.CompletedProcess[str], prog: str, *texts: str, code: int = 2) -> None:
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{prog}: error: ") or last.startswith(f"usage: {prog}") or f"{prog}: error:" in last, last
    for text in texts:
        assert text in last, last


@pytest.fixture()
def fake_checkpoints(tmp_path: Path) -> dict[str, Path]:
    files = {"text": "404: Not Found\n", "lfs": "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
             "html": "<!DOCTYPE html><html><head><title>Baidu</title></head></html>", "empty": ""}
    out = {}
    for name, text in files.items():
        out[name] = tmp_path / f"{name}.pth"
        out[name].write_text(text)
    return out


@pytest.mark.parametrize(("kind", "expected"), [("text", "a text file, not a PyTorch checkpoint"),
                                                 ("lfs", "a Git LFS pointer, not the weights"),
                                                 ("html", "an HTML page, not the weights"),
                                                 ("empty", "an empty file")])
def test_files_that_are_not_checkpoints_are_described(tmp_path: Path, fake_checkpoints: dict, kind: str,
                                                      expected: str) -> None:
    ckpt = str(fake_checkpoints[kind])
    result = _run("psfusion-fuse", "--checkpoint", ckpt, "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"),
                  "--out", str(tmp_path / "o"))
    _one_line_error(result, "psfusion-fuse", expected, ckpt)
    assert "weights_only" not in result.stderr


def test_a_text_checkpoint_in_eval_and_demo(tmp_path: Path, fake_checkpoints: dict) -> None:
    ckpt = str(fake_checkpoints["text"])
    result = _run("psfusion-eval", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--checkpoint", ckpt,
                  "--out", str(tmp_path / "e"))
    _one_line_error(result, "psfusion-eval", "a text file")
    result = _run("psfusion-demo", "--offline", "--checkpoint", ckpt, "--out", str(tmp_path / "d"), "--frames", "1",
                  "--size", "64x96")
    _one_line_error(result, "psfusion-demo", "a text file")


def test_argument_mistakes(tmp_path: Path) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    result = _run("psfusion-fuse", "--ir", str(a_file), "--vi", str(FUSE_DATA / "vi"), "--out", str(tmp_path / "o"))
    _one_line_error(result, "psfusion-fuse", "is a file; expected a directory")
    result = _run("psfusion-eval", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out",
                  str(tmp_path / "o"), "--network-size", "480by640", "--allow-untrained")
    _one_line_error(result, "psfusion-eval", "size '480by640' is not HEIGHTxWIDTH")
    result = _run("psfusion-eval", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out",
                  str(tmp_path / "o"), "--network-size", "100x100", "--allow-untrained")
    _one_line_error(result, "psfusion-eval", "multiples of 32")
    result = _run("psfusion-eval", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out",
                  str(a_file), "--allow-untrained")
    _one_line_error(result, "psfusion-eval", "is a file; --out names a folder")
    result = _run("psfusion-fuse", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out",
                  str(tmp_path / "o"))
    _one_line_error(result, "psfusion-fuse", "no checkpoint", "--allow-untrained")


def test_untrained_runs_and_existing_outputs(tmp_path: Path) -> None:
    args = ["--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out", str(tmp_path / "e"),
            "--allow-untrained", "--no-html"]
    first = _run("psfusion-eval", *args)
    assert first.returncode == 0, first.stderr
    assert "checkpoint UNTRAINED" in first.stderr
    again = _run("psfusion-eval", *args)
    _one_line_error(again, "psfusion-eval", "already holds an earlier evaluation; pass --overwrite")
    assert _run("psfusion-eval", *args, "--overwrite").returncode == 0
    fused = _run("psfusion-fuse", "--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi"), "--out",
                 str(tmp_path / "f"), "--allow-untrained", "--no-progress")
    assert fused.returncode == 0 and "fused 2 pairs" in fused.stdout


def test_bag_creation_skips_corrupt_pairs_and_protects_existing_bags(tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(FUSE_DATA / "ir", data / "ir")
    shutil.copytree(FUSE_DATA / "vi", data / "vi")
    (data / "vi" / "scene_0.png").write_bytes(b"\x89PNG broken")
    bag = tmp_path / "bag"
    result = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(bag))
    assert result.returncode == 1 and "skipped" in result.stderr and "scene_0.png" in result.stderr
    assert "wrote 1 pairs" in result.stdout and "1 pairs skipped" in result.stdout and "Traceback" not in result.stderr
    result = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(bag))
    _one_line_error(result, "psfusion-bag", "already exists; pass --overwrite")
    result = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(bag), "--overwrite")
    assert result.returncode == 1 and "wrote 1 pairs" in result.stdout
    (data / "vi" / "scene_1.png").write_bytes(b"broken too")
    result = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(tmp_path / "b2"))
    _one_line_error(result, "psfusion-bag", "no pair could be read")
    assert not (tmp_path / "b2").exists()  # no partial bag left behind


def test_degenerate_calibration_points(tmp_path: Path) -> None:
    points = tmp_path / "clicks.csv"
    points.write_text("thermal_x,thermal_y,rgb_x,rgb_y\n0,0,1,1\n10,10,12,12\n20,20,23,23\n30,30,34,34\n")
    result = _run("psfusion-calibrate", "--points", str(points), "--out", str(tmp_path / "rig.yaml"))
    _one_line_error(result, "psfusion-calibrate", "are (nearly) collinear")
    points.write_text("0,0,1,1\n100,0,101,1\n50,0.2,51,1.2\n0,80,1,81\n")  # three of four on one line
    result = _run("psfusion-calibrate", "--points", str(points), "--out", str(tmp_path / "rig.yaml"))
    _one_line_error(result, "psfusion-calibrate", "three of their four points")
    assert not (tmp_path / "rig.yaml").exists()


# -- hostile bags: right topic names, wrong contents ------------------------------------------------------------
EPOCH_NS = 1_700_000_000_000_000_000
TOPICS = ("/thermal/image_raw", "/rgb/image_raw")


def _hostile_bag(path: Path, kind: str) -> Path:
    import numpy as np

    from psfusion_ros.io.bags import TYPESTORE, BagWriter, header, image_message

    rng = np.random.default_rng(0)
    with BagWriter(path, "mcap") as bag:
        for i in range(30 if kind == "corrupt" else 4):
            t = EPOCH_NS + i * 100_000_000
            for topic in TOPICS:
                if kind == "wrong_type":
                    bag.write(topic, TYPESTORE.types["std_msgs/msg/String"](data="not an image"), t)
                elif kind == "garbage":
                    bag.write_raw(topic, "sensor_msgs/msg/Image", rng.integers(0, 256, 200, np.uint8).tobytes(), t)
                else:
                    pixels = rng.integers(0, 255, (48, 64, 3) if "rgb" in topic else (48, 64), np.uint8)
                    bag.write(topic, image_message(pixels, "rgb8" if "rgb" in topic else "mono8", header(t, "x")), t)
    if kind == "corrupt":  # the file opens (summary intact) but a stretch of chunks is overwritten
        storage = next(path.glob("*.mcap"))
        data = bytearray(storage.read_bytes())
        data[len(data) // 3:len(data) // 3 + 5000] = bytes(5000)
        storage.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize(("kind", "message"), [
    ("wrong_type", "topic /thermal/image_raw holds std_msgs/msg/String, not sensor_msgs/msg/Image"),
    ("garbage", "undecodable sensor_msgs/msg/Image"),
    ("corrupt", "the bag is corrupt after"),
])
def test_hostile_bags_are_one_line_in_eval_train_and_calibrate(tmp_path: Path, kind: str, message: str) -> None:
    bag = _hostile_bag(tmp_path / kind, kind)
    result = _run("psfusion-eval", "--bag", str(bag), "--out", str(tmp_path / "e"), "--allow-untrained",
                  "--network-size", "64x96", "--no-html")
    _one_line_error(result, "psfusion-eval", *(() if kind == "garbage" else (message,)))
    if kind == "garbage":  # skipped and reported per message, then no pairs
        assert message in result.stderr and "8 inputs skipped" in result.stderr
        assert json.loads((tmp_path / "e" / "report.json").read_text())["pairs"] == 0
    else:
        assert not (tmp_path / "e" / "bag").exists()  # no output bag that looks complete
    result = _run("psfusion-train", "--bag", str(bag), "--out", str(tmp_path / "t"), "--max-steps", "1",
                  "--device", "cpu")
    _one_line_error(result, "psfusion-train", message)
    assert not any((tmp_path / "t").glob("bag_pairs*"))  # nothing half-extracted left to train on
    result = _run("psfusion-calibrate", "--auto", "--bag", str(bag), "--thermal-topic", TOPICS[0], "--rgb-topic",
                  TOPICS[1], "--out", str(tmp_path / "rig.yaml"))
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "rig.yaml").exists()


def test_bag_play_of_a_corrupt_bag_is_one_line(tmp_path: Path) -> None:
    bag = _hostile_bag(tmp_path / "corrupt", "corrupt")
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    result = _run("psfusion-bag", "play", str(bag), "--topics", *TOPICS, env=env)
    _one_line_error(result, "psfusion-bag", "the bag is corrupt after")


# -- output paths the file system refuses ----------------------------------------------------------------------
def _tool_writing(tool: str, out: Path, tmp_path: Path) -> list[str]:
    folders = ["--ir", str(FUSE_DATA / "ir"), "--vi", str(FUSE_DATA / "vi")]
    if tool == "psfusion-calibrate":
        points = tmp_path / "points.csv"
        points.write_text("0,0,1,1\n100,0,101,1\n0,80,1,81\n100,80,101,81\n50,40,51,41\n")
        return [tool, "--points", str(points), "--out", str(out)]
    extra = {"psfusion-fuse": ["--allow-untrained", "--no-progress"], "psfusion-bag": [],
             "psfusion-eval": ["--allow-untrained", "--no-html"]}[tool]
    return [tool, *folders, "--out", str(out), *extra]


@pytest.mark.parametrize("tool", ["psfusion-fuse", "psfusion-bag", "psfusion-calibrate", "psfusion-eval"])
def test_output_paths_under_a_file_or_too_long_are_one_line(tmp_path: Path, tool: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("in the way")
    for out, text in ((blocker / "out", "a_file"), (tmp_path / ("x" * 300), "...")):
        args = _tool_writing(tool, out, tmp_path)
        result = _run(args[0], *args[1:])
        _one_line_error(result, tool, text)
    assert blocker.read_text() == "in the way"
