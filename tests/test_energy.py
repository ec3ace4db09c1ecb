"""Energy model: hand-computed access counts, Eyeriss's reuse formula, the mapping search
against brute force, invariants, and clear errors."""

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_devices import two_level_toy

import hwprune
from hwprune.cost.dataflow import get_dataflow
from hwprune.cost.energy import level_columns
from hwprune.cost.loopnest import LoopNest
from hwprune.cost.mapper import evaluate
from hwprune.cost.search import SparsityParams, device_arrays, find_mapping
from hwprune.errors import InputError, UnknownNameError
from hwprune.workload import NetworkBuilder

# N M C E F R S
N, M, C, E, F, R, S = range(7)
OUT_STAT, W_STAT, IN_STAT = 0, 1, 2


def toy_device(tmp_path, rf_bytes: int):
    """Two levels: a register file of ``rf_bytes`` and DRAM; 1 pJ vs 100 pJ, MAC 0.5 pJ."""
    return two_level_toy(tmp_path, rf_bytes)


def tiny_conv():
    b = NetworkBuilder("tiny", (2, 5, 5))
    b.conv("conv", b.input, 3, 2, bias=False)  # C=2, M=3, E=F=4, R=S=2
    return b.build()


@pytest.mark.parametrize("fills", ["charged", "free"])
def test_everything_fits_the_register_file(tmp_path, fills):
    """RF holds the whole layer: every value crosses DRAM exactly once."""
    dev = toy_device(tmp_path, 4096)
    dev = dataclasses.replace(dev, fills=fills)
    net = tiny_conv()
    row = hwprune.energy(net, dev).iloc[0]
    macs = 3 * 4 * 4 * 2 * 2 * 2          # 384
    weights, inputs, outputs = 3 * 2 * 4, 2 * 5 * 5, 3 * 4 * 4
    assert row["macs"] == macs
    # RF: a weight and an input read per MAC; a psum read and write per MAC except the
    # first of each output's 8-term sum; with fills charged, each weight and input
    # written into it once, and each finished output's first write and its read out
    # (the drain).
    filled = (weights + inputs + 2 * outputs) if fills == "charged" else 0
    assert row["rf_accesses"] == 2 * macs + 2 * (macs - outputs) + filled
    assert row["dram_accesses"] == weights + inputs + outputs
    expected = (2 * macs + 2 * (macs - outputs) + filled) * 1.0 \
        + (weights + inputs + outputs) * 100.0 + macs * 0.5
    assert row["energy_pj"] == pytest.approx(expected, rel=1e-12)
    assert row["compute_pj"] == macs * 0.5


def test_three_element_register_file_picks_output_stationary(tmp_path):
    """An RF of 12 bytes holds one weight, one input and one psum: tiles are all 1, only
    the loop order is free. Keeping the psum (output-stationary) costs
    (weights + inputs) per MAC from DRAM, each written into the RF (the fill), plus one
    write per output to DRAM and its first write and read out of the RF (the drain);
    the search finds it."""
    dev = toy_device(tmp_path, 12)
    net = tiny_conv()
    row = hwprune.energy(net, dev).iloc[0]
    macs, outputs = 384, 48
    expected = (2 * macs + 2 * (macs - outputs) + 2 * macs + 2 * outputs) * 1.0 \
        + (2 * macs + outputs) * 100.0 + macs * 0.5
    assert row["energy_pj"] == pytest.approx(expected, rel=1e-12)
    assert row["mapping"].endswith("/o")


def _eyeriss_eval(bounds, tiles, spatial, orders):
    dev = hwprune.device("eyeriss")
    arrays = device_arrays(dev)
    k = len(arrays.storage)
    acc = np.zeros((k + 1, 3, 2))
    energy = evaluate(
        np.array(tiles, dtype=float), np.array(spatial, dtype=float),
        np.array(orders, dtype=np.int64), np.array(bounds, dtype=float), 1.0, 1.0, 1.0, 1.0,
        arrays.sp, True, arrays.holds, arrays.group_of, arrays.group_cap, arrays.backing,
        arrays.rd, arrays.wr, arrays.noc_pj, 1.0, arrays.elem, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0,
        0.0 if dev.fills == "free" else 1.0, 1.0, arrays.loops_ok, False,
        np.array(bounds, dtype=float), acc)
    return energy, acc


def test_eyeriss_reuse_formula_for_weights_and_inputs():
    """Chen et al. (ISCA 2016): a value reused a, b, c, d times at DRAM, buffer, array and
    RF costs a·DRAM + ab·buffer + abc·array + abcd·RF.

    Layer: 4 weights (M=4), batch N = a·b·c·d = 2·3·4·5 = 120, 1x1 everything else. RF
    holds N=5 (d), the array multicasts over N=4 (c), the GLB holds N=60 (b = 3 more)
    and M=2, DRAM loops N twice (a) and M twice. Both upper levels run M innermost, so a
    weight is re-read at every N step: a=2, b=3, c=4, d=5.
    """
    a, b, c, d = 2, 3, 4, 5
    bounds = [a * b * c * d, 4, 1, 1, 1, 1, 1]
    tiles = [[d, 1, 1, 1, 1, 1, 1], [d * c * b, 2, 1, 1, 1, 1, 1], bounds]
    energy, acc = _eyeriss_eval(bounds, tiles, [c, 1, 1, 1, 1, 1, 1], [0, IN_STAT, IN_STAT])
    rf, glb, dram, noc = 0, 1, 2, 3
    w = 4
    assert acc[dram, 0, 0] == w * a
    assert acc[glb, 0, 0] == w * a * b
    assert acc[noc, 0, 0] == w * a * b * c
    assert acc[rf, 0, 0] == w * a * b * c * d
    weight_energy = w * (a * 200 + a * b * 6 + a * b * c * 2 + a * b * c * d * 1)
    per_op = acc[:3, 0, 0] @ np.array([1.0, 6.0, 200.0]) + acc[noc, 0, 0] * 2.0
    assert per_op == weight_energy
    # Inputs: each of the 120 is used by 4 MACs (M = 4). The innermost GLB loop (M, 2)
    # leaves the RF's inputs in place; the DRAM-level M loop sits outside the GLB's N
    # loop, so the GLB tile is reused: a = 1, b = 2, c = 1 (no multicast: PEs differ in
    # N), d = 2.
    assert acc[dram, 1, 0] == 120          # a = 1 per input
    assert acc[glb, 1, 0] == 240           # ab = 2
    assert acc[noc, 1, 0] == 240           # abc = 2 (no multicast: PEs differ in N)
    assert acc[rf, 1, 0] == 480            # abcd = 4 = M
    assert energy == pytest.approx(
        weight_energy + 120 * (200 + 2 * 6 + 2 * 2 + 4) + acc[:, 2, :].sum(axis=1)
        @ np.array([1.0, 6.0, 200.0, 2.0]) + 480, rel=1e-12)


def test_eyeriss_reuse_formula_for_partial_sums():
    """Partial sums of one output accumulated a·b·c·d = 2·3·4·5 = 120 times (C = 120):
    d in the RF, c across the array (spatial reduction), b in the GLB, a in DRAM.
    Chen et al.: (2a-1)·DRAM + 2a(b-1)·GLB + ab(c-1)·array + 2abc(d-1)·RF per output."""
    a, b, c, d = 2, 3, 4, 5
    bounds = [1, 4, a * b * c * d, 1, 1, 1, 1]
    tiles = [[1, 1, d, 1, 1, 1, 1], [1, 2, d * c * b, 1, 1, 1, 1], bounds]
    _, acc = _eyeriss_eval(bounds, tiles, [1, 1, c, 1, 1, 1, 1], [0, IN_STAT, IN_STAT])
    rf, glb, dram, noc = 0, 1, 2, 3
    outputs = 4
    assert acc[rf, 2].sum() == outputs * 2 * a * b * c * (d - 1)
    assert acc[noc, 2].sum() == outputs * a * b * (c - 1)
    assert acc[glb, 2].sum() == outputs * 2 * a * (b - 1)
    assert acc[dram, 2, 1] == outputs * a          # writes
    assert acc[dram, 2, 0] == outputs * (a - 1)    # read-backs


def _brute_force(nest, dev, params):
    """Cheapest legal mapping by exhaustive enumeration of tiles (divisors) and orders on
    a device without spatial unrolling."""
    arrays = device_arrays(dev)
    k = len(arrays.storage)
    bounds = np.array(nest.bounds, dtype=float)
    options = [[v for v in range(1, b + 1) if b % v == 0] for b in nest.bounds]
    acc = np.zeros((k + 1, 3, 2))
    best = np.inf
    per_level = list(itertools.product(*options))
    for inner in itertools.product(per_level, repeat=k - 1):
        tiles = np.array([*inner, nest.bounds], dtype=float)
        if np.any(tiles[1:] < tiles[:-1]):
            continue
        for orders in itertools.product(range(3), repeat=k - 1):
            e = evaluate(tiles, np.ones(7), np.array((0, *orders), dtype=np.int64), bounds,
                         1.0, 1.0, *(float(x) for x in nest.in_hw), arrays.sp, False,
                         arrays.holds, arrays.group_of, arrays.group_cap, arrays.backing,
                         arrays.rd, arrays.wr, arrays.noc_pj, dev.compute.mac_energy_pj,
                         arrays.elem, params.executed, params.weight_ratio,
                         params.index_per_mac, params.input_top_ratio, params.group_weights,
                         params.group_keep, 1.0 if dev.fills == "charged" else 0.0,
                         params.output_top_ratio, arrays.loops_ok, False, bounds, acc)
            best = min(best, e)
    return best


@pytest.mark.parametrize("rf_bytes", [12, 48, 200, 400])
@pytest.mark.parametrize("shape, out, kernel", [((2, 4, 4), 4, 2), ((3, 6, 6), 2, 3),
                                                ((4, 3, 3), 6, 1), ((6, 4, 4), 4, 1)])
def test_search_matches_brute_force_on_small_layers(tmp_path, rf_bytes, shape, out, kernel):
    dev = toy_device(tmp_path, rf_bytes)
    b = NetworkBuilder("small", shape)
    b.conv("conv", b.input, out, kernel, bias=False)
    nest = LoopNest.of(b.build()["conv"])
    flow = get_dataflow("cache-tiling", dev)
    found = find_mapping(nest, dev, flow, SparsityParams()).energy_pj
    optimum = _brute_force(nest, dev, SparsityParams())
    assert found >= optimum * (1 - 1e-12)       # the brute force is a true lower bound
    assert found <= optimum * 1.01               # and the search reaches it


def _sums(df, dev):
    levels = [f"{n}_pj" for n in level_columns(dev)]
    operands = ["weights_pj", "index_pj", "inputs_pj", "outputs_pj", "compute_pj"]
    return df[levels].sum(axis=1) + df["compute_pj"], df[operands].sum(axis=1)


@pytest.mark.parametrize("dev_id", ["eyeriss", "core-i7", "titan-x", "cortex-m4"])
def test_totals_equal_the_sum_of_their_parts(dev_id):
    dev = hwprune.device(dev_id)
    df = hwprune.energy("alexnet", dev, densities={"conv2": (0.4, 0.6), "fc6": 0.1},
                        weight_format="csr")
    by_level, by_operand = _sums(df, dev)
    np.testing.assert_allclose(by_level, df["energy_pj"], rtol=1e-12)
    np.testing.assert_allclose(by_operand, df["energy_pj"], rtol=1e-12)
    np.testing.assert_allclose(df["energy_norm"] * dev.compute.mac_energy_pj, df["energy_pj"])
    assert (df["index_pj"] > 0).sum() == 8


@pytest.mark.parametrize("dev_id", ["eyeriss", "core-i7", "titan-x", "cortex-m4"])
def test_every_device_runs_every_network(dev_id):
    for name in hwprune.networks()["network"]:
        net = hwprune.network(name)
        df = hwprune.energy(net, dev_id)
        assert list(df["layer"]) == [layer.name for layer in net.layers]
        assert df["macs"].sum() == net.macs
        assert np.isfinite(df["energy_pj"]).all()
        costs = df["runs_as"].isin(["kernel", "stream", "copy", "fused"])
        assert (df.loc[costs, "energy_pj"] > 0).all() and (df.loc[~costs, "energy_pj"] == 0).all()


@settings(max_examples=25, deadline=None)
@given(
    dev_id=st.sampled_from(["eyeriss", "core-i7", "titan-x", "cortex-m4"]),
    fmt=st.sampled_from(["dense", "csr", "rle", "simd-group"]),
    layer=st.sampled_from(["conv1", "conv3", "fc7"]),
    high=st.floats(0.05, 1.0), ratio=st.floats(0.1, 1.0), act=st.floats(0.1, 1.0),
)
def test_energy_does_not_increase_as_density_decreases(dev_id, fmt, layer, high, ratio, act):
    low = high * ratio

    def cost(w, a):
        df = hwprune.energy("alexnet", dev_id, densities={layer: (w, a)}, weight_format=fmt)
        return df.set_index("layer").loc[layer, "energy_pj"]

    assert cost(low, act) <= cost(high, act) * (1 + 1e-9)
    assert cost(high, act * ratio) <= cost(high, act) * (1 + 1e-9)


def test_zero_handling_follows_the_device():
    # Eyeriss gates zero activations: MAC energy follows the activation density.
    df = hwprune.energy("alexnet", "eyeriss", densities={"conv3": (1.0, 0.5)})
    row = df.set_index("layer").loc["conv3"]
    assert row["effective_macs"] == row["macs"] * 0.5
    # The i7 computes zeros of dense weights; CSR skips them.
    dense = hwprune.energy("alexnet", "core-i7", densities={"fc7": 0.1}).set_index("layer")
    assert dense.loc["fc7", "effective_macs"] == dense.loc["fc7", "macs"]
    csr = hwprune.energy("alexnet", "core-i7", densities={"fc7": 0.1},
                         weight_format="csr").set_index("layer")
    assert csr.loc["fc7", "effective_macs"] == pytest.approx(0.1 * csr.loc["fc7", "macs"])
    assert csr.loc["fc7", "energy_pj"] < dense.loc["fc7", "energy_pj"]


def test_batch_reuses_weights():
    one = hwprune.energy("alexnet", "core-i7").set_index("layer")
    four = hwprune.energy("alexnet", "core-i7", batch=4).set_index("layer")
    assert (four["macs"] == 4 * one["macs"]).all()
    # fc6 at batch 1 is dominated by reading its weights from DRAM once; at batch 4 the
    # weights are still read about once, so energy per input drops.
    assert four.loc["fc6", "energy_pj"] / 4 < 0.5 * one.loc["fc6", "energy_pj"]


def test_densities_from_dataframe_series_and_csv(tmp_path):
    expected = hwprune.energy("lenet-5", "eyeriss", densities={"conv2": (0.5, 0.25)})
    frame = pd.DataFrame({"layer": ["conv2"], "weight_density": [0.5], "act_density": [0.25]})
    pd.testing.assert_frame_equal(hwprune.energy("lenet-5", "eyeriss", densities=frame), expected)
    csv = tmp_path / "d.csv"
    csv.write_text("layer,weight_density,act_density\nconv2,0.5,0.25\n")
    pd.testing.assert_frame_equal(hwprune.energy("lenet-5", "eyeriss", densities=str(csv)),
                                  expected)
    series = hwprune.energy("lenet-5", "eyeriss", densities=pd.Series({"conv2": 0.5}))
    assert series.set_index("layer").loc["conv2", "weight_density"] == 0.5


@pytest.mark.parametrize(
    "densities, message",
    [
        ({"conv9": 0.5}, "does not have as a conv or fc layer"),
        ({"conv1": 0.0}, "must be a fraction in"),
        ({"conv1": 1.5}, "must be a fraction in"),
        ({"conv1": "half"}, "must be a fraction in"),
        ({"conv1": (0.5,)}, "give (weight_density, act_density)"),
        (pd.DataFrame({"layer": ["conv1"], "sparsity": [0.5]}), "unknown column 'sparsity'"),
        (pd.DataFrame({"layer": ["conv1", "conv1"], "weight_density": [0.5, 0.4]}),
         "densities row 2: layer 'conv1' named twice"),
        (pd.Series([0.5, 0.4], index=["conv1", "conv1"]),
         "densities entry 2: layer 'conv1' named twice"),
        ({"conv1": 0.5, " conv1 ": 0.4}, "densities entry 2: layer 'conv1' named twice"),
        (pd.DataFrame({"layer": ["conv1"], "weight_density": [float("nan")]}),
         "densities row 1 ('conv1'): weight_density must be a fraction in (0, 1], got nan"),
        (pd.DataFrame({"layer": ["conv1"], "act_density": pd.array([pd.NA], "Float64")}),
         "act_density must be a fraction in (0, 1], got <NA>"),
        (pd.Series({"conv1": float("nan")}), "weight_density must be a fraction in (0, 1], got nan"),
        ({"conv1": pd.NA}, "weight_density must be a fraction in (0, 1], got <NA>"),
        ({"conv1": True}, "weight_density must be a fraction in (0, 1], got True"),
        ({"conv1": (0.5, None)}, "act_density must be a fraction in (0, 1], got None"),
        (pd.Series({"conv1": np.True_}), "got True"),
        ({"conv1": 10 ** 400}, "must be a fraction in (0, 1]"),
        ({3.5: 0.5}, "densities entry 1: layer name must be text, got 3.5"),
        ({"": 0.5}, "densities entry 1: empty layer name"),
        (42, "must be a dict, Series, DataFrame or CSV path"),
    ],
)
def test_bad_densities_are_clear_errors(densities, message):
    with pytest.raises(InputError) as info:
        hwprune.energy("lenet-5", "eyeriss", densities=densities)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("layer,weight_density,act_density\nconv1,0.5,2\n",
         "line 2 ('conv1'): act_density must be a fraction"),
        ("layer,weight_density\nconv1,0.5\nconv1,0.4\n", "line 3: layer 'conv1' named twice"),
        ("name,density\nconv1,0.5\n", "line 1: header"),
        ("layer,weight_density\nconv1\n", "line 2: 1 fields, the header has 2"),
        ("layer,weight_density\nconv7,0.5\n", "does not have as a conv or fc layer"),
        ("", "empty"),
        ("layer,weight_density\nconv1,nan\n", "line 2 ('conv1'): weight_density must be"),
        ("layer,weight_density\nconv1,True\n", "line 2 ('conv1'): weight_density must be"),
        ("layer,weight_density\n,0.5\n", "line 2: empty layer name"),
        ("layer,weight_density\n\"conv,1\",0.5\n", "layer 'conv,1', which network"),
    ],
)
def test_bad_densities_file_names_the_row(tmp_path, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        hwprune.energy("lenet-5", "eyeriss", densities=str(path))
    assert message in str(info.value)


def test_a_density_left_out_is_one_and_a_nan_given_is_an_error(tmp_path):
    # The one rule of every form: a column, key or CSV cell left out means 1.
    from hwprune.cost.densities import Density, parse_densities

    path = tmp_path / "d.csv"
    path.write_text("\ufefflayer,weight_density,act_density\n\nconv1,0.5,\n conv2 ,,0.25\n")
    expected = {"conv1": Density(0.5, 1.0), "conv2": Density(1.0, 0.25)}
    assert parse_densities(str(path)) == expected
    assert parse_densities(path) == expected
    assert parse_densities({"conv1": {"weight_density": 0.5},
                            "conv2": {"act_density": 0.25}}) == expected
    assert parse_densities(pd.DataFrame({"layer": ["conv1"], "weight_density": [0.5]})) \
        == {"conv1": Density(0.5, 1.0)}
    assert parse_densities(pd.DataFrame({"weight_density": [0.5]}, index=["conv1"])) \
        == {"conv1": Density(0.5, 1.0)}
    with pytest.raises(InputError, match="got nan"):
        parse_densities(pd.DataFrame({"layer": ["conv1", "conv2"],
                                      "weight_density": [0.5, None]}))


def test_bad_options_are_clear_errors():
    with pytest.raises(InputError, match="batch must be an integer from 1 to 65536"):
        hwprune.energy("lenet-5", "eyeriss", batch=0)
    with pytest.raises(UnknownNameError, match="unknown dataflow 'zigzag'"):
        hwprune.energy("lenet-5", "eyeriss", dataflow="zigzag")
    with pytest.raises(InputError, match="needs a 2-D PE array"):
        hwprune.energy("lenet-5", "core-i7", dataflow="row-stationary")
    with pytest.raises(InputError, match="unknown weight format 'coo'"):
        hwprune.energy("lenet-5", "eyeriss", weight_format="coo")


@pytest.mark.parametrize("flow", ["row-stationary", "weight-stationary", "output-stationary",
                                  "cache-tiling"])
def test_every_dataflow_runs_on_eyeriss(flow):
    df = hwprune.energy("alexnet", "eyeriss", dataflow=flow)
    assert (df["dataflow"] == flow).all() and np.isfinite(df["energy_pj"]).all()


def test_a_filter_row_longer_than_eyeriss_ifmap_scratchpad_is_split_into_passes():
    """ViT-B/16's patch embedding (16x16 kernels, stride 16): a whole filter row (S = 16)
    does not fit Eyeriss's 12-entry ifmap scratchpad, so row-stationary cannot pin it;
    the row is then searched in segments instead of refusing the layer. A row that fits
    keeps its pinned mapping."""
    from hwprune.workload.builder import NetworkBuilder

    b = NetworkBuilder("patches", (3, 224, 224))
    b.conv("patch", b.input, 768, 16, stride=16)
    net = b.build()
    df = hwprune.api.energy(net, "eyeriss")
    assert len(df) == 1 and df["energy_pj"].iloc[0] > df["macs"].iloc[0]     # at least 1 per MAC
    from hwprune.cost.dataflow import get_dataflow
    from hwprune.cost.densities import Density
    from hwprune.cost.energy import layer_cost
    from hwprune.cost.loopnest import LoopNest

    dev = hwprune.device("eyeriss")
    flow = get_dataflow("row-stationary", dev)
    split = layer_cost(LoopNest.of(net["patch"]), dev, flow, Density(1.0, 1.0), "dense", 1).mapping
    assert split.tiles[0][6] < 16                       # S in the RF: a segment of the row
    whole = layer_cost(LoopNest.of(hwprune.network("alexnet")["conv1"]), dev, flow, Density(1.0, 1.0),
                       "dense", 1).mapping
    assert whole.tiles[0][6] == 11                      # AlexNet's 11-wide rows stay pinned
