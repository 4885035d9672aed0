"""Generic models over flattened inputs."""
from __future__ import annotations

import math


def mlp(input_shape: tuple, num_classes: int = 1, hidden: int = 64, layers: int = 2, dropout: float = 0.0):
    """A multi-layer perceptron over the flattened input.

    Args:
        input_shape: the shape of one input (filled from the data).
        num_classes: the number of outputs (filled from the data).
        hidden: width of each hidden layer.
        layers: number of hidden layers.
        dropout: dropout probability after each hidden layer.
    """
    from torch import nn

    modules: list = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(layers):
        modules += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout:
            modules.append(nn.Dropout(dropout))
        width = hidden
    modules.append(nn.Linear(width, num_classes))
    return nn.Sequential(*modules)


def linear(input_shape: tuple, num_classes: int = 1):
    """One linear layer over the flattened input.

    Args:
        input_shape: the shape of one input (filled from the data).
        num_classes: the number of outputs (filled from the data).
    """
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
