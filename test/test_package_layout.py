"""The layers the code map in the README promises, checked on the code itself: who may import whom, no cycles,
light imports, one place that assembles the pipeline."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "psfusion_ros"

#: package → the packages of psfusion_ros it may import (besides itself, ``errors`` and ``constants``). ``tools``
#: (the console scripts) is the top: nothing imports it, ``python -m psfusion_ros.train`` included.
ALLOWED = {
    "errors": set(),
    "constants": set(),
    "cli": {"pipeline"},  # argparse types and the one-line error/exit-code wrapper every command line uses
    "io": set(),
    "model": set(),
    "metrics": set(),
    "pipeline": {"model"},
    "harness": {"io", "pipeline", "model"},
    "evaluation": {"io", "pipeline", "model", "metrics", "harness"},
    "train": {"model", "pipeline", "metrics", "io", "evaluation", "cli"},
    "ros": {"io", "pipeline", "model"},
    "tools": {"io", "pipeline", "model", "metrics", "harness", "evaluation", "train", "ros", "cli", "root"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """psfusion_ros modules a file imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("psfusion_ros"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("psfusion_ros"))
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def test_each_layer_imports_only_what_it_may() -> None:
    modules = _modules()
    problems = []
    for module, path in modules.items():
        layer = _layer(module)
        if layer == "root":
            continue
        allowed = ALLOWED[layer] | {layer, "errors", "constants"}
        for imported in _imports(path):
            target = _layer(imported)
            if imported in modules and target not in allowed:
                problems.append(f"{module} imports {imported}")
    assert not problems, problems


def test_no_import_cycles() -> None:
    modules = _modules()
    graph = {m: {i for i in _imports(p) if i in modules and i != m} for m, p in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [node, nxt]))
            if nxt not in state:
                visit(nxt, stack + [node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_nothing_below_the_tools_imports_them() -> None:
    """The console scripts are thin: no library module (evaluation, train, ``__main__`` entry points) needs one."""
    modules = _modules()
    users = sorted(m for m, p in modules.items() if _layer(m) != "tools"
                   and any(_layer(i) == "tools" for i in _imports(p) if i in modules))
    assert not users, users


def test_rclpy_only_in_the_ros_layer_and_the_players() -> None:
    users = sorted(m for m, p in _modules().items() if "rclpy" in {n.split(".")[0] for n in _external(p)})
    assert all(m.startswith(("psfusion_ros.ros.", "psfusion_ros.harness.drive_player",
                             "psfusion_ros.harness.bag_player", "psfusion_ros.evaluation.live",
                             "psfusion_ros.tools.")) for m in users), users


def _external(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


@pytest.mark.parametrize(
    ("statement", "absent"),
    [("import psfusion_ros.io.image_codec", ("torch", "rclpy")),
     ("import psfusion_ros, psfusion_ros.errors", ("torch", "rclpy")),
     ("import psfusion_ros; psfusion_ros.PSFusion; psfusion_ros.build_pipeline; psfusion_ros.fusion_metrics",
      ("rclpy",)),
     ("import psfusion_ros.pipeline.config, psfusion_ros.pipeline.parameters", ("torch", "rclpy")),
     # the registration check's worker process: numpy + OpenCV only (torch would cost it ~1 s and ~300 MB)
     ("import psfusion_ros.pipeline.registration_worker, psfusion_ros.pipeline.registration_check",
      ("torch", "rclpy"))],
)
def test_light_imports(statement: str, absent: tuple[str, ...]) -> None:
    code = f"import sys; {statement}; print(','.join(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{statement} imported {result.stdout.strip()}"


def test_the_pipeline_is_assembled_in_one_place() -> None:
    builders = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if "FusionPipeline(" in p.read_text())
    assert builders == ["pipeline/builder.py"], builders
