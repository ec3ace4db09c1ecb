"""What data-driven criteria need from a model: activation, gradient and curvature
statistics per prunable layer, gathered over a few training batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Dataset
from .layers import Prunable
from .model import Model


@dataclass(frozen=True)
class LayerStatistics:
    """Statistics of one prunable layer (arrays are float64).

    * ``input_abs_mean``, ``input_zero_fraction``: per weight-row position (one value per
      input feature of a dense layer, per im2col column ``c x kh x kw`` of a
      convolution, padding included), over samples and output positions.
    * ``output_mean``, ``output_zero_fraction``: per output unit, of the layer's output
      after a ReLU (mean activation; APoZ, Hu et al. 2016).
    * ``taylor``: per batch, the first-order loss change terms ``g * w`` (batch, weight
      shape), ``g`` the batch-mean gradient (Molchanov et al. 2017).
    * ``fisher``: per weight, the mean over samples of the squared per-sample gradient,
      the diagonal Hessian estimate of OBD (the Gauss-Newton / empirical Fisher
      approximation for cross-entropy; LeCun et al. 1990 backpropagate exact diagonal
      second derivatives instead).
    """

    input_abs_mean: np.ndarray
    input_zero_fraction: np.ndarray
    output_mean: np.ndarray
    output_zero_fraction: np.ndarray
    taylor: np.ndarray
    fisher: np.ndarray


def collect(model: Model, data: Dataset, batches: int = 4, batch_size: int = 128,
            seed: int = 0) -> dict[str, LayerStatistics]:
    """Statistics of every prunable layer over ``batches`` random training batches."""
    rng = np.random.default_rng(seed)
    acc: dict[str, dict[str, list]] = {lay.name: {k: [] for k in
                                                  ("iabs", "izero", "omean", "ozero", "taylor", "fisher")}
                                       for lay in model.prunable()}
    for _ in range(batches):
        idx = rng.choice(data.x_train.shape[0], size=min(batch_size, data.x_train.shape[0]),
                         replace=False)
        model.loss_and_backward(data.x_train[idx], data.y_train[idx])
        for lay in model.prunable():
            a = acc[lay.name]
            x = lay.last_input.astype(np.float64)
            a["iabs"].append(np.abs(x).mean(axis=0))
            a["izero"].append((x == 0).mean(axis=0))
            z = x @ lay.effective_weight().reshape(lay.weight.shape[0], -1).T.astype(np.float64) \
                + lay.effective_bias()
            a["omean"].append(np.maximum(z, 0).mean(axis=0))
            a["ozero"].append((z <= 0).mean(axis=0))
            a["taylor"].append(lay.dweight.astype(np.float64) * lay.weight)
            a["fisher"].append(_fisher(lay, idx.size))
    out = {}
    for name, a in acc.items():
        out[name] = LayerStatistics(
            input_abs_mean=np.mean(a["iabs"], axis=0), input_zero_fraction=np.mean(a["izero"], axis=0),
            output_mean=np.mean(a["omean"], axis=0), output_zero_fraction=np.mean(a["ozero"], axis=0),
            taylor=np.stack(a["taylor"]), fisher=np.mean(a["fisher"], axis=0))
    return out


def _fisher(layer: Prunable, samples: int) -> np.ndarray:
    """Mean squared per-sample weight gradient of the last backward pass."""
    delta = layer.last_grad_out.astype(np.float64) * samples      # per-sample loss gradient
    x = layer.last_input.astype(np.float64)
    positions = delta.shape[0] // samples
    if positions == 1:
        sq = (delta ** 2).T @ (x ** 2)
    else:
        per_sample = np.einsum("npo,npk->nok", delta.reshape(samples, positions, -1),
                               x.reshape(samples, positions, -1))
        sq = (per_sample ** 2).sum(axis=0)
    return (sq / samples).reshape(layer.weight.shape)
