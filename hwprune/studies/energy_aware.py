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
      same inputs (ridge 1e-4 x trace for stability). The layer's inputs, their Gram
      matrix and the right-hand side are computed once per layer (the layers before it
      are fixed while its densities are tried). Rows of at most :data:`EXACT_ROW`
      weights are solved exactly (one Cholesky solve per output row); longer rows (a
      ResNet's 3x3x256 convolutions) by preconditioned conjugate gradients on all rows
      at once, restricted to each row's kept weights, started from the pruned weights
      and stopped at a relative residual of :data:`CG_TOLERANCE` (at most
      :data:`CG_ITERATIONS` steps): a per-row solve costs ``k^3`` for ``k`` kept
      weights, which at ResNet-18's widths is minutes per trial.
   d. Measure test accuracy without retraining. When the drop from the dense model
      exceeds ``budget``, stop: the layer keeps its last accepted density.
3. **Fine-tune** the whole network with the masks fixed.

*Simplifications against the paper:* Yang et al. restore weights greedily one by one
with the output error re-evaluated; hwprune restores the share in one step by the
independent-column estimate ``w^2 E[x^2]``. Their energy estimates come from their own
model calibrated on Eyeriss; hwprune's from its loop-nest model of the chosen device.
A layer whose input rows (samples x output positions) exceed ``MAX_ROWS`` is re-fitted
on ``MAX_ROWS`` of them, drawn at random (a large convolution of a torch model; the
reference models stay under it).

**Any model.** The policy runs through the model adapter
(:class:`~hwprune.prune.adapter.ModelAdapter`): the samples are the adapter's
``sample_inputs`` (a torch module: the first 512 inputs of its train loader), the layer
inputs its ``layer_inputs`` (forward hooks, ``F.unfold`` for a convolution; grouped
convolutions are refused), each trial restores its ``state`` and writes
``set_weights``/``set_masks``, accuracy is its ``evaluate``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..checks import check_tolerance
from ..evaluate import evaluate
from ..hardware.profile import DeviceProfile
from ..prune import models
from ..prune.adapter import ModelAdapter, NumpyAdapter, as_adapter
from ..prune.layers import Prunable
from ..prune.trainer import TrainConfig, train

DENSITY_GRID = (0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05)
RESTORE_SHARE = 0.1
SAMPLES = 512
RIDGE = 1e-4
MAX_ROWS = 200_000
EXACT_ROW = 1024
"""Rows (weights per output unit) up to this long are re-fitted by exact solves."""
CG_TOLERANCE = 1e-4
"""Conjugate gradients stop once every row's residual is this fraction of its
right-hand side's (both over the row's kept weights)."""
CG_ITERATIONS = 300


@dataclass(frozen=True)
class EnergyAwareResult:
    """``layers``: one row per prunable layer in pruning order: ``layer``,
    ``model``: the pruned model (a reference :class:`~hwprune.prune.model.Model`, or the
    torch module, pruned in place);
    ``energy`` (dense, on the device, in ``energy_unit``), ``density`` (kept fraction),
    ``accuracy_after_layer`` (test accuracy once this layer was pruned, before
    fine-tuning). Accuracies are fractions of the test set."""

    model: object
    dense_accuracy: float
    accuracy_before_finetune: float
    final_accuracy: float
    layers: pd.DataFrame


@dataclass(frozen=True)
class LayerFit:
    """One layer's least-squares problem on sampled inputs, built once for every
    density tried: ``x`` the input rows ``(samples, row length)``, ``gram`` = ``x^T x``
    (None when ``x`` has fewer rows than columns: products go through ``x``),
    ``rhs`` = ``x^T (target - bias)`` ``(row length, units)``, ``ridge`` (added to
    the diagonal), ``power`` = ``E[x^2]`` per column."""

    x: np.ndarray
    gram: np.ndarray | None
    rhs: np.ndarray
    ridge: float
    power: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, target: np.ndarray, bias) -> "LayerFit":
        """``target``: the dense layer's outputs on ``x`` ``(samples, units)``, bias
        included; ``bias``: the layer's bias (or None)."""
        x = np.asarray(x, dtype=np.float64)
        n_in = x.shape[1]
        gram = x.T @ x if x.shape[0] >= n_in else None
        trace = float(np.trace(gram)) if gram is not None else float((x * x).sum())
        b = 0.0 if bias is None else np.asarray(bias, dtype=np.float64)[None, :]
        rhs = x.T @ (np.asarray(target, dtype=np.float64) - b)
        return cls(x, gram, rhs, RIDGE * trace / n_in, (x ** 2).mean(axis=0))

    def times(self, w: np.ndarray) -> np.ndarray:
        """``w (x^T x + ridge I)`` for rows ``w`` ``(units, row length)``."""
        wg = w @ self.gram if self.gram is not None else (w @ self.x.T) @ self.x
        return wg + self.ridge * w

    def diagonal(self) -> np.ndarray:
        return (np.diag(self.gram) if self.gram is not None else (self.x ** 2).sum(axis=0)) + self.ridge


def prune_layer(layer: Prunable, density: float, x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Steps a-c of the module docstring for one reference-model layer; returns (and
    sets) its mask, and sets its weights (see :func:`refit`)."""
    layer.weight, layer.mask = refit(layer, density, LayerFit.of(x, target, layer.bias))
    return layer.mask


def refit(layer, density: float, fit: LayerFit) -> tuple[np.ndarray, np.ndarray]:
    """Steps a-c of the module docstring for one layer; returns its new (weight, mask),
    each of the weight's shape (an adapter's caller sets them: ``adapter.set_weights``,
    then ``adapter.set_masks``).

    ``layer``: a layer view (``weight``, ``mask``, ``rows()``); ``fit``: its
    least-squares problem (:meth:`LayerFit.of`)."""
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
    energy = (rows ** 2 * fit.power[None, :]).ravel()
    energy = np.where(mask | ~alive.ravel(), -np.inf, energy)
    mask[np.argsort(-energy, kind="stable")[:keep_n - first_n]] = True
    mask = mask.reshape(n_out, n_in)
    if n_in <= EXACT_ROW:
        new = _exact(fit, mask)
    else:
        new = masked_cg(fit, mask, np.where(mask, rows, 0.0))
    shape = layer.weight.shape
    return new.reshape(shape).astype(np.float32), mask.reshape(shape)


def _exact(fit: LayerFit, mask: np.ndarray) -> np.ndarray:
    """Each row's kept weights solved exactly: ``(G_kk + ridge I) w_k = rhs_k``."""
    gram = fit.gram if fit.gram is not None else fit.x.T @ fit.x
    new = np.zeros(mask.shape)
    for o in range(mask.shape[0]):
        k = np.flatnonzero(mask[o])
        if k.size:
            g = gram[np.ix_(k, k)] + fit.ridge * np.eye(k.size)
            new[o, k] = np.linalg.solve(g, fit.rhs[k, o])
    return new


def masked_cg(fit: LayerFit, mask: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Every row's ``(G_kk + ridge I) w_k = rhs_k`` over its kept weights ``k``
    (``mask``) at once, by Jacobi-preconditioned conjugate gradients from ``start``
    (zero off the mask), each row with its own step sizes; stops when every row's
    residual is at most :data:`CG_TOLERANCE` of its right-hand side, or after
    :data:`CG_ITERATIONS` steps."""
    m = mask.astype(np.float64)
    b = fit.rhs.T * m
    w = start * m
    r = b - fit.times(w) * m
    inv_d = m / fit.diagonal()[None, :]
    z = r * inv_d
    p = z.copy()
    rz = (r * z).sum(axis=1)
    goal = (CG_TOLERANCE * np.linalg.norm(b, axis=1)) ** 2
    for _ in range(CG_ITERATIONS):
        active = (r * r).sum(axis=1) > goal
        if not active.any():
            break
        ap = fit.times(p) * m
        pap = (p * ap).sum(axis=1)
        alpha = np.where(active & (pap > 0), rz / np.where(pap > 0, pap, 1.0), 0.0)
        w += alpha[:, None] * p
        r -= alpha[:, None] * ap
        z = r * inv_d
        rz_new = (r * z).sum(axis=1)
        beta = np.where(rz > 0, rz_new / np.where(rz > 0, rz, 1.0), 0.0)
        p = z + beta[:, None] * p
        rz = rz_new
    return w


def _rows_subset(n_rows: int, seed: int, index: int) -> np.ndarray | slice:
    """Which input rows a layer's re-fit uses: all, or ``MAX_ROWS`` of them drawn
    without replacement (a large convolution's sample x positions)."""
    if n_rows <= MAX_ROWS:
        return slice(None)
    rng = np.random.default_rng([seed, index])
    return np.sort(rng.choice(n_rows, size=MAX_ROWS, replace=False))


def _finetune(adapter: ModelAdapter, epochs: int, seed: int) -> None:
    """Step 3: the reference recipe at a third of its rate, or the adapter's fine-tuning
    (a torch module's ``finetune``, or its default loop at a third of its rate)."""
    if isinstance(adapter, NumpyAdapter):
        r = adapter.recipe
        train(adapter.model, adapter.data, TrainConfig(epochs=epochs, batch_size=r.batch_size,
                                                       lr=r.lr / 3, momentum=r.momentum,
                                                       weight_decay=r.weight_decay), seed)
    else:
        adapter.finetune(epochs, 1 / 3, seed)


def energy_aware(model: str | ModelAdapter, dev: DeviceProfile, budget: float = 0.01, seed: int = 0,
                 epochs: int = 8, progress=None) -> EnergyAwareResult:
    """Run energy-aware pruning on ``model`` for ``dev``: a reference model name, or a
    :class:`~hwprune.prune.adapter.ModelAdapter` (a torch module with a train loader,
    whose first :data:`SAMPLES` inputs are the re-fit's samples; accuracies from its
    ``evaluate``, ``epochs`` of its fine-tuning at the end). A torch module is pruned in
    place: the trials start from its state at the call; it is left pruned."""
    budget = check_tolerance(budget, "the accuracy budget")
    if isinstance(model, str):
        trained, data = models.trained(model, seed)
        adapter: ModelAdapter = NumpyAdapter(trained, data, models.spec(model).recipe)
    else:
        adapter = as_adapter(model)
    if epochs and not isinstance(adapter, NumpyAdapter):
        from ..prune.criteria import criterion

        adapter.require(criterion("magnitude"), epochs)
    name = adapter.name
    dense_acc = adapter.evaluate()
    energy = {le.layer: le.cost.energy for le in evaluate(adapter.network(), dev)}
    layers = {lay.name: lay for lay in adapter.prunable()}
    order = sorted(layers, key=lambda n: -energy[n])
    sample = adapter.sample_inputs(SAMPLES, seed)
    dense_in = adapter.layer_inputs(sample)
    subset = {n: _rows_subset(dense_in[n].shape[0], seed, i) for i, n in enumerate(layers)}
    dense_out, bias = {}, {}
    for lname, lay in layers.items():
        bias[lname] = lay.bias
        dense_out[lname] = dense_in[lname][subset[lname]] @ lay.rows().T.astype(np.float64) + bias[lname]
    del dense_in
    rows = []
    accepted = adapter.state()
    for lname in order:
        accepted_density, accepted_acc = float(adapter.layer(lname).mask.mean()), None
        # Its inputs as the layers pruned so far leave them (fixed while it is tried).
        fit = LayerFit.of(adapter.layer_inputs(sample)[lname][subset[lname]], dense_out.pop(lname),
                          bias[lname])
        for d in DENSITY_GRID:
            adapter.load_state(accepted)
            weight, mask = refit(adapter.layer(lname), d, fit)
            adapter.set_weights({lname: weight})
            adapter.set_masks({lname: mask})
            acc = adapter.evaluate()
            if dense_acc - acc > budget:
                break
            accepted, accepted_density, accepted_acc = adapter.state(), d, acc
        adapter.load_state(accepted)
        if progress:
            progress(f"{name} on {dev.id}: {lname} ({energy[lname]:.3g} {dev.energy_unit}) kept at density "
                     f"{accepted_density:.2f}")
        rows.append({"layer": lname, "energy": float(energy[lname]), "density":
                     float(adapter.layer(lname).mask.mean()),
                     "accuracy_after_layer": accepted_acc if accepted_acc is not None
                     else adapter.evaluate()})
    before = adapter.evaluate()
    _finetune(adapter, epochs, seed)
    return EnergyAwareResult(adapter.model, dense_acc, before, adapter.evaluate(), pd.DataFrame(rows))
