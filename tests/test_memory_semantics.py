"""Memory semantics of the energy model's profiles: a network-on-chip cheaper than the
register file, and per-operand scratchpads with their own energies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_devices import two_level_toy

import hwprune
from hwprune.errors import ProfileError

EYERISS = Path(hwprune.__file__).resolve().parent.parent / "hardware_profiles" / "eyeriss.toml"


def _variant(tmp_path, old: str, new: str, name: str = "variant.toml") -> Path:
    text = EYERISS.read_text()
    assert old in text, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1).replace('id = "eyeriss"', 'id = "eyeriss-variant"'))
    return path


NOC = '''read_energy_pj = 2.0
write_energy_pj = 2.0
bandwidth_bytes_per_cycle = 18
'''


def test_a_noc_may_cost_less_than_the_register_file(tmp_path):
    """Timeloop's eyeriss_like network costs less per transfer than its scratchpads."""
    cheap = _variant(tmp_path, NOC, NOC.replace("2.0", "0.25"))
    dev = hwprune.device(str(cheap))
    assert dev.level("Array").read_energy_pj == 0.25 < dev.level("RF").read_energy_pj
    base = hwprune.energy("alexnet", "eyeriss")["energy_pj"].sum()
    assert hwprune.energy("alexnet", dev)["energy_pj"].sum() < base


def test_storage_levels_must_still_be_in_order(tmp_path):
    bad = _variant(tmp_path, "read_energy_pj = 6.0\nwrite_energy_pj = 6.0",
                   "read_energy_pj = 0.5\nwrite_energy_pj = 0.5")
    with pytest.raises(ProfileError, match=r"memory\[2\] \(GLB\)\.read_energy_pj.*levels out of order"):
        hwprune.device(str(bad))


RF_PARTITION = "partition_bytes = { weights = 448, inputs = 24, outputs = 48 }\n"


def test_an_operands_own_scratchpad_energy_prices_its_accesses(tmp_path):
    """The psum scratchpad at 3x the filter and ifmap ones: the RF's partial-sum
    accesses cost 3x, nothing else changes (same mapping)."""
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.densities import Density
    from hwprune.cost.energy import sparsity_params
    from hwprune.cost.loopnest import LoopNest
    from hwprune.cost.search import find_mapping, price_mapping

    path = _variant(tmp_path, RF_PARTITION,
                    RF_PARTITION + "operand_energy_pj = { outputs = { read = 3.0, write = 3.0 } }\n")
    dev, base = hwprune.device(str(path)), hwprune.device("eyeriss")
    assert dev.level("RF").read_pj("outputs") == 3.0 and dev.level("RF").read_pj("weights") == 1.0
    nest = LoopNest.of(hwprune.network("alexnet")["conv3"])
    params = sparsity_params(nest, base, Density(), "dense")[0]
    mapping = find_mapping(nest, base, get_dataflow("row-stationary", base), params)
    cheap, dear = price_mapping(mapping, nest, base, params), price_mapping(mapping, nest, dev, params)
    rf_psums = mapping.accesses[0, 2].sum()
    assert dear.energy_pj - cheap.energy_pj == pytest.approx(2.0 * rf_psums)


@pytest.mark.parametrize("value, key, reason", [
    ("{ filters = { read = 1.0, write = 1.0 } }", "operand_energy_pj.filters", "does not hold"),
    ("{ outputs = { read = 1.0 } }", "operand_energy_pj.outputs", "exactly the keys read and write"),
    ("{ outputs = { read = 1.0, write = -1 } }", "operand_energy_pj.outputs.write", "a number in"),
    ("{ outputs = 2.0 }", "operand_energy_pj.outputs", "must be a table"),
])
def test_a_wrong_operand_energy_names_file_key_and_reason(tmp_path, value, key, reason):
    path = _variant(tmp_path, RF_PARTITION, RF_PARTITION + f"operand_energy_pj = {value}\n")
    with pytest.raises(ProfileError) as err:
        hwprune.device(str(path))
    text = str(err.value)
    assert str(path) in text and f"memory[0] (RF).{key}" in text and reason in text


def test_partial_sums_wider_than_data(tmp_path):
    """8-bit data with 16-bit partial sums (ZigZag's default precision): every partial
    sum below the outermost output level, and across the array, costs twice an 8-bit
    element; the finished outputs in DRAM stay 8-bit; psum tiles take twice the room."""
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.densities import Density
    from hwprune.cost.energy import sparsity_params
    from hwprune.cost.loopnest import LoopNest
    from hwprune.cost.search import device_arrays, find_mapping, price_mapping

    data8 = 'simd_element_bits = 16\n'
    narrow = hwprune.device(str(_variant(tmp_path, data8, 'simd_element_bits = 8\n', "a.toml")))
    wide = hwprune.device(str(_variant(tmp_path, data8, 'simd_element_bits = 8\npsum_bits = 16\n',
                                       "b.toml")))
    assert (narrow.psum_bytes, wide.psum_bytes, wide.element_bytes) == (1.0, 2.0, 1.0)
    arrays = device_arrays(wide)
    assert arrays.elem[:, 2].tolist() == [2.0, 2.0, 1.0]          # RF, GLB: psums; DRAM: outputs
    nest = LoopNest.of(hwprune.network("alexnet")["conv3"])
    params = sparsity_params(nest, narrow, Density(), "dense")[0]
    # found where psums take twice the room, so it fits the narrow device too
    mapping = find_mapping(nest, wide, get_dataflow("row-stationary", wide), params)
    base, dear = price_mapping(mapping, nest, narrow, params), price_mapping(mapping, nest, wide, params)
    small = device_arrays(narrow)
    acc = mapping.accesses
    extra = sum(acc[lv, 2, 0] * small.rd[lv, 2] + acc[lv, 2, 1] * small.wr[lv, 2] for lv in range(2))
    extra += acc[3, 2, 0] * small.noc_pj[2]
    assert dear.energy_pj - base.energy_pj == pytest.approx(extra)


def test_fills_charged_at_the_receiving_level(tmp_path):
    """Timeloop's and ZigZag's convention: a tile loaded into a level is written there,
    and a partial sum leaving a level is read out of it (its first write there needs no
    read). Eyeriss's built-in profile keeps Chen et al.'s (each movement priced once)."""
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.densities import Density
    from hwprune.cost.energy import sparsity_params
    from hwprune.cost.loopnest import LoopNest
    from hwprune.cost.search import find_mapping, price_mapping

    free = hwprune.device("eyeriss")
    assert free.fills == "free"
    charged = hwprune.device(str(_variant(tmp_path, 'fills = "free"', 'fills = "charged"')))
    nest = LoopNest.of(hwprune.network("alexnet")["conv4"])
    params = sparsity_params(nest, free, Density(), "dense")[0]
    mapping = find_mapping(nest, free, get_dataflow("row-stationary", free), params)
    a, b = price_mapping(mapping, nest, free, params), price_mapping(mapping, nest, charged, params)
    # the weights and inputs each level sends down are written into the level below:
    # into the RF, every copy the array network carries; into the GLB, what DRAM sends
    np.testing.assert_allclose(b.accesses[0, :2, 1] - a.accesses[0, :2, 1], a.accesses[3, :2, 0])
    np.testing.assert_allclose(b.accesses[1, :2, 1] - a.accesses[1, :2, 1], a.accesses[2, :2, 0])
    # every partial sum leaving a level that accumulates them was written there once
    # without a read and is read out: the GLB drains what it writes to DRAM, the RF
    # what the array network carries (its reductions, plus every psum reaching the
    # GLB: those the GLB accumulates and those it drains)
    to_dram = a.accesses[2, 2, 1]
    to_glb = a.accesses[1, 2, 0] + to_dram
    drained = b.accesses[:, 2] - a.accesses[:, 2]
    np.testing.assert_allclose(drained[1], [to_dram, to_dram])
    np.testing.assert_allclose(drained[0], [a.accesses[3, 2, 0] + to_glb] * 2)
    np.testing.assert_allclose(drained[2:], 0.0)
    assert b.energy_pj > a.energy_pj


def test_an_unknown_fill_convention_is_refused(tmp_path):
    path = _variant(tmp_path, 'fills = "free"', 'fills = "sometimes"')
    with pytest.raises(ProfileError, match=r"fills.*one of: charged, free"):
        hwprune.device(str(path))


def test_outputs_are_written_run_length_coded_at_the_next_layers_density():
    """Eyeriss run-length codes the feature maps it writes to DRAM (JSSC 2017 IV-B): a
    conv layer whose output the next conv reads at 40% nonzero writes it coded."""
    from hwprune.workload.passes import stored_as_read

    net, dev = hwprune.network("alexnet"), hwprune.device("eyeriss")
    assert "conv1" not in stored_as_read(net)           # a pool sits between conv1 and conv2
    assert stored_as_read(net)["conv3"] == "conv4"
    dense = hwprune.energy(net, dev).set_index("layer")
    sparse = hwprune.energy(net, dev, densities={"conv4": (1.0, 0.4)}).set_index("layer")
    assert sparse.loc["conv3", "dram_pj"] < dense.loc["conv3", "dram_pj"]
    assert sparse.loc["conv3", "outputs_pj"] < dense.loc["conv3", "outputs_pj"]
    assert sparse.loc["conv3", "weights_pj"] == dense.loc["conv3", "weights_pj"]
    # the saving is the coded share of the finished outputs' DRAM writes
    outputs = 384 * 13 * 13
    from hwprune.sparse.storage import activation_ratio
    ratio = activation_ratio("rle", 0.4, dev.element_bytes, dev.sparsity.index_bits)
    saved = dense.loc["conv3", "dram_pj"] - sparse.loc["conv3", "dram_pj"]
    assert saved == pytest.approx(outputs * (1 - ratio) * dev.level("DRAM").write_energy_pj, rel=1e-9)


def test_sliding_window_share_by_hand():
    """Tile of 4 output columns with the whole 3-wide filter row (6 input columns);
    the loop above steps it 5 times along F with stride 1: after the first load each
    step brings 4 new columns of 6, so (1 + 4 x 4/6) / 5 of the full loads."""
    from hwprune.cost.mapper import _slide

    def trips(T):       # loop trip counts per level (no spatial unrolling)
        return np.vstack([np.ones(7), T[1:] / T[:-1]])

    D = np.array([1, 8, 4, 1, 20, 1, 3], dtype=float)
    T = np.array([[1, 1, 1, 1, 4, 1, 3], [1, 1, 1, 1, 20, 1, 3], D], dtype=float)
    order = np.array([0, 1, 1], dtype=np.int64)     # weights stay: F E N | S R C | M innermost first
    assert _slide(1, T, trips(T), order, D, 1.0, 1.0) == pytest.approx((1 + 4 * 4 / 6) / 5)
    assert _slide(1, T, trips(T), order, D, 1.0, 4.0) == 1.0      # stride 4: no overlap
    partial = T.copy()
    partial[0, 6] = 1                                              # the row split: no window
    assert _slide(1, partial, trips(partial), order, D, 1.0, 1.0) == 1.0


def test_eyeriss_slides_its_input_rows(tmp_path):
    """The built-in eyeriss keeps the overlap (ISCA 2016's 1-D primitive): AlexNet's
    conv1 moves fewer input values into the array than without it, and costs less."""
    assert hwprune.device("eyeriss").memory[0].sliding_window
    off = _variant(tmp_path, "sliding_window = true", "sliding_window = false")
    on = hwprune.energy("alexnet", "eyeriss").set_index("layer").loc["conv1"]
    no = hwprune.energy("alexnet", hwprune.device(str(off))).set_index("layer").loc["conv1"]
    assert on["inputs_pj"] < no["inputs_pj"] and on["energy_pj"] < no["energy_pj"]


def test_only_the_innermost_level_slides(tmp_path):
    glb = "bandwidth_bytes_per_cycle = 18\npartition_bytes = { weights = 8192"
    path = _variant(tmp_path, glb, glb.replace("\npartition", "\nsliding_window = true\npartition"))
    with pytest.raises(ProfileError, match=r"memory\[2\] \(GLB\)\.sliding_window.*innermost"):
        hwprune.device(str(path))


def test_device_detail_lists_operand_energies_and_psum_width(tmp_path):
    path = _variant(tmp_path, RF_PARTITION,
                    RF_PARTITION + "operand_energy_pj = { outputs = { read = 3.0, write = 2.5 } }\n")
    text = path.read_text().replace("simd_element_bits = 16\n", "simd_element_bits = 8\npsum_bits = 16\n", 1)
    path.write_text(text)
    table = hwprune.api.device_detail(str(path)).set_index("key")
    assert table.loc["memory.RF.operand_energy_pj.outputs.read", "value"] == 3.0
    assert table.loc["memory.RF.operand_energy_pj.outputs.write", "value"] == 2.5
    assert table.loc["compute.psum_bits", "value"] == 16


def _bypass_toy(tmp_path, holds: str = '["weights", "outputs"]', extra: str = ""):
    """A 64-byte register file that holds no inputs (they bypass it, as in ZigZag's
    tpu_like) and DRAM; 1 pJ vs 100 pJ per 4-byte word."""
    return two_level_toy(tmp_path, 64, holds=holds, extra=extra)


def test_an_operand_that_bypasses_the_innermost_level_by_hand(tmp_path):
    """Inputs not held by the RF are read from DRAM at every MAC that needs a new one:
    2 filters x 3 positions = 6 MACs over 3 inputs. With both filters in the RF tile
    (its M loop reuses each input) or M the innermost loop above it, each input is read
    once; with the positions innermost, once per MAC. The RF itself is never touched
    by inputs."""
    from hwprune.cost.loopnest import LoopNest
    from hwprune.cost.mapper import evaluate
    from hwprune.cost.search import SparsityParams, _context

    dev = _bypass_toy(tmp_path)
    nest = LoopNest((1, 2, 1, 3, 1, 1, 1), in_hw=(3, 1))
    _, ctx = _context(nest, dev, SparsityParams())
    D = np.array(nest.bounds, dtype=float)

    def input_reads(inner, order):
        acc = np.zeros((3, 3, 2))
        energy = evaluate(np.array([inner, D]), np.ones(7), np.array(order, dtype=np.int64),
                          *ctx, acc)
        assert np.isfinite(energy) and acc[0, 1].sum() == 0
        return acc[1, 1, 0]

    assert input_reads([1, 2, 1, 1, 1, 1, 1], [0, 0]) == 3     # M in the RF tile
    assert input_reads([1, 1, 1, 1, 1, 1, 1], [0, 2]) == 3     # M innermost above it
    assert input_reads([1, 1, 1, 1, 1, 1, 1], [0, 0]) == 6     # E innermost: every MAC


def test_a_bypassing_operand_is_searched_and_bounded(tmp_path):
    """The search finds the one-read-per-input mapping of a bypassing operand, and the
    lower bound stays below it."""
    from hwprune.cost import search as S
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.loopnest import LoopNest

    dev = _bypass_toy(tmp_path)
    nest = LoopNest((1, 4, 3, 5, 1, 1, 1), in_hw=(5, 1))
    mapping = S.find_mapping(nest, dev, get_dataflow(dev.dataflow, dev), S.SparsityParams())
    assert mapping.accesses[1, 1, 0] == 3 * 5                   # each input read once
    assert S.lower_bound(nest, dev, S.SparsityParams(), np.ones(7)) <= mapping.energy_pj


def test_the_innermost_level_must_hold_outputs_and_a_window_needs_inputs(tmp_path):
    with pytest.raises(ProfileError, match=r"memory\[0\]\.holds.*must hold the outputs"):
        _bypass_toy(tmp_path, holds='["weights", "inputs"]')
    with pytest.raises(ProfileError, match=r"memory\[0\]\.sliding_window.*does not hold inputs"):
        _bypass_toy(tmp_path, extra="sliding_window = true")


def _reuse_under(order, trips):
    """For each operand, the product of the innermost run of iterating loops irrelevant
    to it under ``order`` (dimension indices, innermost first): the reuse a load gets
    (hand-written, independent of the mapper)."""
    relevant = [{1, 2, 5, 6}, {0, 2, 3, 4, 5, 6}, {0, 1, 3, 4}]      # W, I, O over N M C E F R S
    out = []
    for rel in relevant:
        s = 1
        for d in order:
            if trips[d] == 1:
                continue
            if d in rel:
                break
            s *= trips[d]
        out.append(s)
    return out


@settings(max_examples=200, deadline=None)
@given(trips=st.lists(st.integers(1, 3), min_size=7, max_size=7), order=st.permutations(range(7)))
def test_three_loop_orders_match_or_beat_every_order(trips, order):
    """Every count depends on a level's loop order only through each operand's innermost
    run of irrelevant loops; for any permutation of the 7 loops, one of the three
    orders of mapper.ORDERS gives every operand at least as much reuse, so searching
    the stationary operand per level searches every order."""
    from hwprune.cost.mapper import ORDERS, _stationary

    level = np.ones((2, 7))
    level[1] = trips
    want = _reuse_under(order, trips)
    got = [[_stationary(op, 0, 1, level, np.array([0, o], dtype=np.int64)) for op in range(3)]
           for o in range(len(ORDERS))]
    assert got == [_reuse_under(list(ORDERS[o]), trips) for o in range(len(ORDERS))]
    assert any(all(g >= w for g, w in zip(row, want)) for row in got)


def test_a_preset_keeps_its_stationary_operand_innermost():
    """Weight-stationary fixes the innermost level's order; the levels above are
    searched."""
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.densities import Density
    from hwprune.cost.energy import sparsity_params
    from hwprune.cost.loopnest import LoopNest
    from hwprune.cost.search import find_mapping

    dev = hwprune.device("eyeriss")
    flow = get_dataflow("weight-stationary", dev)
    for layer in ("conv2", "conv4", "fc7"):
        nest = LoopNest.of(hwprune.network("alexnet")[layer])
        mapping = find_mapping(nest, dev, flow, sparsity_params(nest, dev, Density(), "dense")[0])
        assert mapping.stationary[1] == "weights"


def test_a_stride_longer_than_the_kernel_leaves_gaps_in_the_input_footprint():
    """4 x 4 outputs of a 1x1 kernel at stride 2 touch 4 x 4 inputs (not the 7 x 7
    their span covers); of a 3x3 kernel at stride 2, the contiguous 9 x 9."""
    from hwprune.cost.mapper import _footprint

    one = np.array([1, 1, 1, 4, 4, 1, 1], dtype=float)
    three = np.array([1, 1, 1, 4, 4, 3, 3], dtype=float)
    assert _footprint(1, one, 2.0, 2.0, 100.0, 100.0) == 16
    assert _footprint(1, three, 2.0, 2.0, 100.0, 100.0) == 81
