"""The torch model adapter: every pruning policy on any ``torch.nn.Module``.

``TorchAdapter(module, example_input, evaluate=..., finetune=..., loaders=...)`` wraps
a module for the policies of :mod:`hwprune.prune.schedules` and
:mod:`hwprune.studies.sensitivity` (see :mod:`.adapter` for the contract). torch is
imported only when one is built (``pip install 'hwprune[torch]'``).

* **Prunable layers** are the module's ``Conv2d`` and ``Linear`` layers, by qualified
  name (``features.0``, ``layer1.0.conv1``): the names and the execution order of
  :func:`hwprune.workload.torch_import.from_torch`, whose network the adapter returns
  for the cost models. The module is traced once, on ``example_input``.
* **Masks live in torch** through ``torch.nn.utils.prune.custom_from_mask`` (installed
  on the first mask, all ones until then): ``weight = weight_orig * weight_mask`` on
  every forward, so gradients reach only the kept weights while fine-tuning. A row
  (output unit) whose weights are all pruned also gets its bias masked, so that it
  outputs zero before any batch norm (hwprune's convention for a removed unit). The
  module is pruned in place; ``torch.nn.utils.prune.remove`` makes it permanent.
* **Node pruning** masks, in every conv or linear layer a removed unit reaches through
  activations, pooling, batch norm, flatten and residual adds, the weights that read
  it. Layers whose units meet in a residual add, and a depthwise convolution with the
  layer feeding it, lose the same units (the groups of
  :func:`hwprune.workload.torch_import.coupled_groups`, Torch-Pruning's DepGraph; the
  group's unit scores are each member's over its mean, averaged). A unit that reaches
  a concatenation or a grouped (not depthwise) convolution is refused for now.
* **Evaluation and fine-tuning**: the user's ``evaluate(model) -> float`` (higher is
  better) and ``finetune(model, epochs)``; or ``loaders=(train_loader, test_loader)``,
  each yielding ``(inputs, class labels)`` batches, with the defaults: top-1 accuracy
  on the test loader (a fraction) and :class:`TorchRecipe` (SGD with momentum,
  cross-entropy). A callback wins over the loader for its job. With a ``finetune``
  callback a schedule's step is one epoch (hwprune cannot reach inside it).
* **Statistics** for the data-driven criteria (activation, apoz, taylor, obd) come from
  forward hooks on the first ``STAT_BATCHES`` batches of the train loader, with the
  module in eval mode (batch-norm statistics and dropout left alone) and cross-entropy
  as the loss; the same quantities as :mod:`.statistics` computes for the numpy models.
  A grouped convolution's input statistics are averaged over its groups (a
  simplification).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError
from .adapter import ModelAdapter
from .model import expand_units
from .statistics import LayerStatistics

STAT_BATCHES = 4
PASS_KINDS_STOP = ("conv", "fc")
COUPLED_KINDS = ("add", "concat")
MIXING_KINDS = ("matmul", "reshape", "permute", "slice", "select", "shuffle", "expand", "reduce")
"""Layer kinds that move or mix channels: node pruning does not follow units through
them (the units' positions after them are not tracked yet)."""
LOADERS_ACCEPTED = ("loaders=(train_loader, test_loader): two re-iterable loaders, each yielding "
                    "(inputs, labels) batches, inputs a float tensor the module accepts and labels "
                    "an integer tensor of class indices, one per input")


def torch_or_error():
    try:
        import torch
        import torch.nn.utils.prune  # noqa: F401
    except ImportError:
        raise InputError("pruning a PyTorch module needs torch: pip install 'hwprune[torch]'") from None
    return torch


@dataclass(frozen=True)
class TorchRecipe:
    """The default training of a torch model given loaders: SGD with ``momentum`` and
    ``weight_decay`` (on every parameter), cross-entropy loss, constant learning rate
    ``lr`` (unitless, per step); fine-tuning runs at ``lr`` times the schedule's scale
    (a third: 0.01 by default). Batches are the train loader's."""

    lr: float = 0.03
    momentum: float = 0.9
    weight_decay: float = 1e-4

    def __post_init__(self):
        if not self.lr > 0 or not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise InputError(f"torch recipe: lr > 0, 0 <= momentum < 1 and weight_decay >= 0 are "
                             f"accepted, got {self}")


class TorchLayer:
    """One prunable conv/linear module seen as the criteria see a layer: ``weight`` the
    stored weights (numpy float32 copy, pruned ones zero), ``mask`` (numpy bool)."""

    def __init__(self, name: str, module):
        self.name, self.module = name, module

    def _param(self):
        return getattr(self.module, "weight_orig", None) if hasattr(self.module, "weight_mask") \
            else self.module.weight

    @property
    def weight(self) -> np.ndarray:
        return self._param().detach().cpu().numpy().astype(np.float32, copy=True)

    @property
    def mask(self) -> np.ndarray:
        m = getattr(self.module, "weight_mask", None)
        if m is None:
            return np.ones(tuple(self.module.weight.shape), dtype=bool)
        return m.detach().cpu().numpy().astype(bool)

    def rows(self) -> np.ndarray:
        w = self.weight
        return w.reshape(w.shape[0], -1)

    @property
    def bias(self) -> np.ndarray:
        """The stored bias (numpy float32 copy; zeros for a layer without one)."""
        b = getattr(self.module, "bias_orig", None) if hasattr(self.module, "bias_mask") \
            else self.module.bias
        if b is None:
            return np.zeros(self.module.weight.shape[0], dtype=np.float32)
        return b.detach().cpu().numpy().astype(np.float32, copy=True)


_REBUILT: dict = {}


def from_source(source, recipe: TorchRecipe | None = None) -> TorchAdapter:
    """A :class:`TorchAdapter` of the user's model and data built from their specs
    (``source``, a :class:`~hwprune.workload.factory.UserSource`): the modules imported
    and the factories called here, as the command line does."""
    user, data = source.load()
    adapter = TorchAdapter(user.module, user.example_input, recipe=recipe,
                           **({} if data is None else data.adapter_args()))
    adapter.source = source
    return adapter


def rebuilt(source, recipe: TorchRecipe | None = None) -> TorchAdapter:
    """:func:`from_source`, once per process and thread (a study's worker runs many tasks
    of one model; each loads the weights it starts from), with the masks installed so
    that a pruned state loads into it."""
    import threading

    key = (source, recipe, threading.get_ident())
    if key not in _REBUILT:
        adapter = from_source(source, recipe)
        adapter.state()                         # installs every layer's mask
        _REBUILT[key] = adapter
    return _REBUILT[key]


def _number(value, what: str) -> float:
    torch = torch_or_error()
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise InputError(f"{what} must return a finite number (higher is better, e.g. accuracy as a "
                         f"fraction), got {type(value).__name__} {value!r:.60}")
    return float(value)


class TorchAdapter(ModelAdapter):
    """A torch module with its example input and its evaluation and training (see the
    module docstring). ``evaluate(model) -> float``, ``finetune(model, epochs)``,
    ``loaders=(train_loader, test_loader)``; ``recipe``: the default training."""

    kind = "torch"
    source = None
    """A :class:`~hwprune.workload.factory.UserSource` when the module and data came from
    ``MODULE:FACTORY`` specs, so that a study's worker process can build them again
    (:func:`rebuilt`); None for a module handed over in memory."""

    def __init__(self, module, example_input, evaluate: Callable | None = None,
                 finetune: Callable | None = None, loaders=None, recipe: TorchRecipe | None = None,
                 name: str | None = None):
        torch = torch_or_error()
        from ..workload.torch_import import from_torch

        if not isinstance(module, torch.nn.Module):
            raise InputError(f"model must be a torch.nn.Module or a reference model name, got "
                             f"{type(module).__name__}")
        for what, form, fn in (("evaluate", "evaluate(model) -> float", evaluate),
                               ("finetune", "finetune(model, epochs)", finetune)):
            if fn is not None and not callable(fn):
                raise InputError(f"{what} must be a function {form}, got {type(fn).__name__}")
        self._evaluate, self._finetune = evaluate, finetune
        self.train_loader, self.test_loader = self._check_loaders(loaders)
        if evaluate is None and self.test_loader is None:
            raise InputError("a torch model needs an evaluation: evaluate=function(model) -> float "
                             "(higher is better), or " + LOADERS_ACCEPTED)
        self.recipe = recipe or TorchRecipe()
        self.module, self.example_input = module, example_input
        self.imported = from_torch(module, example_input, name)
        self.name = self.imported.network.name
        self._layers = []
        for layer in self.imported.network.weighted_layers:
            try:
                mod = module.get_submodule(layer.name)
            except AttributeError:
                continue
            if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
                self._layers.append(TorchLayer(layer.name, mod))
        if not self._layers:
            raise InputError(f"{self.name}: no Conv2d or Linear layer to prune")
        self._splice = False
        self._couplings = None
        self._consumers = {lay.name: self._walk(lay.name) for lay in self._layers}
        if self.test_loader is not None:
            self._check_batch(self.test_loader, "test_loader")
        if self.train_loader is not None:
            self._check_batch(self.train_loader, "train_loader")

    # -- checks ----------------------------------------------------------------------
    @staticmethod
    def _check_loaders(loaders):
        if loaders is None:
            return None, None
        if not isinstance(loaders, (tuple, list)) or len(loaders) != 2:
            raise InputError(f"{LOADERS_ACCEPTED}; got {type(loaders).__name__}"
                             + (f" of {len(loaders)}" if isinstance(loaders, (tuple, list)) else ""))
        for what, loader in zip(("train_loader", "test_loader"), loaders):
            if loader is not None and not hasattr(loader, "__iter__"):
                raise InputError(f"{what} is not iterable ({type(loader).__name__}); {LOADERS_ACCEPTED}")
            if loader is not None and iter(loader) is loader:
                raise InputError(f"{what} is a one-shot iterator; {LOADERS_ACCEPTED} (a DataLoader "
                                 "or a list of batches)")
        return loaders[0], loaders[1]

    def _check_batch(self, loader, what: str) -> None:
        torch = torch_or_error()
        try:
            batch = next(iter(loader))
        except StopIteration:
            raise InputError(f"{what} yields no batches; {LOADERS_ACCEPTED}") from None
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise InputError(f"{what} yields {type(batch).__name__}, not (inputs, labels); "
                             + LOADERS_ACCEPTED)
        x, y = batch[0], batch[1]
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) \
                or y.dtype.is_floating_point or y.dim() != 1 or y.shape[0] != x.shape[0]:
            raise InputError(f"{what}: a batch is ({type(x).__name__} {tuple(getattr(x, 'shape', ()))}, "
                             f"{type(y).__name__} {tuple(getattr(y, 'shape', ()))} "
                             f"{getattr(y, 'dtype', '')}); {LOADERS_ACCEPTED}")
        was = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                out = self.module(x[:2].to(self._device()))
        except Exception as exc:
            raise InputError(f"{what}: the module does not run on its inputs of shape "
                             f"{tuple(x.shape)}: {' '.join(str(exc).split())[:200]}") from None
        finally:
            self.module.train(was)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise InputError(f"{what}: the default loss and accuracy need the module to output "
                             f"(batch, classes) logits, got {tuple(getattr(out, 'shape', ()))}; "
                             "pass evaluate= and finetune= callbacks instead")
        if int(y.max()) >= out.shape[1] or int(y.min()) < 0:
            raise InputError(f"{what}: labels run {int(y.min())}..{int(y.max())}, outside the "
                             f"module's {out.shape[1]} classes")

    def require(self, criterion, epochs):
        if criterion.needs_data and self.train_loader is None:
            raise InputError(f"criterion {criterion.name!r} needs training batches for its "
                             f"statistics; pass {LOADERS_ACCEPTED} (the evaluate/finetune callbacks "
                             "alone suffice for magnitude, random and dns)")
        if epochs and self._finetune is None and self.train_loader is None:
            raise InputError(f"fine-tuning {epochs} epochs needs finetune=function(model, epochs) or "
                             f"{LOADERS_ACCEPTED}; or pass epochs=0")
        if criterion.splice and epochs and self._finetune is not None:
            raise InputError(f"criterion {criterion.name!r} splices pruned weights back while "
                             "training, inside each step; a finetune callback hides its steps: pass "
                             "loaders=(train_loader, test_loader) without finetune=")

    # -- layers and masks --------------------------------------------------------------
    @property
    def model(self):
        return self.module

    def prunable(self):
        return list(self._layers)

    def _install(self, lay: TorchLayer) -> None:
        torch = torch_or_error()
        from torch.nn.utils import prune

        mod = lay.module
        if not hasattr(mod, "weight_mask"):
            prune.custom_from_mask(mod, "weight", torch.ones_like(mod.weight, dtype=torch.bool))
        if mod.bias is not None and not hasattr(mod, "bias_mask"):
            prune.custom_from_mask(mod, "bias", torch.ones_like(mod.bias, dtype=torch.bool))

    def set_masks(self, masks):
        torch = torch_or_error()
        for lay in self._layers:
            if lay.name not in masks:
                continue
            mask = np.asarray(masks[lay.name], dtype=bool)
            if mask.shape != tuple(lay.module.weight.shape):
                raise InputError(f"{lay.name}: mask shape {mask.shape} does not match its weight "
                                 f"{tuple(lay.module.weight.shape)}")
            self._install(lay)
            mod = lay.module
            with torch.no_grad():
                m = torch.as_tensor(mask, device=mod.weight_mask.device)
                mod.weight_mask.copy_(m.to(mod.weight_mask.dtype))
                if hasattr(mod, "bias_mask"):
                    alive = torch.as_tensor(mask.reshape(mask.shape[0], -1).any(axis=1))
                    mod.bias_mask.copy_(alive.to(mod.bias_mask.dtype))
                if not self._splice:
                    mod.weight_orig.mul_(m.to(mod.weight_orig.dtype))
                # Recompute the masked parameters now (prune's hook does it on each forward).
                mod.weight = mod.weight_orig * mod.weight_mask
                if hasattr(mod, "bias_mask"):
                    mod.bias = mod.bias_orig * mod.bias_mask

    def _walk(self, name: str) -> list[tuple[str, str | None]]:
        """What reads ``name``'s units, walking through activations, pooling, batch norm,
        flatten and residual adds: (conv/linear layer, None) for a layer whose inputs
        are masked; (operation, why) where node pruning cannot follow; ("", "add") /
        ("", "depthwise") markers where the units are coupled with other layers'."""
        net = self.imported.network
        readers: dict[str, list] = {}
        for layer in net:
            for src in layer.inputs:
                readers.setdefault(src, []).append(layer)
        out, todo, seen = [], [name], set()
        while todo:
            cur = todo.pop()
            for r in readers.get(cur, []):
                if r.name in seen:
                    continue
                seen.add(r.name)
                if r.kind in PASS_KINDS_STOP:
                    mod = self.module.get_submodule(r.name)
                    depthwise = getattr(mod, "groups", 1) > 1 and mod.groups == mod.in_channels \
                        == mod.out_channels
                    if depthwise:
                        out.append(("", "depthwise"))     # it keeps the units of what feeds it
                    elif r.groups > 1:
                        out.append((r.name, f"its output reaches the grouped convolution {r.name!r} "
                                            f"(groups={r.groups}), whose channel groups would have "
                                            "to shrink evenly"))
                    else:
                        out.append((r.name, None))
                elif r.kind == "add":
                    out.append(("", "add"))
                    todo.append(r.name)
                elif r.kind in COUPLED_KINDS:
                    out.append((r.name, f"its output reaches the {r.kind} {r.name!r}, whose readers "
                                        "the torch adapter cannot slice yet"))
                elif r.kind in MIXING_KINDS:
                    out.append((r.name, f"its output reaches the {r.kind} layer {r.name!r}, which "
                                        "moves or mixes channels; node pruning does not follow "
                                        "units through it yet"))
                else:
                    todo.append(r.name)
        return out

    def _coupling(self):
        """(groups of coupled layers, {layer: why its group cannot lose units}), from
        :func:`hwprune.workload.torch_import.coupled_groups` (Torch-Pruning's DepGraph),
        computed once and only when some layer's units reach an add or a depthwise conv."""
        if self._couplings is None:
            from ..workload.torch_import import coupled_groups

            every = coupled_groups(self.module, self.example_input)
            free = set(coupled_groups(self.module, self.example_input, prunable_only=True))
            blocked = {m: g for g in every if g not in free for m in g}
            self._couplings = ([g for g in every if len(g) > 1], blocked)
        return self._couplings

    def _coupled(self) -> bool:
        return any(why in ("add", "depthwise") for walk in self._consumers.values() for _, why in walk)

    def unit_couplings(self):
        return self._coupling()[0] if self._coupled() else []

    def check_consumers(self, name):
        for reader, why in self._consumers.get(name, []):
            if why in ("add", "depthwise"):
                blocked = self._coupling()[1]
                if name in blocked:
                    group = blocked[name]
                    raise InputError(f"node pruning {name!r}: its units are coupled with "
                                     f"{', '.join(group)}, which cannot lose units (the network's "
                                     "output layers, a grouped or partial coupling); choose another "
                                     "granularity for these layers (a per-layer granularity mapping)")
            elif why:
                raise InputError(f"node pruning {name!r}: {why}; choose another granularity for this "
                                 "layer (a per-layer granularity mapping)")

    def consumer_masks(self, name, keep_units):
        self.check_consumers(name)
        by_name = {lay.name: lay for lay in self._layers}
        return {reader: np.asarray(expand_units(by_name[reader], keep_units))
                for reader, why in self._consumers.get(name, []) if why is None and reader in by_name}

    def set_splice(self, splice):
        self._splice = bool(splice)

    # -- state -----------------------------------------------------------------------
    def state(self):
        """The module's ``state_dict`` (cloned); masks are installed first (all ones where
        none was set), so that every saved state loads back into the pruned module."""
        torch = torch_or_error()
        for lay in self._layers:
            self._install(lay)
        with torch.no_grad():
            return {k: v.detach().clone() for k, v in self.module.state_dict().items()}

    def load_state(self, state):
        torch = torch_or_error()
        with torch.no_grad():
            self.module.load_state_dict(state)
            for lay in self._layers:          # the masked parameters, as the next forward makes them
                mod = lay.module
                if hasattr(mod, "weight_mask"):
                    mod.weight = mod.weight_orig * mod.weight_mask
                if hasattr(mod, "bias_mask"):
                    mod.bias = mod.bias_orig * mod.bias_mask

    def network(self):
        return self.imported.network

    # -- energy-aware pruning ----------------------------------------------------------
    def sample_inputs(self, n, seed):
        """The first ``n`` inputs of the train loader (its order under ``torch.manual_seed(seed)``)."""
        torch = torch_or_error()
        if self.train_loader is None:
            raise InputError("energy-aware pruning re-fits each layer on sampled training inputs; "
                             "pass " + LOADERS_ACCEPTED)
        torch.manual_seed(seed)
        got, count = [], 0
        for batch in self.train_loader:
            got.append(batch[0])
            count += int(batch[0].shape[0])
            if count >= n:
                break
        return torch.cat(got)[:n]

    def layer_inputs(self, x):
        """Forward hooks on the prunable layers (eval mode, no gradients); a convolution's
        input is unfolded to its im2col rows (numpy, as the reference models do it).
        Grouped convolutions are refused (their rows differ per group)."""
        torch = torch_or_error()

        for lay in self._layers:
            if getattr(lay.module, "groups", 1) > 1:
                raise InputError(f"{lay.name}: a grouped convolution (groups={lay.module.groups}) "
                                 "has one input row per group; energy-aware re-fitting supports "
                                 "groups=1 only")
        seen, handles = {}, []
        for lay in self._layers:
            handles.append(lay.module.register_forward_hook(
                lambda m, a, o, n=lay.name: seen.__setitem__(n, a[0].detach())))
        was = self.module.training
        self.module.eval()
        try:
            with torch.no_grad():
                self.module(x.to(self._device()))
        finally:
            for h in handles:
                h.remove()
            self.module.train(was)
        out = {}
        for lay in self._layers:
            inp, mod = seen[lay.name].cpu().numpy(), lay.module
            if isinstance(mod, torch.nn.Conv2d):
                out[lay.name] = _im2col(inp, mod)
            else:
                out[lay.name] = inp.reshape(-1, inp.shape[-1]).astype(np.float64)
        return out

    def set_weights(self, weights):
        torch = torch_or_error()
        for lay in self._layers:
            if lay.name not in weights:
                continue
            w = np.asarray(weights[lay.name], dtype=np.float32)
            mod = lay.module
            if w.shape != tuple(mod.weight.shape):
                raise InputError(f"{lay.name}: weight shape {w.shape} does not match its weight "
                                 f"{tuple(mod.weight.shape)}")
            with torch.no_grad():
                param = mod.weight_orig if hasattr(mod, "weight_mask") else mod.weight
                param.copy_(torch.as_tensor(w, device=param.device))
                if hasattr(mod, "weight_mask"):
                    mod.weight = mod.weight_orig * mod.weight_mask

    # -- evaluation and training -------------------------------------------------------
    def evaluate(self):
        torch = torch_or_error()
        if self._evaluate is not None:
            return _number(self._evaluate(self.module), "evaluate(model)")
        was = self.module.training
        self.module.eval()
        correct = total = 0
        try:
            with torch.no_grad():
                for batch in self.test_loader:
                    x, y = self._to_device(batch)
                    correct += int((self.module(x).argmax(dim=1) == y).sum())
                    total += int(y.shape[0])
        finally:
            self.module.train(was)
        if not total:
            raise InputError(f"test_loader yields no batches; {LOADERS_ACCEPTED}")
        return correct / total

    def steps_per_epoch(self):
        if self._finetune is not None or self.train_loader is None:
            return 1
        try:
            return max(len(self.train_loader), 1)
        except TypeError:
            return max(sum(1 for _ in self.train_loader), 1)

    def finetune(self, epochs, lr_scale, seed, on_step=None):
        torch = torch_or_error()
        if not epochs:
            return
        torch.manual_seed(seed)
        if self._finetune is not None:
            for e in range(epochs):
                if on_step is not None:
                    on_step(e, epochs)
                self._finetune(self.module, 1)
                self._reapply()
            return
        for lay in self._layers:
            self._install(lay)
        r = self.recipe
        opt = torch.optim.SGD([p for p in self.module.parameters() if p.requires_grad],
                              lr=r.lr * lr_scale, momentum=r.momentum, weight_decay=r.weight_decay)
        loss_fn = torch.nn.CrossEntropyLoss()
        total = self.steps_per_epoch() * epochs
        step, full = 0, {}
        handles = []
        if self._splice:     # surgery: pruned weights get the gradient of the masked weight
            for lay in self._layers:
                def keep_grad(mod, args, name=lay.name):
                    if mod.weight.requires_grad:
                        mod.weight.register_hook(lambda g, n=name: full.__setitem__(n, g))
                handles.append(lay.module.register_forward_pre_hook(keep_grad))
        was = self.module.training
        self.module.train()
        try:
            for _ in range(epochs):
                for batch in self.train_loader:
                    if on_step is not None:
                        on_step(step, total)
                    opt.zero_grad()
                    x, y = self._to_device(batch)
                    loss = loss_fn(self.module(x), y)
                    loss.backward()
                    if self._splice:
                        for lay in self._layers:
                            if lay.name in full:
                                lay.module.weight_orig.grad = full.pop(lay.name).clone()
                    opt.step()
                    if not self._splice:
                        self._reapply()
                    step += 1
        finally:
            for h in handles:
                h.remove()
            self.module.train(was)

    def _device(self):
        return next(iter(self.module.parameters())).device

    def _to_device(self, batch):
        """A batch's (inputs, labels) on the module's device."""
        dev = self._device()
        return batch[0].to(dev), batch[1].to(dev)

    def _reapply(self) -> None:
        """Zero the pruned stored weights again (weight decay and momentum may have moved
        them; the effective weights stayed zero through the mask)."""
        torch = torch_or_error()
        with torch.no_grad():
            for lay in self._layers:
                mod = lay.module
                if hasattr(mod, "weight_mask"):
                    mod.weight_orig.mul_(mod.weight_mask.to(mod.weight_orig.dtype))

    # -- statistics ------------------------------------------------------------------
    def statistics(self, seed):
        torch = torch_or_error()
        import torch.nn.functional as F

        if self.train_loader is None:
            raise InputError("the data-driven criteria need " + LOADERS_ACCEPTED)
        for lay in self._layers:
            self._install(lay)
        acc = {lay.name: {k: [] for k in ("iabs", "izero", "omean", "ozero", "taylor", "fisher")}
               for lay in self._layers}
        seen: dict[str, dict] = {}
        handles = []

        def hook(mod, args, out, name):
            x = args[0].detach()
            rec = seen.setdefault(name, {})
            rec["x"] = x
            rec["z"] = out.detach()
            if out.requires_grad:
                out.register_hook(lambda g: rec.__setitem__("g", g.detach()))

        for lay in self._layers:
            handles.append(lay.module.register_forward_hook(
                lambda m, a, o, n=lay.name: hook(m, a, o, n)))
        was = self.module.training
        self.module.eval()
        loss_fn = torch.nn.CrossEntropyLoss()
        try:
            for b, batch in enumerate(self.train_loader):
                if b >= STAT_BATCHES:
                    break
                x, y = self._to_device(batch)
                self.module.zero_grad(set_to_none=True)
                seen.clear()
                loss_fn(self.module(x), y).backward()
                n = int(y.shape[0])
                for lay in self._layers:
                    rec = seen.get(lay.name)
                    if rec is None or "g" not in rec:
                        raise InputError(f"{lay.name}: no activation or gradient reached it in a "
                                         "forward and backward pass; the data-driven criteria need "
                                         "every prunable layer on the path to the loss")
                    cols, grad = _rows(F, lay.module, rec["x"], rec["g"])   # (n, G, K, P), (n, G, O, P)
                    a = acc[lay.name]
                    cd = cols.double()
                    a["iabs"].append(cd.abs().mean(dim=(0, 1, 3)).cpu().numpy())
                    a["izero"].append((cd == 0).double().mean(dim=(0, 1, 3)).cpu().numpy())
                    z = rec["z"].double()
                    zr = z.reshape(z.shape[0], z.shape[1], -1)
                    a["omean"].append(zr.clamp(min=0).mean(dim=(0, 2)).cpu().numpy())
                    a["ozero"].append((zr <= 0).double().mean(dim=(0, 2)).cpu().numpy())
                    w = lay.module.weight_orig
                    a["taylor"].append((w.grad.double() * w.detach().double()).cpu().numpy())
                    delta = grad.double() * n      # per-sample loss gradient
                    per = torch.einsum("ngop,ngkp->ngok", delta, cd)
                    a["fisher"].append(((per ** 2).sum(dim=0) / n).reshape(w.shape).cpu().numpy())
        finally:
            for h in handles:
                h.remove()
            self.module.zero_grad(set_to_none=True)
            self.module.train(was)
        out = {}
        for name, a in acc.items():
            if not a["iabs"]:
                raise InputError(f"train_loader yields no batches; {LOADERS_ACCEPTED}")
            out[name] = LayerStatistics(
                input_abs_mean=np.mean(a["iabs"], axis=0), input_zero_fraction=np.mean(a["izero"], axis=0),
                output_mean=np.mean(a["omean"], axis=0), output_zero_fraction=np.mean(a["ozero"], axis=0),
                taylor=np.stack(a["taylor"]), fisher=np.mean(a["fisher"], axis=0))
        return out


def _rows(F, mod, x, g):
    """A layer's input as im2col rows and its output gradient, grouped:
    ``(n, groups, row length, positions)`` and ``(n, groups, out / groups, positions)``."""
    n = x.shape[0]
    if x.dim() == 2 or not hasattr(mod, "kernel_size"):   # linear
        x2 = x.reshape(n, -1) if x.dim() == 2 else x.reshape(-1, x.shape[-1])
        g2 = g.reshape(x2.shape[0], -1)
        return x2[:, None, :, None], g2[:, None, :, None]
    groups = mod.groups
    cols = F.unfold(x, mod.kernel_size, dilation=mod.dilation, padding=mod.padding, stride=mod.stride)
    positions = cols.shape[-1]
    cols = cols.reshape(n, groups, -1, positions)
    grad = g.reshape(n, groups, -1, positions)
    return cols, grad


def _im2col(x: np.ndarray, mod) -> np.ndarray:
    """A convolution's input ``(n, c, h, w)`` as rows ``(n x output positions, c x kh x kw)``
    float64, columns in ``weight.reshape(out, -1)``'s order (zero padding)."""
    from numpy.lib.stride_tricks import sliding_window_view

    if getattr(mod, "padding_mode", "zeros") != "zeros" or isinstance(mod.padding, str):
        raise InputError(f"energy-aware re-fitting supports zero padding given as numbers; the "
                         f"convolution has padding={mod.padding!r}, padding_mode={mod.padding_mode!r}")
    (ph, pw), (sh, sw), (dh, dw) = mod.padding, mod.stride, mod.dilation
    kh, kw = mod.kernel_size
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]                        # n c ho wo kh kw
    n, c, ho, wo = win.shape[:4]
    return np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * ho * wo, c * kh * kw) \
        .astype(np.float64)
