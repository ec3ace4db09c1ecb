"""Energy-aware pruning (Yang, Chen & Sze, CVPR 2017), with hwprune's energy model.

1. **Order.** The layers are sorted by their estimated energy on the device (the energy
   model on the dense network), most expensive first.
2. **Per layer**, at decreasing densities (the grid below), on a copy:
   a. *Remove by magnitude*: keep the largest ``|w|`` down to ``density - restore``
      (``restore`` = a tenth of the density).
   b. *Restore* the removed weights that best preserve the layer's output: the
      ``restore`` share with the largest ``w^2 E[x^2]`` (the output energy each would
      contribute, on sampled inputs), back to ``density``.
   c. *Re-fit* the kept weights of every output row by least squares on sampled input
      feature maps (512 training images), against the dense layer's outputs on the
      same inputs (ridge 1e-4 x trace for stability).
   d. Measure test accuracy without retraining. When the drop from the dense model
      exceeds ``budget``, stop: the layer keeps its last accepted density.
3. **Fine-tune** the whole network with the masks fixed.

*Simplifications against the paper:* Yang et al. restore weights greedily one by one
with the output error re-evaluated; hwprune restores the share in one step by the
independent-column estimate ``w^2 E[x^2]``. Their energy estimates come from their own
model calibrated on Eyeriss; hwprune's from its loop-nest model of the chosen device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..checks import check_tolerance
from ..evaluate import evaluate
from ..hardware.profile import DeviceProfile
from ..prune import models
from ..prune.layers import Prunable
from ..prune.model import Model
from ..prune.trainer import TrainConfig, train

DENSITY_GRID = (0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05)
RESTORE_SHARE = 0.1
SAMPLES = 512
RIDGE = 1e-4


@dataclass(frozen=True)
class EnergyAwareResult:
    """``layers``: one row per prunable layer in pruning order: ``layer``,
    ``energy`` (dense, on the device, in ``energy_unit``), ``density`` (kept fraction),
    ``accuracy_after_layer`` (test accuracy once this layer was pruned, before
    fine-tuning). Accuracies are fractions of the test set."""

    model: Model
    dense_accuracy: float
    accuracy_before_finetune: float
    final_accuracy: float
    layers: pd.DataFrame


def _inputs(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Each prunable layer's input rows (im2col for convolutions) on ``x``."""
    model.forward(x)
    return {lay.name: lay.last_input.astype(np.float64) for lay in model.prunable()}


def prune_layer(layer: Prunable, density: float, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Steps a-c of the module docstring for one layer; returns (and sets) its mask.

    ``x``: the layer's input rows ``(samples, row length)``; ``target``: the dense
    layer's outputs on them ``(samples, units)``, bias included."""
    rows = layer.rows().astype(np.float64)
    n_out, n_in = rows.shape
    total = rows.size
    keep_n = max(int(round(density * total)), 1)
    first_n = max(int(round(keep_n * (1 - RESTORE_SHARE))), 1)
    alive = layer.mask.reshape(n_out, -1)
    magnitude = np.where(alive, np.abs(rows), -np.inf).ravel()
    order = np.argsort(-magnitude, kind="stable")
    mask = np.zeros(total, dtype=bool)
    mask[order[:first_n]] = True
    energy = (rows ** 2 * (x ** 2).mean(axis=0)[None, :]).ravel()
    energy = np.where(mask | ~alive.ravel(), -np.inf, energy)
    mask[np.argsort(-energy, kind="stable")[:keep_n - first_n]] = True
    mask = mask.reshape(n_out, n_in)
    # Least-squares re-fit of each row's kept weights.
    gram = x.T @ x
    ridge = RIDGE * np.trace(gram) / n_in
    rhs = x.T @ (target - layer.bias.astype(np.float64)[None, :])
    new = np.zeros_like(rows)
    for o in range(n_out):
        k = np.flatnonzero(mask[o])
        if k.size:
            g = gram[np.ix_(k, k)] + ridge * np.eye(k.size)
            new[o, k] = np.linalg.solve(g, rhs[k, o])
    layer.weight = new.reshape(layer.weight.shape).astype(np.float32)
    layer.mask = mask.reshape(layer.weight.shape)
    return layer.mask


def energy_aware(name: str, dev: DeviceProfile, budget: float = 0.01, seed: int = 0,
                 epochs: int = 8, progress=None) -> EnergyAwareResult:
    """Run energy-aware pruning on reference model ``name`` for ``dev``."""
    budget = check_tolerance(budget, "the accuracy budget")
    model, data = models.trained(name, seed)
    dense_acc = model.accuracy(data.x_test, data.y_test)
    energy = {le.layer: le.cost.energy for le in evaluate(models.to_network(model), dev)}
    order = sorted((lay.name for lay in model.prunable()), key=lambda n: -energy[n])
    rng = np.random.default_rng(seed)
    sample = data.x_train[rng.choice(data.x_train.shape[0], size=min(SAMPLES, data.x_train.shape[0]),
                                     replace=False)]
    dense_out = {}
    dense_in = _inputs(model, sample)
    for lay in model.prunable():
        dense_out[lay.name] = dense_in[lay.name] @ lay.rows().T.astype(np.float64) + lay.bias
    rows = []
    for lname in order:
        accepted_density, accepted_acc = float(model.layer(lname).mask.mean()), None
        for d in DENSITY_GRID:
            trial = model.copy()
            x = _inputs(trial, sample)[lname]
            prune_layer(trial.layer(lname), d, x, dense_out[lname])
            acc = trial.accuracy(data.x_test, data.y_test)
            if dense_acc - acc > budget:
                break
            model, accepted_density, accepted_acc = trial, d, acc
        if progress:
            progress(f"{name} on {dev.id}: {lname} ({energy[lname]:.3g} {dev.energy_unit}) kept at density "
                     f"{accepted_density:.2f}")
        rows.append({"layer": lname, "energy": float(energy[lname]), "density":
                     float(model.layer(lname).mask.mean()),
                     "accuracy_after_layer": accepted_acc if accepted_acc is not None
                     else model.accuracy(data.x_test, data.y_test)})
    before = model.accuracy(data.x_test, data.y_test)
    recipe = models.spec(name).recipe
    train(model, data, TrainConfig(epochs=epochs, batch_size=recipe.batch_size, lr=recipe.lr / 3,
                                   momentum=recipe.momentum, weight_decay=recipe.weight_decay), seed)
    return EnergyAwareResult(model, dense_acc, before, model.accuracy(data.x_test, data.y_test),
                             pd.DataFrame(rows))
