"""Per-profile mapping constraints: which loop dimensions each array axis may unroll
and each memory level may iterate over ([mapping] in a device profile)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import hwprune
from hwprune.errors import InputError, ProfileError

EYERISS = Path(hwprune.__file__).resolve().parent.parent / "hardware_profiles" / "eyeriss.toml"


def _eyeriss_with(tmp_path, mapping: str, name: str = "c.toml"):
    text = EYERISS.read_text().replace('id = "eyeriss"', 'id = "eyeriss-constrained"')
    path = tmp_path / name
    path.write_text(text.replace("[compute]", mapping + "\n[compute]", 1))
    return path


def _spatial(mapping: str) -> set[str]:
    inside = re.match(r"spatial\[([^\]]*)\]", mapping).group(1)
    return {tok[0] for tok in inside.split() if tok != "1"}


def _tile(mapping: str, level: str) -> set[str]:
    inside = re.search(rf"{level}\[([^\]]*)\]", mapping).group(1)
    return {tok[0] for tok in inside.split() if tok != "1"}


def test_eyeriss_filter_rows_down_output_rows_across(tmp_path):
    dev = hwprune.device(str(_eyeriss_with(tmp_path, '[mapping]\nspatial = [["R"], ["E"]]')))
    assert dev.mapping_spatial == (("R",), ("E",))
    table = hwprune.energy("alexnet", dev)
    convs = table[table["kind"] == "conv"]
    assert all(_spatial(m) <= {"R", "E"} for m in convs["mapping"])
    assert any(_spatial(m) == {"R", "E"} for m in convs["mapping"])
    free = hwprune.energy("alexnet", "eyeriss")
    assert table["energy_pj"].sum() >= free["energy_pj"].sum() * (1 - 1e-9)     # a subset of mappings


def test_a_tpu_like_array_unrolls_only_input_and_output_channels(tmp_path):
    dev = hwprune.device(str(_eyeriss_with(tmp_path, '[mapping]\nspatial = [["C"], ["M"]]')))
    table = hwprune.energy("resnet18", dev, dataflow="weight-stationary")
    kernels = table[table["runs_as"] == "kernel"]
    assert all(_spatial(m) <= {"C", "M"} for m in kernels["mapping"])


def test_a_level_iterates_only_over_the_dimensions_it_may(tmp_path):
    dev = hwprune.device(str(_eyeriss_with(tmp_path, '[mapping.levels]\nRF = ["S", "F"]')))
    table = hwprune.energy("alexnet", dev)
    kernels = table[table["runs_as"] == "kernel"]
    assert all(_tile(m, "RF") <= {"S", "F"} for m in kernels["mapping"])


@pytest.mark.parametrize("mapping, key, reason", [
    ('[mapping]\nspatial = [["R"]]', "mapping.spatial", "must be a list of 2 list(s)"),
    ('[mapping]\nspatial = [["R"], ["K"]]', "mapping.spatial[1]", "'K' is not a loop dimension"),
    ('[mapping]\nspatial = [["R", "R"], ["E"]]', "mapping.spatial[0]", "names a dimension twice"),
    ('[mapping.levels]\nL9 = ["S"]', "mapping.levels.L9", "is not a storage level"),
    ('[mapping.levels]\nDRAM = ["S"]', "mapping.levels.DRAM", "outermost level"),
    ('[mapping]\ncolour = 1', "mapping.colour", "unknown key"),
])
def test_a_wrong_constraint_names_file_key_and_reason(tmp_path, mapping, key, reason):
    path = _eyeriss_with(tmp_path, mapping)
    with pytest.raises(ProfileError) as err:
        hwprune.device(str(path))
    assert str(path) in str(err.value) and key in str(err.value) and reason in str(err.value)


def test_constraints_a_dataflow_cannot_meet_are_refused(tmp_path):
    dev = hwprune.device(str(_eyeriss_with(tmp_path, '[mapping]\nspatial = [["N"], ["E"]]')))
    with pytest.raises(InputError, match="leaves dataflow 'row-stationary' nothing to unroll on axis 0"):
        hwprune.energy("lenet-5", dev)
    dev = hwprune.device(str(_eyeriss_with(tmp_path, '[mapping.levels]\nRF = ["F"]', "d.toml")))
    with pytest.raises(InputError, match="leaves out S"):
        hwprune.energy("lenet-5", dev)
