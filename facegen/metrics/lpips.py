"""LPIPS-VGG perceptual distance in plain PyTorch, loading local weight files only.

Matches ``lpips.LPIPS(net="vgg", version="0.1")`` of Zhang et al., CVPR 2018, "The Unreasonable
Effectiveness of Deep Features as a Perceptual Metric" (reference: richzhang/PerceptualSimilarity,
``lpips/lpips.py`` and ``lpips/pretrained_networks.py``):

1. scale the input from [-1, 1] with ``(x - shift) / scale`` (the ``ScalingLayer``);
2. take the VGG16 ``features`` activations relu1_2, relu2_2, relu3_3, relu4_3, relu5_3;
3. normalise each activation to unit length along channels (``x / (||x||_2 + 1e-10)``);
4. square the difference, weight channels with the 1x1 linear heads ``lin0..lin4``, average over
   pixels and sum over the five layers.

Two files are needed, both named in config and never downloaded: the torchvision VGG16 ImageNet
weights (``vgg16-397923af.pth``; keys ``features.{i}.weight/bias``) and the LPIPS v0.1 linear heads
(``lpips/weights/v0.1/vgg.pth``; keys ``lin{k}.model.1.weight`` of shape ``[1, C_k, 1, 1]``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from facegen.checkpoints import load
from facegen.errors import CheckpointError, MissingWeightsError
from facegen.shapes import assert_shape

# torchvision.models.vgg16().features: (out_channels or "M" for max-pool), in torchvision's index order.
_VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
# Index (in ``features``) of the ReLU after which each LPIPS layer is tapped: relu1_2 ... relu5_3.
_LPIPS_TAPS = (3, 8, 15, 22, 29)
_LPIPS_CHANNELS = (64, 128, 256, 512, 512)


def vgg16_features() -> nn.Sequential:
    """VGG16's convolutional trunk up to relu5_3, laid out as ``torchvision.models.vgg16().features[:30]``.

    Module indices equal torchvision's, so a torchvision state dict (``features.{i}.weight``) loads
    directly. Input: ``[B, 3, H, W]`` ImageNet-normalised; the layers are untrained until loaded.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for item in _VGG16_CFG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, int(item), kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            in_channels = int(item)
    return nn.Sequential(*layers)


def _load_state(path: str | os.PathLike, what: str) -> dict[str, Tensor]:
    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"{what} weights not found at {path}; set the path in config to a local copy.")
    state = load(path)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict (dict of tensors), got {type(state).__name__}")
    return state


class LPIPS(nn.Module):
    """Learned perceptual image patch similarity with a VGG16 trunk (LPIPS v0.1).

    Args:
        vgg16_path: torchvision VGG16 weights (``features.{i}.weight``/``bias``, or the same keys
            without the ``features.`` prefix).
        lpips_path: LPIPS v0.1 ``vgg.pth`` (``lin{k}.model.1.weight`` ``[1, C_k, 1, 1]``).

    Raises:
        MissingWeightsError: a path is absent. CheckpointError: a file lacks the expected keys or a
        key has the wrong shape.

    ``forward(x, y)``: two images ``[B, 3, H, W]`` in [-1, 1] (``H, W >= 16``) -> distance ``[B]``
    (0 for identical images; :class:`~facegen.errors.ShapeError` for other shapes). The network is frozen;
    gradients flow to the inputs only.
    """

    def __init__(self, vgg16_path: str | os.PathLike, lpips_path: str | os.PathLike):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.features = vgg16_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in _LPIPS_CHANNELS)

        vgg_state = _load_state(vgg16_path, "VGG16 (torchvision)")
        vgg_state = {k.removeprefix("features."): v for k, v in vgg_state.items() if not k.startswith("classifier.")}
        missing = set(self.features.state_dict()) - set(vgg_state)
        if missing:
            raise CheckpointError(
                f"{vgg16_path}: missing VGG16 keys {sorted(missing)[:4]}...; expected torchvision layout "
                "'features.{i}.weight'/'features.{i}.bias' for conv indices 0,2,5,...,28"
            )
        self.features.load_state_dict({k: vgg_state[k] for k in self.features.state_dict()})

        lin_state = _load_state(lpips_path, "LPIPS linear-head")
        for k, lin in enumerate(self.lins):
            key = f"lin{k}.model.1.weight"
            if key not in lin_state:
                raise CheckpointError(f"{lpips_path}: missing key '{key}' (LPIPS v0.1 vgg.pth)")
            assert_shape(lin_state[key], list(lin.weight.shape), f"{lpips_path}: {key}", error=CheckpointError,
                         hint="LPIPS v0.1 vgg.pth")
            lin.weight.data.copy_(lin_state[key])
        self.requires_grad_(False).eval()

    def layer_features(self, x: Tensor) -> list[Tensor]:
        """The five unit-normalised VGG activations of ``x`` ``[B, 3, H, W]`` in [-1, 1]."""
        h = (x - self.shift) / self.scale
        taps = []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in _LPIPS_TAPS:
                taps.append(h / (h.square().sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        assert_shape(x, ["B", 3, "H", "W"], "x", hint="RGB images in [-1, 1]")
        assert_shape(y, [None, 3, *x.shape[2:]], "y", hint="RGB images of the size of x")
        distance = x.new_zeros(x.shape[0])
        for lin, fx, fy in zip(self.lins, self.layer_features(x), self.layer_features(y)):
            distance = distance + lin((fx - fy).square()).mean(dim=(1, 2, 3))
        return distance
