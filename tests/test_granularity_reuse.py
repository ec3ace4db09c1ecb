"""Granularity-aware reuse in the energy model: an innermost tile whose weights were all
pruned loads no inputs and sends up no partial sums (hwprune.cost.mapper)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import hwprune
from hwprune.cost.dataflow import get_dataflow
from hwprune.cost.densities import Density
from hwprune.cost.energy import sparsity_params
from hwprune.cost.loopnest import LoopNest
from hwprune.cost.mapper import _tile_keep
from hwprune.cost.search import find_mapping, price_mapping
from hwprune.evaluate import LayerPlan, Plan, evaluate


def test_tile_keep_by_hand():
    t = np.ones((3, 7))
    t[0, 1], t[0, 6] = 2, 3                       # 2 filters x one kernel row of 3
    assert _tile_keep(t, 3.0, 0.4) == pytest.approx(1 - 0.6 ** 2)     # vector: 2 rows
    assert _tile_keep(t, 1.0, 0.4) == pytest.approx(1 - 0.6 ** 6)     # fine: 6 weights
    assert _tile_keep(t, 9.0, 0.4) == pytest.approx(1 - 0.6 ** 2)     # a group wider than the tile
    assert _tile_keep(t, 3.0, 1.0) == 1.0


def test_a_pruned_row_skips_its_input_fill_and_its_partial_sums():
    """Same mapping (one filter row per PE), priced with and without skipping: the
    inputs and partial sums crossing out of the RF scale by 1 - (1 - d)^rows."""
    dev = hwprune.device("eyeriss")
    net = hwprune.network("vgg16")
    nest = LoopNest.of(net["features.10"])
    flow = get_dataflow(dev.dataflow, dev)
    params = sparsity_params(nest, dev, Density(0.33), "simd-group", group=3)[0]
    assert (params.group_weights, params.group_keep) == (3.0, 0.33)
    mapping = find_mapping(nest, dev, flow, params)
    rows = mapping.tiles[0][1] * mapping.tiles[0][2] * mapping.tiles[0][5]
    keep = 1 - (1 - 0.33) ** rows
    no_skip = price_mapping(mapping, nest, dev, dataclasses.replace(params, group_keep=1.0))
    skip = price_mapping(mapping, nest, dev, params)
    noc = skip.accesses.shape[0] - 1
    assert skip.accesses[noc, 1, 0] == pytest.approx(keep * no_skip.accesses[noc, 1, 0])
    assert skip.energy_pj < no_skip.energy_pj
    # the weights moved and the MACs are the same: only the tile's reuse changed
    np.testing.assert_allclose(skip.accesses[:, 0], no_skip.accesses[:, 0])


def test_dense_weights_on_a_device_that_does_not_skip_are_unchanged():
    dev = hwprune.device("eyeriss")
    assert dev.sparsity.zero_weights != "skip"
    nest = LoopNest.of(hwprune.network("alexnet")["conv3"])
    params = sparsity_params(nest, dev, Density(0.3), "dense")[0]
    assert params.group_keep == 1.0


def test_vector_pruning_needs_fewer_memory_references_than_fine():
    """Mao et al. 2017's effect on a VGG-16 convolution at equal density: the kept
    kernel rows let whole rows skip their input fetches (benchmarks/validate_granularity.py
    gives the table for all of VGG-16). On the mapping the search finds for vector
    pruning (one kernel row per PE), vector pruning moves at least 10% fewer GLB and
    DRAM elements than fine pruning would; with each scheme's own mapping, vector
    pruning costs less."""
    net, dev = hwprune.network("vgg16"), hwprune.device("eyeriss")
    layer = "features.10"
    les = {scheme: evaluate(net, dev, Plan({layer: LayerPlan(scheme, 0.33)}), layers=[layer])[layer]
           for scheme in ("fine", "vector")}
    assert les["vector"].cost.energy < les["fine"].cost.energy
    nest = LoopNest.of(net[layer])
    mapping = les["vector"].energy.mapping
    moved = {}
    for scheme, le in les.items():
        params = sparsity_params(nest, dev, Density(0.33), le.scheme.storage,
                                 le.scheme.group_width((3, 3), dev.compute.simd_lanes))[0]
        priced = price_mapping(mapping, nest, dev, params)
        moved[scheme] = priced.accesses[1:3].sum()         # GLB + DRAM
    assert moved["vector"] < 0.9 * moved["fine"]
