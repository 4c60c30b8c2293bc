"""bp's backpropagation core: NumPy only, no files, no terminals, no configuration formats."""

from bpcli.nn.activations import ACTIVATIONS
from bpcli.nn.conv import (
    AvgPool2D,
    Conv2D,
    Flatten,
    GlobalAvgPool2D,
    MaxPool2D,
    Reshape,
    Upsample2D,
)
from bpcli.nn.gan import Gan, GanStep, GroupSoftmax, NoLoss, OptimizerPair
from bpcli.nn.init import INITIALIZERS
from bpcli.nn.layers import LAYERS, Activation, Dense, Dropout, Layer
from bpcli.nn.losses import LOSSES, Loss
from bpcli.nn.network import Network
from bpcli.nn.optimizers import OPTIMIZERS, Optimizer
from bpcli.nn.recurrent import GRU, LSTM
from bpcli.nn.sequence import Conv1D, Embedding, GlobalAvgPool1D, GlobalMaxPool1D

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LAYERS",
    "LOSSES",
    "OPTIMIZERS",
    "Activation",
    "AvgPool2D",
    "Conv1D",
    "Conv2D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "Gan",
    "GanStep",
    "GroupSoftmax",
    "GlobalAvgPool1D",
    "GlobalAvgPool2D",
    "GlobalMaxPool1D",
    "LSTM",
    "Layer",
    "Loss",
    "MaxPool2D",
    "Network",
    "NoLoss",
    "Optimizer",
    "OptimizerPair",
    "Reshape",
    "Upsample2D",
]
