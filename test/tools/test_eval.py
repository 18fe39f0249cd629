"""psfusion-bag + psfusion-eval end to end on generated datasets: MCAP, sqlite3, folders, labels, interrupts."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import started_as_a_background_job
from psfusion_ros.harness.synthetic import synthetic_frame, temperature_to_uint8
from psfusion_ros.io.bags import BagReader, stamp_of
from psfusion_ros.io.image_codec import decode_image
from psfusion_ros.io.image_files import write_image

BIN = Path(sys.executable).parent
SIZE = (64, 96)


def _dataset(root: Path, count: int) -> Path:
    """MSRS layout: ir/, vi/, label/ with matching names."""
    for k in range(count):
        frame = synthetic_frame(k, *SIZE, seed=11)
        name = f"{k:05d}.png"
        write_image(root / "vi" / name, frame.visible)
        write_image(root / "ir" / name, temperature_to_uint8(frame.temperature))
        label = np.zeros(SIZE, np.uint8)
        label[frame.temperature > 30] = 2  # warm things are "person" in this toy labelling
        label[0, 0] = 255  # an ignored pixel
        write_image(root / "label" / name, label)
    return root


def _run(tool: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=timeout)


# Without jitter the pair is complete when its RGB frame is read, before the label recorded after it.
@pytest.mark.parametrize(("storage", "jitter_ms"), [("mcap", "3"), ("sqlite3", "0")])
def test_bag_round_trip_through_eval(tmp_path: Path, official_checkpoint: Path, storage: str, jitter_ms: str) -> None:
    data = _dataset(tmp_path / "msrs", 5)
    bag = tmp_path / "drive"
    made = _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--labels", str(data / "label"),
                "--out", str(bag), "--storage", storage, "--thermal-encoding", "mono16", "--jitter-ms", jitter_ms)
    assert made.returncode == 0, made.stderr
    assert "wrote 5 pairs" in made.stdout
    with BagReader(bag) as reader:
        topics = reader.topics()
    assert topics["/thermal/image_raw"] == ("sensor_msgs/msg/Image", 5)
    assert topics["/rgb/camera_info"] == ("sensor_msgs/msg/CameraInfo", 5)

    out = tmp_path / "eval"
    result = _run("psfusion-eval", "--bag", str(bag), "--checkpoint", str(official_checkpoint), "--out", str(out),
                  "--network-size", "64x96", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == 5 and len(report["per_pair"]) == 5 and not report["interrupted"]
    assert set(report["metrics"]) == {"EN", "SD", "SF", "AG", "MI", "MSE", "CC", "PSNR", "SCD", "VIF", "Qabf", "SSIM"}
    assert report["sync"]["matched"] == 5 and report["sync"]["dropped"]["/rgb/image_raw"] == 0
    assert report["sync"]["offset_ms"]["abs_max"] < 15  # 3 ms jitter at most
    for stage in ("decode", "sync", "thermal", "inference", "colour", "metrics", "write"):
        assert report["timing"][stage]["p95"] >= report["timing"][stage]["p50"] >= 0
    assert 0.0 <= report["segmentation"]["mIoU"] <= 1.0 and report["segmentation"]["pixels"] == 5 * (64 * 96 - 1)
    html = (out / "report.html").read_text()
    assert html.count("<img") >= 4 and "Synchronization" in html
    assert str(bag) in html and str(official_checkpoint) in html and "UNTRAINED" not in html
    assert "MMIF-CDDFuse" in html and "<summary>parameters" in html and "thermal.mode" in html
    assert html.count("class='swatch'") >= 1 and "unlabelled" in html  # a class legend under the previews

    with BagReader(bag) as reader:
        rgb = {stamp_of(m): m for _, _, m in reader.messages(["/rgb/image_raw"])}
    with BagReader(out / "bag") as reader:
        outputs = list(reader.messages(["/psfusion/fused/image", "/psfusion/segmentation/mask"]))
    assert len(outputs) == 10
    for topic, log_time, msg in outputs:
        source = rgb[stamp_of(msg)]  # the RGB frame's header ...
        assert msg.header.frame_id == source.header.frame_id == "rgb_optical" and log_time == stamp_of(source)
        pixels = decode_image(msg)  # ... and geometry
        assert pixels.shape[:2] == SIZE
        assert msg.encoding == ("rgb8" if topic.endswith("fused/image") else "mono8")


def test_folder_dataset_with_msrs_labels(tmp_path: Path, official_checkpoint: Path) -> None:
    data = _dataset(tmp_path / "msrs", 3)
    out = tmp_path / "eval"
    result = _run("psfusion-eval", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--checkpoint",
                  str(official_checkpoint), "--out", str(out), "--profile", "tang2022", "--no-html")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["pairs"] == 3 and report["profile"] == "tang2022" and "segmentation" in report  # label/ found
    assert "53f5542" in report["profile_source"] and report["trained"] is True
    assert [r["name"] for r in report["per_pair"]] == ["00000.png", "00001.png", "00002.png"]
    assert "sync" not in report and not (out / "report.html").exists()
    assert "mIoU" in result.stdout and "pairs/s" in result.stdout


def test_wrong_topic_and_missing_bag_are_one_line_errors(tmp_path: Path, official_checkpoint: Path) -> None:
    data = _dataset(tmp_path / "d", 2)
    _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(tmp_path / "bag"))
    result = _run("psfusion-eval", "--bag", str(tmp_path / "bag"), "--checkpoint", str(official_checkpoint),
                  "--out", str(tmp_path / "o"), "--rgb-topic", "/camera/color")
    assert result.returncode == 2 and "no topic /camera/color; image topics in the bag:" in result.stderr
    result = _run("psfusion-eval", "--bag", str(tmp_path / "nope"), "--checkpoint", str(official_checkpoint),
                  "--out", str(tmp_path / "o2"))
    assert result.returncode == 2 and "no such bag" in result.stderr
    assert "Traceback" not in result.stderr


def test_interrupted_run_keeps_a_valid_report_and_bag(tmp_path: Path, official_checkpoint: Path) -> None:
    data = _dataset(tmp_path / "d", 200)  # far more pairs than can pass while the signal is delivered
    bag = tmp_path / "bag"
    assert _run("psfusion-bag", "--ir", str(data / "ir"), "--vi", str(data / "vi"), "--out", str(bag)).returncode == 0
    out = tmp_path / "eval"
    proc = subprocess.Popen([str(BIN / "psfusion-eval"), "--bag", str(bag), "--checkpoint", str(official_checkpoint),
                             "--out", str(out), "--network-size", "64x96", "--device", "cpu", "--no-html"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=started_as_a_background_job)
    progress: list[str] = []
    reader = threading.Thread(target=lambda: progress.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not re.search(r"\b[1-9]\d*/200\b",
                                                                                   "".join(progress)):
        time.sleep(0.05)  # polling a condition (a pair has been written), not waiting for time to pass
    assert proc.poll() is None, "".join(progress)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    reader.join(timeout=30)
    assert proc.returncode == 130, "".join(progress)
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and 1 <= report["pairs"] < 200
    with BagReader(out / "bag") as reader_:  # finalized: readable, one fused image per reported pair
        assert reader_.topics()["/psfusion/fused/image"][1] == report["pairs"]


def test_the_report_says_whether_the_drive_is_registered(tmp_path: Path, official_checkpoint: Path) -> None:
    """The node's registration check on a spread of the drive's pairs: a calibration 8 px off is reported as
    misaligned by ~8 px, the right one as aligned (per-pair residuals in report.json, a plot in report.html)."""
    import yaml

    from psfusion_ros.harness.synthetic import misalignment_homography, thermal_counts
    from psfusion_ros.io.bags import BagWriter, header, image_message

    rgb_size, thermal_size = (192, 256), (144, 192)
    truth = misalignment_homography(rgb_size, thermal_size, rotation_deg=2.0, shift_px=(6.0, -4.0))
    bag = tmp_path / "drive"
    with BagWriter(bag) as writer:
        for k in range(8):
            frame = synthetic_frame(k, *rgb_size)
            stamp = 1_700_000_000_000_000_000 + k * 100_000_000
            writer.write("/thermal/image_raw", image_message(thermal_counts(frame, thermal_size, truth), "mono16",
                                                             header(stamp, "thermal")), stamp)
            writer.write("/rgb/image_raw", image_message(frame.visible, "rgb8", header(stamp, "rgb")), stamp)
    verdicts = {}
    for name, shift in (("off", 8.0), ("right", 0.0)):
        calibration = tmp_path / f"{name}.yaml"
        H = np.array([[1, 0, shift], [0, 1, 0], [0, 0, 1]]) @ truth
        calibration.write_text(yaml.safe_dump({"mode": "homography", "homography": H.tolist(),
                                               "thermal_size": list(thermal_size), "rgb_size": list(rgb_size)}))
        out = tmp_path / f"eval_{name}"
        result = _run("psfusion-eval", "--bag", str(bag), "--checkpoint", str(official_checkpoint), "--out", str(out),
                      "--device", "cpu", "--network-size", "64x96", "--calibration", str(calibration),
                      "--registration-checks", "4")
        assert result.returncode == 0, result.stderr
        registration = json.loads((out / "report.json").read_text())["registration"]
        assert registration["mode"] == "homography" and registration["checks"] == 4
        assert registration["confident_checks"] >= 3, registration
        assert len(registration["per_pair"]) == 4 and "residual_px" in registration["per_pair"][0]
        verdicts[name] = registration
        assert f"registration (homography): {registration['verdict']}" in result.stdout
        assert "Registration residual" in (out / "report.html").read_text()
    assert verdicts["off"]["verdict"].startswith("misaligned by ~")
    assert abs(verdicts["off"]["residual_px"]["p50"] - 8.0) <= 2.0
    assert verdicts["right"]["verdict"].startswith("aligned") and verdicts["right"]["residual_px"]["p50"] < 2.0
