"""N:M, block and rounded-node schemes (issue 23): names, masks, storage, work counts,
how devices without the hardware run them, the profiles' structured-sparsity keys, and
the policies that consider them."""

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hwprune
from hwprune.errors import InputError, ProfileError, UnknownNameError
from hwprune.evaluate import Plan, evaluate
from hwprune.latency import layer_latency
from hwprune.latency.network import accelerated_schemes, breakeven, default_schemes
from hwprune.latency.work import KernelShape, kernel_work, runs_as
from hwprune.prune import granularity as G
from hwprune.schemes import FINE, Group, Kernel, scheme
from hwprune.sparse.storage import parse_format, storage_cost

# ---------------------------------------------------------------------------- names


def test_parametric_names_register_once_and_aliases_resolve():
    assert scheme("nm") is scheme("2:4") and scheme("2:4").nm == (2, 4)
    assert scheme("block") is scheme("block-4x4") and scheme("block").block == (4, 4)
    s = scheme("3:8")
    assert scheme("3:8") is s and s.fixed_density == 3 / 8 and s.kernel is Kernel.NM
    b = scheme("block-2x16")
    assert b.group is Group.BLOCK and b.group_width((1, 1), 8) == 16
    r = scheme("node-round8")
    assert r.removes_units and r.masks_consumers and r.round_to == 8
    assert {"2:4", "1:4", "4:8", "block-4x4"} <= set(hwprune.api.scheme_names(pruning_only=True))


@pytest.mark.parametrize("bad, reason", [
    ("4:4", "1 <= N < M"), ("0:4", "1 <= N < M"), ("2:300", "1 <= N < M"),
    ("block-1x1", "more than one weight"), ("block-0x4", "from 1 to 256"),
    ("block-512x2", "from 1 to 256"), ("node-round1", "2 <= K"), ("node-round999", "2 <= K"),
])
def test_bad_parametric_names_say_what_is_accepted(bad, reason):
    with pytest.raises(InputError, match=reason):
        scheme(bad)


def test_unknown_names_list_the_parametric_forms():
    with pytest.raises(UnknownNameError, match="N:M .*block-RxC, node-roundK"):
        scheme("2-4")


# ---------------------------------------------------------------------------- masks


@settings(max_examples=60, deadline=None)
@given(out=st.integers(1, 9), row=st.integers(1, 40), nm=st.sampled_from([(2, 4), (1, 4), (4, 8), (3, 5)]),
       seed=st.integers(0, 2 ** 16))
def test_nm_mask_keeps_at_most_n_of_every_window(out, row, nm, seed):
    n, m = nm
    s = scheme(f"{n}:{m}")
    groups = G.groups_of((out, row), s)
    scores = np.random.default_rng(seed).random(groups.count)
    keep = G.keep_groups(s, groups, scores, 0.3)
    mask = G.to_mask(groups, keep)
    windows = math.ceil(row / m)
    padded = np.zeros((out, windows * m), dtype=bool)
    padded[:, :row] = mask
    per_window = padded.reshape(out, windows, m).sum(axis=2)
    assert (per_window <= n).all()
    full = per_window[:, : row // m]
    assert (full == n).all()                       # a whole window keeps exactly N
    # the kept weights are the best of their window
    for o in range(out):
        for w in range(row // m):
            win = scores.reshape(out, row)[o, w * m:(w + 1) * m]
            kept = mask[o, w * m:(w + 1) * m]
            assert win[kept].min() >= win[~kept].max()


@settings(max_examples=60, deadline=None)
@given(out=st.integers(1, 12), c=st.integers(1, 4), k=st.sampled_from([1, 3]),
       rc=st.sampled_from([(4, 4), (2, 8), (1, 4), (8, 1), (3, 5)]), density=st.floats(0.05, 1.0),
       seed=st.integers(0, 2 ** 16))
def test_block_mask_keeps_or_removes_whole_blocks(out, c, k, rc, density, seed):
    r, cc = rc
    s = scheme(f"block-{r}x{cc}")
    shape = (out, c, k, k) if k > 1 else (out, c * 3)
    groups = G.groups_of(shape, s)
    scores = np.random.default_rng(seed).random(groups.count)
    keep = G.keep_groups(s, groups, scores, density)
    mask = G.to_mask(groups, keep).reshape(out, -1)
    rows, cols = mask.shape
    for bi in range(0, rows, r):
        for bj in range(0, cols, cc):
            block = mask[bi:bi + r, bj:bj + cc]
            assert block.all() or not block.any()
    assert keep.any()


@given(units=st.integers(1, 300), density=st.floats(0.01, 1.0), k=st.sampled_from([2, 4, 8, 16]))
def test_rounded_node_keeps_a_multiple_of_k_or_every_unit(units, density, k):
    s = scheme(f"node-round{k}")
    kept = s.kept_units(units, density)
    assert kept == units or kept % k == 0
    assert kept >= scheme("node").kept_units(units, density)
    groups = G.groups_of((units, 5), s)
    keep = G.keep_groups(s, groups, np.arange(units, dtype=float), density)
    assert keep.sum() == kept


def test_pruning_a_reference_model_two_of_four_hits_the_pattern():
    from hwprune.prune import models
    from hwprune.prune.adapter import NumpyAdapter
    from hwprune.prune.schedules import prune

    model, data = models.trained("digits-mlp", 0)
    adapter = NumpyAdapter(model, data, models.spec("digits-mlp").recipe)
    result = prune(adapter, None, "magnitude", "2:4", 0.3, "agp", None, 1, None, 0)
    for lay in adapter.prunable():
        mask = lay.mask.reshape(lay.mask.shape[0], -1)
        cols = mask.shape[1] - mask.shape[1] % 4
        assert (mask[:, :cols].reshape(mask.shape[0], -1, 4).sum(axis=2) == 2).all(), lay.name
    assert 0.0 < result.accuracy_after <= 1.0


# ------------------------------------------------------------------- storage and work


def test_storage_formats_parse_and_count_metadata():
    assert parse_format("nm") == ("nm", (2, 4)) and parse_format("block") == ("block", (4, 4))
    cost = storage_cost("2:4", 64, 128, 0.9, 2, 32)          # density ignored: N / M
    assert cost.value_bytes == 64 * 128 / 2 * 2 and cost.index_bytes == 64 * 64 * 2 / 8
    blocks = storage_cost("block-4x4", 64, 128, 0.25, 2, 16)
    kept = 0.25 * 16 * 32
    assert blocks.value_bytes == kept * 16 * 2 and blocks.index_bytes == kept * 2 + 17 * 4
    with pytest.raises(InputError, match="accepted: dense, csr, simd-group, rle, N:M"):
        parse_format("2to4")


def test_work_counts_and_how_a_device_without_the_hardware_runs_them():
    shape = KernelShape(rows=64, cols=130, n=1)
    nm = kernel_work(shape, "2:4", 0.1)
    assert nm.density == 0.5 and nm.stored == 64 * 33 * 2 and nm.index_entries == nm.stored
    generic = runs_as(nm, hardware=False)
    assert generic.kernel is Kernel.CSR and generic.stored == nm.stored
    assert runs_as(nm, hardware=True) is nm
    blk = kernel_work(shape, "block-4x4", 0.25)
    assert blk.stored == round(0.25 * 16 * 33) * 16 and blk.index_entries == round(0.25 * 16 * 33)
    as_groups = runs_as(blk, hardware=False)
    assert as_groups.kernel is Kernel.GROUP_CSR and as_groups.group == 4
    assert as_groups.index_entries == blk.index_entries * 4 and as_groups.stored == blk.stored
    rounded = kernel_work(KernelShape(rows=100, cols=30, n=1), "node-round8", 0.3)
    assert rounded.rows == 32


@pytest.mark.parametrize("dev", ["cortex-m4", "core-i7", "titan-x", "eyeriss", "a100"])
@pytest.mark.parametrize("name", ["2:4", "block-4x4", "node-round8"])
def test_every_device_class_prices_every_new_scheme(dev, name):
    device = hwprune.device(dev)
    layer = hwprune.network("lenet-5")["conv2"]
    est = layer_latency(layer, device, name, 0.25)
    assert est.seconds > 0 and math.isfinite(est.seconds)
    net = hwprune.network("lenet-5")
    plan = Plan.uniform(net, name, 0.25, skip=("ip2",))
    ev = evaluate(net, device, plan)
    total = ev.total
    assert total.energy > 0 and total.latency_s > 0


def test_titan_x_runs_two_of_four_as_csr_and_the_a100_on_its_sparse_tensor_cores():
    layer = hwprune.network("alexnet")["conv3"]
    titan = hwprune.device("titan-x")
    assert layer_latency(layer, titan, "2:4").seconds == pytest.approx(
        layer_latency(layer, titan, FINE, 0.5).seconds)
    a100 = hwprune.device("a100")
    dense = layer_latency(layer, a100, "dense", batch=32).seconds
    sparse = layer_latency(layer, a100, "2:4", batch=32).seconds
    assert sparse < dense and dense / sparse <= 2.0
    assert a100.sparsity.runs_natively("2:4") and not a100.sparsity.runs_natively("1:4")


def test_breakeven_shows_the_patterns_a_device_runs_natively():
    assert "2:4" in {s.name for s in default_schemes(hwprune.device("a100"))}
    assert {s.name for s in accelerated_schemes(hwprune.device("a100"))} == {"2:4", "node-round8"}
    assert accelerated_schemes(hwprune.device("titan-x")) == ()
    table = breakeven(hwprune.network("lenet-5"), hwprune.device("a100"), batch=8)
    nm = table[table["scheme"] == "2:4"]
    assert len(nm) == 4 and set(nm["breakeven_density"].dropna()) <= {0.5}


# ------------------------------------------------------------------------ profiles

TITAN_X = (Path(__file__).parent.parent / "hardware_profiles" / "titan-x.toml").read_text()


def _profile(tmp_path, sparsity: str) -> str:
    """titan-x's profile with ``sparsity`` lines added to its [sparsity] table."""
    text = TITAN_X.replace('id = "titan-x"', 'id = "tc"').replace(
        "index_bits = 32\n", "index_bits = 32\n" + sparsity + "\n", 1)
    path = tmp_path / "tc.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("body, key, reason", [
    ('structured = ["2:4"]', "structured_speedup", "missing key"),
    ('structured = ["2:4"]\nstructured_speedup = 2.0', "structured_metadata_bits", "missing key"),
    ('structured_speedup = 2.0', "structured_speedup", "'structured', which is missing"),
    ('structured = ["block-4x4"]\nstructured_speedup = 2.0\nstructured_metadata_bits = 2',
     "structured", "not an N:M pattern"),
    ('structured = []', "structured", "non-empty list"),
    ('structured = ["2:4", "2:4"]\nstructured_speedup = 2.0\nstructured_metadata_bits = 2',
     "structured", "twice"),
    ('structured = ["2:4"]\nstructured_speedup = 40.0\nstructured_metadata_bits = 2',
     "structured_speedup", "from 1 to 16"),
    ('channel_multiple = 0', "channel_multiple", "integer"),
    ('channel_multiple = 300', "channel_multiple", "from 1 to 256"),
])
def test_structured_sparsity_keys_are_checked_at_load(tmp_path, body, key, reason):
    with pytest.raises(ProfileError, match=f"sparsity.{key}.*{reason}"):
        hwprune.device(_profile(tmp_path, body))


def test_a_profile_with_structured_sparsity_loads(tmp_path):
    dev = hwprune.device(_profile(tmp_path, 'structured = ["2:4", "1:4"]\nstructured_speedup = 2.0\n'
                                            'structured_metadata_bits = 2\nchannel_multiple = 8'))
    assert dev.sparsity.structured == ("2:4", "1:4") and dev.sparsity.channel_multiple == 8


def test_an_nm_density_other_than_n_over_m_is_refused(capsys):
    from hwprune.cli import main

    assert main(["granularity", "lenet-5", "--device", "a100", "--density", "2:4=0.7,fine=0.3"]) == 2
    assert "2:4 keeps 0.5 of every row" in capsys.readouterr().err
    assert main(["granularity", "lenet-5", "--device", "a100", "--density", "2:4=0.5,fine=0.3"]) == 0
