"""Pieces of the training loop that need no full run: weights in, what trains, what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from psfusion_ros.errors import CheckpointError, ConfigError
from psfusion_ros.model.psfusion import PSFusion
from psfusion_ros.model.resnet import resnet34_stage
from psfusion_ros.train.losses import training_loss
from psfusion_ros.train.trainer import (
    TrainConfig,
    Trainer,
    _y,
    freeze,
    frozen_prefixes,
    load_initial_weights,
    load_pretrained_trunks,
)


def _torchvision_resnet34_state(seed: int) -> dict[str, torch.Tensor]:
    """A state dict with torchvision's resnet34 names and shapes (conv1, bn1, layer1..4, fc), random values."""
    torch.manual_seed(seed)
    state = {"conv1.weight": torch.randn(64, 3, 7, 7), "fc.weight": torch.randn(1000, 512),
             "fc.bias": torch.randn(1000)}
    bn = torch.nn.BatchNorm2d(64)
    for k, v in bn.state_dict().items():
        state[f"bn1.{k}"] = torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
    for i in range(4):
        for k, v in resnet34_stage(i).state_dict().items():
            state[f"layer{i + 1}.{k}"] = torch.randn_like(v) if v.is_floating_point() else v
    return state


def test_pretrained_resnet34_goes_into_both_encoder_trunks(tmp_path: Path) -> None:
    path = tmp_path / "resnet34-b627a593.pth"
    state = _torchvision_resnet34_state(0)
    torch.save(state, path)
    model = PSFusion()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copied = load_pretrained_trunks(model, path)
    after = model.state_dict()
    assert copied == 2 * sum(1 for k in state if k.startswith(("bn1.", "layer")))
    for modality in ("rgb", "thermal"):
        assert torch.equal(after[f"encoder_{modality}_layer3.0.conv1.weight"], state["layer1.0.conv1.weight"])
        assert torch.equal(after[f"encoder_{modality}_layer6.2.bn2.running_var"], state["layer4.2.bn2.running_var"])
        assert torch.equal(after[f"encoder_{modality}_bn1.weight"], state["bn1.weight"])
        # PSFusion's own first block has no ImageNet counterpart
        assert torch.equal(after[f"encoder_{modality}_conv1.SFEB1.0.weight"],
                           before[f"encoder_{modality}_conv1.SFEB1.0.weight"])
    assert torch.equal(after["pred_fusion.conv_block.0.weight"], before["pred_fusion.conv_block.0.weight"])


def test_a_file_that_is_not_resnet34_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    state = {k: v for k, v in _torchvision_resnet34_state(1).items() if not k.startswith("layer3.5")}
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"not a torchvision ResNet-34 state dict .*layer5\.5") as err:
        load_pretrained_trunks(PSFusion(), path)
    assert "\n" not in str(err.value)


def test_starting_weights_for_another_class_count_keep_all_but_the_last_semantic_layer(tmp_path: Path) -> None:
    torch.manual_seed(2)
    source = PSFusion(9)
    path = tmp_path / "best_model.pth"
    torch.save({"MTAN": source.state_dict(), "ep": 3}, path)
    target = PSFusion(4)
    fresh = target.classfier.semantic_conv2.weight.clone()
    note = load_initial_weights(target, path)
    assert "re-initialized for 4 classes" in note
    assert torch.equal(target.classfier.semantic_conv2.weight, fresh)
    assert torch.equal(target.classfier.semantic_conv1.conv.weight, source.classfier.semantic_conv1.conv.weight)
    assert torch.equal(target.encoder_rgb_layer4[0].conv1.weight, source.encoder_rgb_layer4[0].conv1.weight)


@pytest.mark.parametrize("task", ["full", "fusion"])
def test_every_trainable_parameter_gets_a_gradient(task: str) -> None:
    """DistributedDataParallel (without find_unused_parameters) needs this; the frozen set must be exact."""
    torch.manual_seed(0)
    model = PSFusion().train()
    config = TrainConfig(dataroot="-", out="-", task=task)
    frozen = freeze(model, frozen_prefixes(config))
    vi, ir = torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)
    label = torch.randint(0, 9, (2, 64, 64))
    full = task == "full"
    loss, terms = training_loss(model(vi, ir), _y(vi), ir, (label > 0).float()[:, None] if full else None,
                                label if full else None, (label > 0).long() if full else None,
                                (label > 4).long() if full else None)
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    without_grad = sorted(n for n, p in model.named_parameters() if p.requires_grad and p.grad is None)
    assert not without_grad, without_grad[:5]
    assert all(not n.startswith("classfier.boundary_conv1") for n in trainable)
    if task == "fusion":
        assert not any(n.startswith(("classfier.", "seg_decoder.", "to_fused_seg.")) for n in trainable)
        assert {"segmentation", "binary", "boundary"}.isdisjoint(terms)
        assert any(m is model.seg_decoder for m in frozen)  # its BatchNorm statistics stay as loaded too
    else:
        assert "classfier.semantic_conv2.weight" in trainable and "segmentation" in terms


@pytest.mark.parametrize(("changes", "message"), [
    ({"batch_size": 1}, "--batch-size must be at least 2"),
    ({"crop": 100}, "multiple of 32"),
    ({"amp": "fp16"}, "--amp fp16 needs CUDA"),
    ({"sync_bn": True}, "--sync-bn needs CUDA"),
    ({"task": "detection"}, "--task 'detection'"),
])
def test_settings_that_cannot_work_are_refused_up_front(tmp_path: Path, changes: dict, message: str) -> None:
    config = TrainConfig(dataroot=str(tmp_path), out=str(tmp_path / "out"), device="cpu", **changes)
    with pytest.raises(ConfigError, match=message):
        Trainer(config)
