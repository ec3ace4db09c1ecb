"""A network read from a model file or a framework: the workload plus its weights."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .network import Network


class ImportWarning_(UserWarning):
    """An operator was skipped while importing (no weights, no MACs, shape unchanged)."""


@dataclass(frozen=True)
class ImportedModel:
    """``network``: the workload (layer names are the model's node or module names);
    ``weights``/``biases``: numpy arrays per conv/fc layer, batch norms folded in
    (float32; conv ``(out, in/groups, kh, kw)``, fc ``(out, in)``); ``skipped``: the
    operators skipped with a warning."""

    network: Network
    weights: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    skipped: tuple[str, ...] = field(default=())


def warn_skip(what: str) -> None:
    warnings.warn(what, ImportWarning_, stacklevel=3)


def skip_unsupported(what: str, where: str, has_weights: bool, in_shape, out_shape,
                     skipped: list[str]) -> None:
    """The importers' rule for an operation hwprune does not know: an error when it has
    weights or changes its input's shape; otherwise record it and warn (the caller then
    reads its output as its input)."""
    from ..errors import InputError

    if has_weights:
        raise InputError(f"unsupported operation {what} at {where!r}: it has weights, so it cannot "
                         "be skipped")
    if out_shape is None or tuple(out_shape) != tuple(in_shape):
        raise InputError(f"unsupported operation {what} at {where!r}: it changes its input's shape "
                         f"{tuple(in_shape)} (to {out_shape}), so it cannot be skipped")
    skipped.append(f"{where} ({what})")
    warn_skip(f"skipped unsupported operation {what} at {where!r}: no weights, no MACs, shape unchanged")


def fold_batchnorm(weight: np.ndarray, bias: np.ndarray | None, gamma, beta, mean, var,
                   eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``y = gamma (x - mean) / sqrt(var + eps) + beta`` into the conv before it."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    b = np.zeros(weight.shape[0]) if bias is None else np.asarray(bias, np.float64)
    new_w = weight.astype(np.float64) * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    new_b = (b - np.asarray(mean, np.float64)) * scale + np.asarray(beta, np.float64)
    return new_w.astype(np.float32), new_b.astype(np.float32)
