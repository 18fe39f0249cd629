"""ONNX export (opset 18, fixed size, inputs ``vi``/``ir``, outputs ``fused``/``semantic``) for deployments through
trtexec, Isaac ROS's TensorRT node or ONNX Runtime, and an ONNX Runtime runner to check the file and benchmark it.
Not a node backend: the node runs the Torch-TensorRT program built from the same graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from psfusion_ros.errors import EngineError, one_line
from psfusion_ros.pipeline.engines.base import InferenceOutput

OPSET = 18
INPUT_NAMES, OUTPUT_NAMES = ("vi", "ir"), ("fused", "semantic")


def export_onnx(graph: torch.nn.Module, inputs: tuple[torch.Tensor, ...], path: str | Path) -> Path:
    with torch.inference_mode():
        torch.onnx.export(graph, inputs, str(path), dynamo=True, opset_version=OPSET,
                          input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES), external_data=False)
    return Path(path)


class OnnxRuntimeEngine:
    """The exported file in ONNX Runtime (CPU, or CUDA when that provider is installed)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, device: torch.device, num_classes: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise EngineError("onnxruntime is not installed (pip install onnxruntime)") from None
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda" \
            else ["CPUExecutionProvider"]
        try:
            self.session: Any = ort.InferenceSession(str(path), providers=[
                p for p in providers if p in ort.get_available_providers()])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise EngineError(f"{path}: ONNX Runtime cannot load it ({one_line(exc)[:160]})") from None
        self.device, self.precision, self.num_classes = device, "fp32", num_classes

    def __call__(self, vi: torch.Tensor, ir: torch.Tensor) -> InferenceOutput:
        fused, semantic = self.session.run(list(OUTPUT_NAMES), {"vi": vi.detach().cpu().numpy().astype(np.float32),
                                                                "ir": ir.detach().cpu().numpy().astype(np.float32)})
        return InferenceOutput(torch.from_numpy(fused).to(self.device), torch.from_numpy(semantic).to(self.device))
