"""Backbones, per-task heads and weight loading."""

from .backbones import (
    BACKBONES,
    Backbone,
    CifarResNet,
    MultiHead,
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
    "MultiHead",
    "WeightsError",
    "as_backbone",
    "build_backbone",
    "cifar_resnet",
    "count_params",
    "load_weights",
    "shipped_checkpoints",
    "torchvision_resnet",
]
