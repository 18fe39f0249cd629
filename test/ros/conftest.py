"""Fixtures for tests that run the node in its own process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ros_harness import PARAMS_FILE, Harness, NodeProcess


@pytest.fixture()
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    h.close()


@pytest.fixture()
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    started: list[NodeProcess] = []

    def start(**overrides: object) -> NodeProcess:
        proc = NodeProcess(overrides, tmp_path / f"node{len(started)}.log", PARAMS_FILE)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
