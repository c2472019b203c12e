"""Backbones, per-task heads and weight loading."""

from .backbones import (
    BACKBONES,
    HEADS,
    Backbone,
    CifarResNet,
    GrowingHead,
    MultiHead,
    SharedHead,
    as_backbone,
    build_backbone,
    cifar_resnet,
    count_params,
    torchvision_resnet,
)
from .weights import WeightsError, load_weights, shipped_checkpoints

__all__ = [
    "BACKBONES",
    "Backbone",
    "CifarResNet",
    "GrowingHead",
    "HEADS",
    "MultiHead",
    "SharedHead",
    "WeightsError",
    "as_backbone",
    "build_backbone",
    "cifar_resnet",
    "count_params",
    "load_weights",
    "shipped_checkpoints",
    "torchvision_resnet",
]
