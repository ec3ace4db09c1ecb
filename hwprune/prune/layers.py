"""Layers of hwprune's small trainer: forward and backward passes in numpy (float32).

Each layer's ``forward(x)`` keeps what its ``backward(grad)`` needs; ``backward`` takes
the gradient of the loss with respect to the layer's output and returns the gradient
with respect to its input. Parameterized layers (:class:`Dense`, :class:`Conv2d`) hold
a boolean ``mask`` of the weight's shape:

* the forward pass uses ``weight * mask`` (and zeroes the bias of a row whose weights
  are all pruned, so that a removed neuron or filter outputs nothing);
* ``backward`` masks the weight gradient too, unless ``splice`` is set (dynamic network
  surgery: pruned weights keep being updated and can come back).

Convolutions are lowered with im2col (the same lowering hwprune's kernels and cost
models assume): a weight row is one output channel's ``in_channels x kh x kw`` values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError


class Layer(ABC):
    """A step of the forward pass (the contract every layer implements)."""

    name: str = ""

    @abstractmethod
    def forward(self, x: np.ndarray) -> np.ndarray:
        """The layer's output for ``x``; keeps what :meth:`backward` needs."""

    @abstractmethod
    def backward(self, grad: np.ndarray) -> np.ndarray:
        """The loss gradient with respect to the input, given it for the output."""


class Prunable(Layer):
    """A layer with a prunable ``weight`` (rows = output units), ``bias`` and ``mask``.

    After a backward pass: ``dweight``/``dbias`` hold the gradient of the batch loss,
    ``last_input`` the layer's input rows as a matrix (``(samples, row length)``; im2col
    columns for a convolution) and ``last_grad_out`` the output gradient as a matrix
    ``(samples, out units)`` with ``positions`` output positions per image.
    """

    weight: np.ndarray
    bias: np.ndarray
    mask: np.ndarray
    splice: bool = False

    def rows(self) -> np.ndarray:
        """The weight as a matrix, one row per output unit (a view)."""
        return self.weight.reshape(self.weight.shape[0], -1)

    def effective_weight(self) -> np.ndarray:
        return self.weight * self.mask

    def effective_bias(self) -> np.ndarray:
        alive = self.mask.reshape(self.mask.shape[0], -1).any(axis=1)
        return self.bias * alive

    def apply_mask(self) -> None:
        """Zero the pruned weights in place (so that saved weights show the pruning)."""
        self.weight *= self.mask

    def _grads(self, cols: np.ndarray, grad_rows: np.ndarray) -> None:
        dw = (grad_rows.T @ cols).reshape(self.weight.shape)
        self.dweight = dw if self.splice else dw * self.mask
        alive = self.mask.reshape(self.mask.shape[0], -1).any(axis=1)
        self.dbias = grad_rows.sum(axis=0) * (True if self.splice else alive)
        self.last_grad_out = grad_rows


class Dense(Prunable):
    """Fully connected: ``y = x W^T + b``, ``W`` of shape ``(out, in)``."""

    def __init__(self, name: str, in_features: int, out_features: int, rng: np.random.Generator):
        self.name = name
        scale = np.sqrt(2.0 / in_features)      # He et al. 2015 initialization (ReLU)
        self.weight = (rng.standard_normal((out_features, in_features)) * scale).astype(np.float32)
        self.bias = np.zeros(out_features, dtype=np.float32)
        self.mask = np.ones_like(self.weight, dtype=bool)
        self.positions = 1

    def forward(self, x):
        self.last_input = x
        return x @ self.effective_weight().T + self.effective_bias()

    def backward(self, grad):
        self._grads(self.last_input, grad)
        return grad @ self.effective_weight()


class Conv2d(Prunable):
    """2-D convolution, ``W`` of shape ``(out, in, kh, kw)``, square kernel and stride."""

    def __init__(self, name: str, in_channels: int, out_channels: int, kernel: int,
                 rng: np.random.Generator, stride: int = 1, padding: int = 0):
        if kernel < 1 or stride < 1 or padding < 0:
            raise InputError(f"conv {name!r}: kernel and stride must be >= 1, padding >= 0")
        self.name = name
        self.kernel, self.stride, self.padding = kernel, stride, padding
        fan_in = in_channels * kernel * kernel
        self.weight = (rng.standard_normal((out_channels, in_channels, kernel, kernel))
                       * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.bias = np.zeros(out_channels, dtype=np.float32)
        self.mask = np.ones_like(self.weight, dtype=bool)

    def _cols(self, x):
        p, k, s = self.padding, self.kernel, self.stride
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p))) if p else x
        win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]   # n c ho wo kh kw
        n, c, ho, wo = win.shape[:4]
        cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * ho * wo, c * k * k)
        return cols, (n, c, ho, wo, xp.shape)

    def forward(self, x):
        cols, geometry = self._cols(x)
        self.last_input, self._geometry = cols, geometry
        n, _, ho, wo, _ = geometry
        self.positions = ho * wo
        w = self.effective_weight().reshape(self.weight.shape[0], -1)
        out = cols @ w.T + self.effective_bias()
        return out.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2)

    def backward(self, grad):
        n, c, ho, wo, padded = self._geometry
        o = self.weight.shape[0]
        grad_rows = grad.transpose(0, 2, 3, 1).reshape(n * ho * wo, o)
        self._grads(self.last_input, grad_rows)
        k, s, p = self.kernel, self.stride, self.padding
        dcols = (grad_rows @ self.effective_weight().reshape(o, -1)).reshape(n, ho, wo, c, k, k)
        dxp = np.zeros(padded, dtype=grad.dtype)
        for i in range(k):
            for j in range(k):
                dxp[:, :, i:i + s * ho:s, j:j + s * wo:s] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
        return dxp[:, :, p:padded[2] - p, p:padded[3] - p] if p else dxp


class ReLU(Layer):
    def __init__(self, name: str = "relu"):
        self.name = name

    def forward(self, x):
        self._on = x > 0
        return x * self._on

    def backward(self, grad):
        return grad * self._on


class MaxPool2d(Layer):
    """Non-overlapping ``size x size`` max pooling (height and width divisible by size);
    the gradient goes to the first maximum of each window."""

    def __init__(self, name: str, size: int = 2):
        self.name, self.size = name, size

    def forward(self, x):
        n, c, h, w = x.shape
        s = self.size
        if h % s or w % s:
            raise InputError(f"pool {self.name!r}: input {h}x{w} is not divisible by {s}")
        win = (x.reshape(n, c, h // s, s, w // s, s).transpose(0, 1, 2, 4, 3, 5)
               .reshape(n, c, h // s, w // s, s * s))
        self._arg = win.argmax(axis=-1)
        self._shape = x.shape
        return np.take_along_axis(win, self._arg[..., None], axis=-1)[..., 0]

    def backward(self, grad):
        n, c, h, w = self._shape
        s = self.size
        win = np.zeros((n, c, h // s, w // s, s * s), dtype=grad.dtype)
        np.put_along_axis(win, self._arg[..., None], grad[..., None], axis=-1)
        return win.reshape(n, c, h // s, w // s, s, s).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h, w)


class Flatten(Layer):
    def __init__(self, name: str = "flatten"):
        self.name = name

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad):
        return grad.reshape(self._shape)


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of a batch and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = labels.shape[0]
    loss = float(-np.log(p[np.arange(n), labels] + 1e-12).mean())
    grad = p
    grad[np.arange(n), labels] -= 1.0
    return loss, (grad / n).astype(np.float32)
