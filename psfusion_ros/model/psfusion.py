"""PSFusion (Tang et al., Information Fusion 2023): the network, with the official checkpoint's names."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from psfusion_ros.constants import NUM_CLASSES
from psfusion_ros.model.blocks import Feature_extract
from psfusion_ros.model.decoders import DSRM, IFP, S2P2, S2PM, SFP, SIM
from psfusion_ros.model.fusion import PSFM, SDFM
from psfusion_ros.model.precision import module_dtype
from psfusion_ros.model.resnet import resnet34_stage

#: Channels of the fused features at each scale, as in the reference (``self.dims``).
FEATURE_DIMS = (32, 32, 64, 64, 64, 64)
DECODER_DIM_REC = 32
DECODER_DIM_SEG = 64


class PSFusionOutput(NamedTuple):
    """The reference's six outputs, in its order. Logits are at input resolution; images in [0, 1]."""

    semantic: torch.Tensor  # (B, num_classes, H, W)
    binary: torch.Tensor  # (B, 2, H, W)
    boundary: torch.Tensor  # (B, 2, H, W)
    fused: torch.Tensor  # (B, 1, H, W) fused luminance
    vi: torch.Tensor  # (B, 1, H, W) visible reconstruction
    ir: torch.Tensor  # (B, 1, H, W) infrared reconstruction


class PSFusion(nn.Module):
    """Two ResNet-34 encoders, SDFM/PSFM fusion, a semantic branch and a reconstruction branch.

    ``forward(vi, ir)`` takes RGB ``vi`` (B,3,H,W) and infrared ``ir`` (B,1,H,W), both in [0, 1], with H and
    W multiples of 32. Attribute names match the official ``best_model.pth`` (key ``MTAN``) exactly.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.checkpoint_path: str | None = None  # set by load_checkpoint
        for modality, in_channels in (("thermal", 1), ("rgb", 3)):
            # torchvision's bn1/layer1..layer4 are stored as bn1/layer3..layer6 in the checkpoint.
            setattr(self, f"encoder_{modality}_conv1", Feature_extract(in_channels, 64))
            setattr(self, f"encoder_{modality}_bn1", nn.BatchNorm2d(64))
            setattr(self, f"encoder_{modality}_relu", nn.ReLU(inplace=True))
            setattr(self, f"encoder_{modality}_maxpool", nn.MaxPool2d(3, 2, 1))
            for stage in range(4):
                setattr(self, f"encoder_{modality}_layer{stage + 3}", resnet34_stage(stage))

        self.high_fuse6 = PSFM(512, 64, 128)
        self.high_fuse5 = PSFM(256, 64, 128)
        self.high_fuse4 = PSFM(128, 64, 128)
        self.low_fuse3 = SDFM(64, 64)
        self.low_fuse2 = SDFM(64, 32)
        self.low_fuse1 = SDFM(32, 32)

        self.SIM1 = SIM(norm_nc=32, label_nc=64, nhidden=32)
        self.SIM2 = SIM(norm_nc=32, label_nc=32, nhidden=32)
        # Bring the 1/4 .. 1/32 fused features to 1/4 scale with 64 channels each.
        self.to_fused_seg = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, DECODER_DIM_SEG, 3, 1, 1),
                nn.Upsample(scale_factor=2**i, mode="bilinear", align_corners=True),
            )
            for i, dim in enumerate(FEATURE_DIMS[2:])
        )
        self.SIM3 = SIM(norm_nc=32, label_nc=64, nhidden=32)

        self.seg_decoder = S2PM(4 * DECODER_DIM_SEG, DECODER_DIM_SEG)
        self.rec_decoder = DSRM(DECODER_DIM_REC, DECODER_DIM_REC)
        self.seg_rec_decoder = DSRM(DECODER_DIM_REC, DECODER_DIM_REC)
        self.classfier = S2P2(feature=DECODER_DIM_SEG, n_classes=num_classes)  # sic, checkpoint name
        self.pred_fusion = IFP([DECODER_DIM_REC, 1])
        self.pred_vi = SFP([DECODER_DIM_REC, 1])
        self.pred_ir = SFP([DECODER_DIM_REC, 1])

    def _encode(self, modality: str, x: torch.Tensor) -> list[torch.Tensor]:
        """Features at scales 1, 1/2, 1/4, 1/8, 1/16, 1/32 (the reference's x1 .. x6)."""

        def m(name: str) -> nn.Module:
            return getattr(self, f"encoder_{modality}_{name}")

        f1, f2 = m("conv1")(x)
        f2 = m("relu")(m("bn1")(f2))
        f3 = m("layer3")(m("maxpool")(f2))
        f4 = m("layer4")(f3)
        f5 = m("layer5")(f4)
        f6 = m("layer6")(f5)
        return [f1, f2, f3, f4, f5, f6]

    def _decode(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic features (1/4 scale) and reconstruction features (full scale)."""
        rgb1, rgb2, rgb3, rgb4, rgb5, rgb6 = self._encode("rgb", vi)
        ir1, ir2, ir3, ir4, ir5, ir6 = self._encode("thermal", ir[:, :1])

        fused6 = self.high_fuse6(rgb6, ir6)
        fused5 = self.high_fuse5(rgb5, ir5)
        fused4 = self.high_fuse4(rgb4, ir4)
        fused3 = self.low_fuse3(rgb3, ir3)
        fused2 = self.low_fuse2(rgb2, ir2)
        fused1 = self.low_fuse1(rgb1, ir1)

        # Semantic branch at 1/4 scale.
        seg_inputs = (fused3, fused4, fused5, fused6)
        seg_f = torch.cat([to(f) for f, to in zip(seg_inputs, self.to_fused_seg)], dim=1)
        seg_f = self.seg_decoder(seg_f)

        # Reconstruction branch at full scale, with semantic features injected by SIM3.
        rec_f = self.SIM2(fused1, self.SIM1(fused2, fused3))
        rec_f = self.seg_rec_decoder(self.SIM3(self.rec_decoder(rec_f), seg_f))
        return seg_f, rec_f

    def forward(self, vi: torch.Tensor, ir: torch.Tensor) -> PSFusionOutput:
        """The reference's six outputs (training uses them all)."""
        seg_f, rec_f = self._decode(vi, ir)
        semantic, binary, boundary = self.classfier(seg_f)
        return PSFusionOutput(
            semantic, binary, boundary, self.pred_fusion(rec_f), self.pred_vi(rec_f), self.pred_ir(rec_f)
        )

    def infer(self, vi: torch.Tensor, ir: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What deployment needs: fused luminance and semantic logits, without the visible/infrared
        reconstructions and the boundary head (~7 % of the work at 480x640). Each head gets its input in the dtype
        of its weights, so a precision policy (:mod:`psfusion_ros.model.precision`) can keep either in fp32."""
        seg_f, rec_f = self._decode(vi, ir)
        return (self.pred_fusion(rec_f.to(module_dtype(self.pred_fusion))),
                self.classfier.semantic(seg_f.to(module_dtype(self.classfier))))
