"""P-Net, R-Net and O-Net of MTCNN in PyTorch, loaded from the `mtcnn` package's Keras weights.

The Keras weights take images in normal (row-major) orientation and flatten feature maps in
(width, height, channel) order before the dense layers; these modules do the same, so their outputs
equal those of the original networks that saw transposed images.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from facenet_core.detect.weights import load_weights


def _pool_axis(x: torch.Tensor, dim: int, kernel: int, stride: int, out: int) -> torch.Tensor:
    """Max over windows [j * stride, j * stride + kernel) along `dim` for j < out, clipped to the tensor.

    Taken as the maximum of `kernel` (>= 2) strided slices: the same values as max_pool2d (max is
    exact), and on MTCNN's maps 1.5-8x faster than its CPU kernels on one thread.
    """
    index: list[slice] = [slice(None)] * x.dim()

    def tap(offset: int) -> torch.Tensor:
        index[dim] = slice(offset, offset + stride * (out - 1) + 1, stride)
        return x[tuple(index)]

    first, second = tap(0), tap(1)
    length = second.shape[dim]
    result = torch.maximum(first.narrow(dim, 0, length), second)
    if length < out:
        result = torch.cat([result, first.narrow(dim, length, out - length)], dim)
    for offset in range(2, kernel):
        values = tap(offset)
        head = result.narrow(dim, 0, values.shape[dim])
        torch.maximum(head, values, out=head)
    return result


def _max_pool(x: torch.Tensor, kernel: int, stride: int, out_h: int, out_w: int) -> torch.Tensor:
    return _pool_axis(_pool_axis(x, 2, kernel, stride, out_h), 3, kernel, stride, out_w)


def _valid_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max pooling without padding (TensorFlow's VALID)."""
    height, width = x.shape[2:]
    return _max_pool(x, kernel, stride, (height - kernel) // stride + 1, (width - kernel) // stride + 1)


def _same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Max pooling with TensorFlow's SAME padding (padded cells never win)."""
    pads = []
    for size in (x.shape[3], x.shape[2]):
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    if pads[0] or pads[2]:
        x = F.pad(x, pads, value=float("-inf"))
        return _valid_max_pool(x, kernel, stride)
    return _max_pool(x, kernel, stride, math.ceil(x.shape[2] / stride), math.ceil(x.shape[3] / stride))


def _flatten_wh(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 2, 1).flatten(1)


def _conv(weight: np.ndarray, bias: np.ndarray) -> nn.Conv2d:
    kh, kw, cin, cout = weight.shape
    layer = nn.Conv2d(cin, cout, (kh, kw))
    layer.weight.data = torch.from_numpy(weight.transpose(3, 2, 0, 1).copy())
    layer.bias.data = torch.from_numpy(bias.copy())
    return layer


def _dense(weight: np.ndarray, bias: np.ndarray) -> nn.Linear:
    layer = nn.Linear(weight.shape[0], weight.shape[1])
    layer.weight.data = torch.from_numpy(weight.T.copy())
    layer.bias.data = torch.from_numpy(bias.copy())
    return layer


def _heads(weights: list[np.ndarray], layer: Callable) -> nn.Module:
    """One layer computing several output heads side by side: (weight, bias, weight, bias, ...) concatenated."""
    return layer(np.concatenate(weights[0::2], axis=-1), np.concatenate(weights[1::2]))


def _prelu(alpha: np.ndarray) -> nn.PReLU:
    flat = alpha.reshape(-1)
    layer = nn.PReLU(flat.size)
    layer.weight.data = torch.from_numpy(flat.copy())
    return layer


def _conv_prelu(x: torch.Tensor, conv: nn.Conv2d, prelu: nn.PReLU) -> torch.Tensor:
    """conv then PReLU through torch.nn.functional: the same ops without per-module call overhead."""
    return F.prelu(F.conv2d(x, conv.weight, conv.bias), prelu.weight)


def _dense_prelu(x: torch.Tensor, dense: nn.Linear, prelu: nn.PReLU) -> torch.Tensor:
    return F.prelu(F.linear(x, dense.weight, dense.bias), prelu.weight)


class PNet(nn.Module):
    """Proposal network: fully convolutional, (box regression, face probability) per 12x12 cell."""

    def __init__(self) -> None:
        super().__init__()
        w = load_weights("pnet")
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _prelu(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _prelu(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _prelu(w[8])
        self.heads = _heads(w[9:13], _conv)

    def forward(self, x: torch.Tensor, sizes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`sizes` (B, 2: height, width) marks zero-padded images; padding then never reaches a valid cell."""
        return self.scores(self.logits(x, sizes))

    @staticmethod
    def scores(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(box regression, face probability) from the heads' raw (B, 6, H, W) output."""
        return logits[:, :4], torch.softmax(logits[:, 4:], dim=1)

    def logits(self, x: torch.Tensor, sizes: torch.Tensor | None = None) -> torch.Tensor:
        """The heads' raw output: 4 regression channels, then the 2 class logits."""
        x = _conv_prelu(x, self.conv1, self.prelu1)
        if sizes is not None:
            rows = torch.arange(x.shape[2], device=x.device)[None, :] >= (sizes[:, 0:1] - 2)
            cols = torch.arange(x.shape[3], device=x.device)[None, :] >= (sizes[:, 1:2] - 2)
            x = x.masked_fill(rows[:, None, :, None] | cols[:, None, None, :], float("-inf"))
        x = _same_max_pool(x, 2, 2)
        x = _conv_prelu(x, self.conv2, self.prelu2)
        x = _conv_prelu(x, self.conv3, self.prelu3)
        return F.conv2d(x, self.heads.weight, self.heads.bias)


class RNet(nn.Module):
    """Refinement network on 24x24 candidates: (box regression, face probability)."""

    def __init__(self) -> None:
        super().__init__()
        w = load_weights("rnet")
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _prelu(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _prelu(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _prelu(w[8])
        self.fc4, self.prelu4 = _dense(w[9], w[10]), _prelu(w[11])
        self.heads = _heads(w[12:16], _dense)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _same_max_pool(_conv_prelu(x, self.conv1, self.prelu1), 3, 2)
        x = _valid_max_pool(_conv_prelu(x, self.conv2, self.prelu2), 3, 2)
        x = _dense_prelu(_flatten_wh(_conv_prelu(x, self.conv3, self.prelu3)), self.fc4, self.prelu4)
        out = F.linear(x, self.heads.weight, self.heads.bias)
        return out[:, :4], torch.softmax(out[:, 4:], dim=1)


class ONet(nn.Module):
    """Output network on 48x48 candidates: (box regression, 5 landmarks as x1..x5 y1..y5, probability)."""

    def __init__(self) -> None:
        super().__init__()
        w = load_weights("onet")
        self.conv1, self.prelu1 = _conv(w[0], w[1]), _prelu(w[2])
        self.conv2, self.prelu2 = _conv(w[3], w[4]), _prelu(w[5])
        self.conv3, self.prelu3 = _conv(w[6], w[7]), _prelu(w[8])
        self.conv4, self.prelu4 = _conv(w[9], w[10]), _prelu(w[11])
        self.fc5, self.prelu5 = _dense(w[12], w[13]), _prelu(w[14])
        self.heads = _heads(w[15:21], _dense)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _same_max_pool(_conv_prelu(x, self.conv1, self.prelu1), 3, 2)
        x = _valid_max_pool(_conv_prelu(x, self.conv2, self.prelu2), 3, 2)
        x = _same_max_pool(_conv_prelu(x, self.conv3, self.prelu3), 2, 2)
        x = _dense_prelu(_flatten_wh(_conv_prelu(x, self.conv4, self.prelu4)), self.fc5, self.prelu5)
        out = F.linear(x, self.heads.weight, self.heads.bias)
        return out[:, :4], out[:, 4:14], torch.softmax(out[:, 14:], dim=1)
