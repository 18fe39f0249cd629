"""Start and stop ``psfusion_node`` as a child process (demo, benchmarks, tests)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from psfusion_ros.pipeline.parameters import default_params_file, installed_config


def node_executable(name: str = "psfusion_node") -> str:
    """``psfusion_node`` (or ``psfusion_lifecycle_node``) of this environment."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


class NodeProcess:
    """``psfusion_node --ros-args --params-file config/psfusion.yaml -p key:=value ...``"""

    def __init__(self, overrides: dict[str, object], log: Path, params_file: Path | None = None,
                 env: dict[str, str] | None = None, ros_args: list[str] | None = None,
                 executable: str = "psfusion_node") -> None:
        args = [node_executable(executable), "--ros-args", "--params-file", str(params_file or default_params_file())]
        for key, value in overrides.items():
            text = str(value).lower() if isinstance(value, bool) else str(value)
            args += ["-p", f"{key}:={text}"]
        args += list(ros_args or [])  # e.g. ["-r", "__ns:=/cam0"]
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._log_file, stderr=subprocess.STDOUT,
                                     env=dict(env or os.environ, PYTHONUNBUFFERED="1"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text()

    def rss_mb(self) -> float:
        """Resident memory of the node process (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")

    def interrupt(self, timeout: float = 60.0, sig: int = signal.SIGINT) -> int:
        """SIGINT (Ctrl-C, ros2 launch) or another signal; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.stop()

    def wait_for_output(self, text: str, timeout: float = 120.0) -> bool:
        """True once ``text`` appears in the node's log (False on timeout or if it exits first)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self._log_file.closed:
            self._log_file.close()


def private_ros_env(domain_id: int | None = None) -> dict[str, str]:
    """This process's environment on a private DDS domain, discovery on this machine only. Both sides are ours
    and on one machine, so Fast DDS gets the shipped large-image profile unless one is set: over the default
    transport ``psfusion-bench monitor`` got no 640x480 pair through on the 2-core machine."""
    domain = domain_id if domain_id is not None else 100 + os.getpid() % 100
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    profile = installed_config("fastdds_large_images.xml")
    if profile is not None and os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp") == "rmw_fastrtps_cpp":
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    return dict(os.environ)
