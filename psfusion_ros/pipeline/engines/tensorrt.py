"""``tensorrt``: a Torch-TensorRT program built once on the target GPU by ``psfusion-export`` and loaded without a
rebuild. Precision comes from the graph's dtypes on every release in the field (the inference graph is cast to
fp16 with the fused-image head in fp32, an explicit fp32 island), so the keyword set only follows each API
generation (read from pytorch/TensorRT's sources; the table is in ``test/pipeline/test_engines.py``):

- 2.8 – 2.12 (JetPack 6.2's 2.8; x86 users' 2.10 – 2.12): ``use_explicit_typing=True`` builds a strongly typed
  network (``dynamo/conversion/_TRTInterpreter.py``: ``STRONGLY_TYPED``). From 2.10 it is the default, and
  ``enabled_precisions`` other than fp32 is an AssertionError under it (``dynamo/_compiler.py``), so it is never
  passed; on 2.8 the flag is what pins the fp32 head (weak typing only treats dtypes as hints).
- 2.13 and later: typing is always explicit; the flag was removed ("Remove deprecated apis", #4195) and would be
  swallowed by ``**kwargs``, so it is not passed.
- Not passed anywhere: ``cache_built_engines`` / ``reuse_cached_engines`` (no-ops with the default immutable
  weights; 2.13+ warns per engine). Passed everywhere: ``device`` (a ``cuda:1`` export builds on that GPU).

The build and the save (which re-exports from 2.12: ``retrace=True``) run under ``torch.no_grad()``, as upstream's
examples do. CUDA graphs are the documented context manager, entered when the engine is created and exited by
:meth:`TensorRTEngine.close` (node shutdown or cleanup), so the process-wide mode is switched back. ``torch_tensorrt``
calls CUDA while importing, so it is imported only here, only when asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from psfusion_ros.errors import EngineError, one_line
from psfusion_ros.model.inference import InferenceGraph
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.pipeline.config import EngineConfig
from psfusion_ros.pipeline.engines.artifact import check_artifact
from psfusion_ros.pipeline.engines.base import InferenceOutput, check_precision

#: Oldest release written for (JetPack 6.2); the first release without the ``use_explicit_typing`` flag.
OLDEST = (2, 8)
FLAG_REMOVED_IN = (2, 13)


def import_torch_tensorrt() -> Any:
    try:
        import torch_tensorrt
    except Exception as exc:  # noqa: BLE001 - ImportError, or CUDA/TensorRT errors raised while importing
        raise EngineError(f"torch_tensorrt cannot be imported ({type(exc).__name__}: {one_line(exc)[:120]}); "
                          "install it for this GPU (README: Deployment) or use backend compile") from None
    return torch_tensorrt


def api_version(torch_tensorrt: Any) -> tuple[int, int]:
    major, minor = (int("".join(c for c in part if c.isdigit()) or 0)
                    for part in torch_tensorrt.__version__.split(".")[:2])
    return major, minor


def compile_settings(version: tuple[int, int], inputs: list[torch.Tensor], device: torch.device,
                     hardware_compatible: bool, version_compatible: bool) -> dict[str, Any]:
    """``torch_tensorrt.compile`` keyword arguments for this API generation (testable without a GPU)."""
    if version < OLDEST:
        raise EngineError(f"Torch-TensorRT {version[0]}.{version[1]} is older than {OLDEST[0]}.{OLDEST[1]}, the "
                          "oldest release this backend is written for; upgrade it or use backend compile")
    settings: dict[str, Any] = {"ir": "dynamo", "arg_inputs": inputs, "device": device,
                                "hardware_compatible": hardware_compatible, "version_compatible": version_compatible}
    if version < FLAG_REMOVED_IN:
        settings["use_explicit_typing"] = True
    return settings


def export_program(model: PSFusion, precision: str, network_size: tuple[int, int], device: torch.device,
                   path: str | Path, hardware_compatible: bool = False, version_compatible: bool = False) -> Path:
    """Build the TensorRT program on this GPU and save it as an ExportedProgram (loaded later without a rebuild)."""
    torch_tensorrt = import_torch_tensorrt()
    settings_for = compile_settings(api_version(torch_tensorrt), [], device, hardware_compatible, version_compatible)
    graph = InferenceGraph(model, precision).to(device).eval()
    inputs = [torch.rand(1, 3, *network_size, device=device), torch.rand(1, 1, *network_size, device=device)]
    with torch.no_grad():  # not inference_mode: save() re-exports the program (retrace=True from 2.12)
        program = torch_tensorrt.compile(graph, **{**settings_for, "arg_inputs": inputs})
        torch_tensorrt.save(program, str(path), output_format="exported_program", arg_inputs=inputs)
    return Path(path)


def load_program(path: str | Path) -> Any:
    torch_tensorrt = import_torch_tensorrt()
    try:
        return torch_tensorrt.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - "No compatible device", "Unable to deserialize", ABI mismatches
        raise EngineError(f"{path}: TensorRT cannot load this program ({type(exc).__name__}: "
                          f"{one_line(exc)[:160]}); re-run psfusion-export on this machine") from None


class TensorRTEngine:
    """A loaded program; with ``cudagraphs`` it runs inside Torch-TensorRT's CUDA-graph context manager, held for
    the engine's lifetime and exited by :meth:`close` (a process-wide mode otherwise left on)."""

    name = "tensorrt"

    def __init__(self, module: Any, device: torch.device, precision: str, num_classes: int,
                 cudagraphs: bool = False, runtime: Any = None) -> None:
        self.device, self.precision, self.num_classes = device, precision, num_classes
        self.module, self.cudagraphs_note = module, ""
        self._graphs: Any = None
        if cudagraphs:
            manager = runtime.enable_cudagraphs(module)
            try:
                self.module = manager.__enter__()  # one launch per frame instead of one per layer
                self._graphs = manager
            except Exception as exc:  # noqa: BLE001 - a wrapper that cannot capture: run without, mode reset
                manager.__exit__(None, None, None)
                self.module = module
                self.cudagraphs_note = f"CUDA graphs off ({type(exc).__name__}: {one_line(exc)[:120]})"

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        with torch.inference_mode():
            fused, semantic = self.module(vi, ir)
        return InferenceOutput(fused.float(), semantic.float())

    def close(self) -> None:
        """Leave CUDA-graph mode (idempotent)."""
        graphs, self._graphs = self._graphs, None
        if graphs is not None:
            graphs.__exit__(None, None, None)


def create(config: EngineConfig, model: PSFusion, device: torch.device,
           network_size: tuple[int, int] | None) -> TensorRTEngine:
    check_precision(config.precision, device)
    if device.type != "cuda":
        raise EngineError("backend tensorrt needs a CUDA GPU")
    meta = check_artifact(config.engine_path, "tensorrt", config.precision, network_size,
                          getattr(model, "checkpoint_path", None), device)
    return TensorRTEngine(load_program(config.engine_path), device, config.precision,
                          int(meta.get("num_classes", model.num_classes)), cudagraphs=config.cuda_graphs,
                          runtime=import_torch_tensorrt().runtime)
