"""Node pruning through coupled layers of a torch module (``pip install 'hwprune[torch]'``).

Removing an output unit (a conv filter, a linear neuron) of one layer is only valid if
every layer whose output is combined with it channel for channel loses the same unit:

* the convolutions whose outputs meet in a residual add keep one channel set;
* a depthwise convolution (``groups == in_channels == out_channels``) keeps the
  channels of the layer that feeds it, so it shares that layer's group;
* a batch norm follows its conv, a concat maps each input's channels to its own slice
  of the consumer's inputs, a flatten maps each channel to its positions.

The dependency graph is Torch-Pruning's DepGraph (Fang et al., CVPR 2023;
``torch-pruning`` on PyPI, MIT), imported only here and only when called. The public
functions are in :mod:`hwprune.workload.torch_import`, which first checks the module and
the example input with its own ``torch.fx`` trace (so a module that cannot run or be
traced is the same one-line :class:`InputError` as in ``from_torch``) and passes the
layer order and the output layers here:

* ``coupled_groups`` lists the groups (:class:`Coupling`): tuples of conv/linear layer
  names (the qualified module names that ``from_torch`` uses) whose output units must
  be removed together. Every conv/linear layer is in exactly one group; most groups
  have one member.
* ``compact`` (:func:`shrink` here) makes a physically smaller module: each group keeps
  one channel set, DepGraph slices every member, its batch norms and every layer that
  reads the group (input channels, flattened positions, concat slices), and the
  outputs equal the masked model's.

Simplifications (stated): a grouped convolution that is not depthwise cannot be
compacted through (its channel groups would have to shrink evenly); a group that shares
only part of its channels with another (a concat added to another tensor) is refused;
the model's output layers (and the layers coupled with them) keep all their units.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import InputError


def _tp():
    try:
        import torch_pruning
    except ImportError:
        raise InputError("node pruning through coupled layers needs torch-pruning: "
                         "pip install 'hwprune[torch]'") from None
    return torch_pruning


def _conv_linear(torch, mod) -> bool:
    return isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))


def _units(torch, mod) -> int:
    return mod.out_channels if isinstance(mod, torch.nn.Conv2d) else mod.out_features


def _out_fn(torch, tp, mod):
    return tp.prune_conv_out_channels if isinstance(mod, torch.nn.Conv2d) else tp.prune_linear_out_channels


def _depthwise(torch, mod) -> bool:
    return (isinstance(mod, torch.nn.Conv2d) and mod.groups > 1
            and mod.groups == mod.in_channels == mod.out_channels)


class Coupling:
    """DepGraph's coupling of one module's conv/linear layers: ``groups`` (tuples of
    names, execution order), ``group_of`` (name -> group index) and ``blocked`` (group
    index -> why its units cannot be removed)."""

    def __init__(self, module, example_input, order: list[str], outputs: set[str]):
        import torch

        self.torch = torch
        tp = _tp()
        self.module, self.order, self.outputs = module, list(order), set(outputs)
        was_training = module.training
        module.eval()
        try:
            self.dg = tp.DependencyGraph().build_dependency(module, example_inputs=example_input,
                                                            verbose=False)
        except Exception as exc:
            text = " ".join(str(exc).split())[:300]
            raise InputError(f"Torch-Pruning cannot build the dependency graph of "
                             f"{type(module).__name__}: {text}") from None
        finally:
            if was_training:
                module.train()
        self.names = {mod: name for name, mod in module.named_modules()}
        self.groups, self.group_of, self.blocked = [], {}, {}
        rank = {name: i for i, name in enumerate(self.order)}
        for name in self.order:
            if name in self.group_of:
                continue
            mod = module.get_submodule(name)
            members, why = self._members(mod, name)
            group = tuple(sorted(members, key=lambda n: rank.get(n, len(rank))))
            for member in group:
                self.group_of.setdefault(member, len(self.groups))
            self.groups.append(group)
            if why:
                self.blocked[len(self.groups) - 1] = why
        for i, group in enumerate(self.groups):
            out = [m for m in group if m in self.outputs]
            if out and i not in self.blocked:
                self.blocked[i] = (f"{out[0]} is an output layer of the network, which keeps its "
                                   "outputs" + (f" (coupled with {', '.join(group)})" if len(group) > 1
                                                else ""))

    def _members(self, mod, name):
        """The conv/linear layers sharing ``mod``'s output units, and why the group cannot
        lose units (None if it can)."""
        torch, tp = self.torch, _tp()
        n = _units(torch, mod)
        group = self.dg.get_pruning_group(mod, _out_fn(torch, tp, mod), idxs=list(range(n)))
        members, why = {name}, None
        for dep, idxs in group:
            target = dep.target.module
            tname = self.names.get(target)
            if not _conv_linear(torch, target) or tname is None:
                continue
            if isinstance(target, torch.nn.Conv2d) and target.groups > 1 and not _depthwise(torch, target):
                why = why or (f"{tname} is a grouped convolution (groups={target.groups}) that reads "
                              "or writes these units; only depthwise convolutions are compacted through")
            if self.dg.is_out_channel_pruning_fn(dep.handler):
                members.add(tname)
                if len(idxs) != n or _units(torch, target) != n:
                    why = why or (f"{tname} shares only part of its {_units(torch, target)} units with "
                                  f"{name} ({n}), e.g. a concat added to another tensor")
        return members, why


def _round_up(keep: np.ndarray, score: np.ndarray, k: int) -> np.ndarray:
    """``keep`` with the removed units of the largest ``score`` added back until the
    count is a multiple of ``k`` (or all units)."""
    target = min(keep.size, -(-int(keep.sum()) // k) * k)
    out = keep.copy()
    removed = np.flatnonzero(~keep)
    order = removed[np.argsort(-score[removed], kind="stable")]
    out[order[:target - int(keep.sum())]] = True
    return out


def shrink(g: Coupling, keep_units: Mapping[str, np.ndarray], round_to: int | None = None) -> None:
    """Cut ``g.module`` in place to ``keep_units`` (checked: names, lengths, at least one
    kept per group, blocked groups); see ``torch_import.compact`` for the rules."""
    torch, new = g.torch, g.module
    wanted: dict[int, np.ndarray] = {}
    for name, keep in keep_units.items():
        if name not in g.group_of:
            known = ", ".join(g.order[:6]) + (", ..." if len(g.order) > 6 else "")
            raise InputError(f"{name!r} is not a conv or linear layer of the module; accepted: {known}")
        mod = new.get_submodule(name)
        n = _units(torch, mod)
        keep = np.asarray(keep)
        if keep.shape != (n,) or keep.dtype != bool and not np.isin(keep, (0, 1)).all():
            raise InputError(f"{name}: keep_units needs one bool per output unit, {n} of them; got "
                             f"shape {keep.shape}")
        i = g.group_of[name]
        wanted[i] = wanted.get(i, np.zeros(n, bool)) | keep.astype(bool)
    plan = []
    for i, keep in wanted.items():
        group = g.groups[i]
        if not keep.any():
            raise InputError(f"{', '.join(group)}: keep_units keeps no unit of this coupled group; "
                             "at least one must stay")
        if keep.all():
            continue
        if i in g.blocked:
            raise InputError(f"{group[0]}: its units cannot be removed: {g.blocked[i]}")
        if round_to:
            score = sum(new.get_submodule(m).weight.detach().abs().reshape(keep.size, -1).sum(1).numpy()
                        for m in group)
            keep = _round_up(keep, np.asarray(score, dtype=np.float64), int(round_to))
            if keep.all():
                continue
        plan.append((group[0], np.flatnonzero(~keep).tolist()))
    tp = _tp()
    with torch.no_grad():
        for root, removed in plan:
            mod = new.get_submodule(root)
            g.dg.get_pruning_group(mod, _out_fn(torch, tp, mod), idxs=removed).prune()
