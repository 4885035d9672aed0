"""Fitting a torchvision model to the data: its classifier head, its first convolution, its input size."""
from __future__ import annotations

import torch
from torch import nn

from kernel import KernelError


def _parent(model: nn.Module, dotted: str):
    parent_name, _, attr = dotted.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def final_layer(model: nn.Module) -> tuple[str, nn.Module] | None:
    """The layer that gives the class scores: the last Linear, else the last 1x1 Conv2d (SqueezeNet)."""
    last_linear = last_conv = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_linear = (name, module)
        elif isinstance(module, nn.Conv2d) and module.kernel_size == (1, 1):
            last_conv = (name, module)
    return last_linear or last_conv


def replace_head(model: nn.Module, num_classes: int) -> bool:
    """Resize the classifier's output to ``num_classes`` (a new, untrained layer); False when already so."""
    found = final_layer(model)
    if found is None:
        raise KernelError(f"{type(model).__name__}: no final Linear layer found to size for {num_classes} classes")
    name, layer = found
    parent, attr = _parent(model, name)
    if isinstance(layer, nn.Linear):
        if layer.out_features == num_classes:
            return False
        new = nn.Linear(layer.in_features, num_classes, bias=layer.bias is not None)
    else:
        if layer.out_channels == num_classes:
            return False
        new = nn.Conv2d(layer.in_channels, num_classes, 1, bias=layer.bias is not None)
    setattr(parent, attr, new.to(layer.weight.dtype))
    return True


def replace_class_convs(model: nn.Module, old: int, num_classes: int):
    """Segmentation heads: every 1x1 convolution of a classifier that outputs ``old`` classes."""
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv2d) and module.out_channels == old and "classifier" in name:
            parent, attr = _parent(model, name)
            setattr(parent, attr, nn.Conv2d(module.in_channels, num_classes, module.kernel_size,
                                            bias=module.bias is not None))


def first_conv(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            return name, module
    return None


def adapt_first_conv(model: nn.Module, in_channels: int, pretrained: bool) -> bool:
    """Make the first convolution take ``in_channels``; pretrained filters are summed or spread over them."""
    found = first_conv(model)
    if found is None:
        return False
    name, conv = found
    if conv.in_channels == in_channels:
        return False
    if conv.groups != 1:
        raise KernelError(f"{type(model).__name__}: its first convolution is grouped; it cannot be adapted to "
                          f"{in_channels}-channel images")
    cls = type(conv)
    new = cls(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
              bias=conv.bias is not None, padding_mode=conv.padding_mode)
    if pretrained:
        with torch.no_grad():
            w = conv.weight
            if in_channels == 1:
                new.weight.copy_(w.sum(1, keepdim=True))
            else:
                index = torch.arange(in_channels) % w.shape[1]
                new.weight.copy_(w[:, index] * (w.shape[1] / in_channels))
            if conv.bias is not None:
                new.bias.copy_(conv.bias)
    parent, attr = _parent(model, name)
    setattr(parent, attr, new)
    if getattr(model, "transform_input", False):
        model.transform_input = False  # Inception's input transform assumes 3 ImageNet channels
    return True


def check_input(model: nn.Module, input_shape, where: str, min_size=None, resize_to: int | list | None = None):
    """Pass a zero batch through the model; a shape it cannot take becomes a KernelError suggesting a Resize."""
    if not input_shape:
        return
    shape = tuple(int(s) for s in input_shape)
    hint = resize_to or (max(min_size) if min_size else None)
    suggestion = (f"; add {{ use = \"vision.Resize\", size = {hint} }} to dataset.transforms" if hint
                  else "; resize the images (vision.Resize) to a size the model takes")
    if min_size and len(shape) >= 3 and (shape[-2] < min_size[0] or shape[-1] < min_size[1]):
        raise KernelError(f"{where} takes images of at least {min_size[0]}x{min_size[1]} pixels, but the data gives "
                          f"{shape[-2]}x{shape[-1]}{suggestion}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape)))
    except (RuntimeError, ValueError, AssertionError, IndexError) as exc:
        message = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
        raise KernelError(f"{where} cannot take inputs of shape {shape}: {message}{suggestion}") from None
    finally:
        model.train(was_training)
