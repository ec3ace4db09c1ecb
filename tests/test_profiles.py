"""Device profiles: the built-in ones are complete and sourced; bad files are clear errors."""

import os
import tomllib
from collections import Counter
from pathlib import Path

import pytest

import hwprune
from hwprune.errors import InputError, ProfileError, UnknownNameError
from hwprune.hardware import DEVICE_CLASSES, builtin_profile_dir, list_devices, load_profile

REQUIRED_IDS = {"cortex-m4", "core-i7", "titan-x", "eyeriss"}

MINIMAL = """\
id = "toy"
name = "Toy MCU"
class = "mcu"
clock_hz = 1e8

[compute]
units = 1
simd_lanes = 2
simd_element_bits = 16
macs_per_unit_per_cycle = 2
mac_energy_pj = 1.0

[[memory]]
name = "L1"
kind = "cache"
size_bytes = 4096
line_bytes = 32
word_bytes = 4
associativity = 4
latency_cycles = 1
read_energy_pj = 2.0
write_energy_pj = 2.0
bandwidth_bytes_per_cycle = 8

[[memory]]
name = "DRAM"
kind = "dram"
size_bytes = 1048576
line_bytes = 32
word_bytes = 4
latency_cycles = 50
read_energy_pj = 100.0
write_energy_pj = 100.0
bandwidth_gb_s = 0.4
"""


def write(tmp_path: Path, text: str, name: str = "toy.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_builtin_devices_are_listed():
    ids = {dev.id for dev in list_devices()}
    assert REQUIRED_IDS <= ids
    for dev in list_devices():
        assert dev.device_class in DEVICE_CLASSES
        assert dev.memory[-1].kind in ("dram", "flash", "sram")


REPO = Path(__file__).resolve().parents[1]


def test_builtin_profiles_come_from_the_installed_hardware_profiles_package():
    # The repository keeps them in the top-level hardware_profiles/ directory; pip
    # installs it as hwprune/hardware_profiles/ (a wheel) or maps it there (editable).
    directory = builtin_profile_dir()
    assert directory.is_dir() and not (REPO / "hwprune" / "hardware_profiles").exists()
    shipped = {p.name: p.read_bytes() for p in directory.glob("*.toml")}
    in_repo = {p.name: p.read_bytes() for p in (REPO / "hardware_profiles").glob("*.toml")}
    assert shipped == in_repo and len(shipped) >= len(REQUIRED_IDS)
    for dev in list_devices():
        if dev.id in REQUIRED_IDS:   # origin: the file it was read from
            assert Path(dev.origin).parent == directory and Path(dev.origin).is_file()


def test_pyproject_names_every_package_and_maps_the_profiles():
    # An explicit package list (a find directive cannot map hardware_profiles/ into
    # hwprune): a package added under hwprune/ and not named here would not install.
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts)
               for p in (REPO / "hwprune").rglob("__init__.py")}
    assert set(config["packages"]) == on_disk | {"hwprune.hardware_profiles"}
    assert config["package-dir"] == {"hwprune.hardware_profiles": "hardware_profiles"}
    assert config["package-data"]["hwprune.hardware_profiles"] == ["*.toml"]


def _numeric_keys(table: dict, prefix: str = ""):
    for key, value in table.items():
        if key == "sources":
            continue
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric or key == "partition_bytes":
            yield prefix, key, table.get("sources", {})


@pytest.mark.parametrize("path", sorted(builtin_profile_dir().glob("*.toml")), ids=lambda p: p.stem)
def test_every_builtin_number_names_its_source(path):
    data = tomllib.loads(path.read_text())
    tables = [("", data), ("compute.", data["compute"])]
    for table in ("sparsity", "latency"):
        if table in data:
            tables.append((f"{table}.", data[table]))
    tables += [(f"memory.{lvl['name']}.", lvl) for lvl in data["memory"]]
    missing = [
        prefix + key
        for prefix, table in tables
        for _, key, sources in _numeric_keys(table, prefix)
        if not str(sources.get(key, "")).strip()
    ]
    assert missing == [], f"{path.name}: values without a source: {missing}"


def test_eyeriss_uses_the_published_normalized_costs():
    # Chen et al. ISCA 2016: DRAM 200, global buffer 6, array 2, RF 1, relative to a MAC.
    dev = hwprune.device("eyeriss")
    costs = {lvl.name: lvl.read_energy_pj / dev.compute.mac_energy_pj for lvl in dev.memory}
    assert costs == {"RF": 1.0, "Array": 2.0, "GLB": 6.0, "DRAM": 200.0}
    assert (dev.compute.array_rows, dev.compute.array_cols) == (12, 14)
    assert dev.level("GLB").size_bytes == 108 * 1024


def test_required_device_features():
    m4 = hwprune.device("cortex-m4")
    assert not any(lvl.is_cache for lvl in m4.memory)
    assert m4.level("Flash").latency_cycles > m4.level("SRAM").latency_cycles
    assert (m4.compute.simd_lanes, m4.compute.simd_element_bits) == (2, 16)
    i7 = hwprune.device("core-i7")
    assert i7.level_names == ("RF", "L1", "L2", "L3", "DRAM")
    assert (i7.compute.simd_lanes, i7.compute.simd_element_bits) == (8, 32)
    assert i7.level("L1").sets == 64
    gpu = hwprune.device("titan-x")
    assert gpu.compute.units * gpu.compute.macs_per_unit_per_cycle == 3072
    assert gpu.level("DRAM").bandwidth_bytes_per_cycle * gpu.clock_hz == pytest.approx(336.5e9)


def test_minimal_user_profile_loads_by_path(tmp_path):
    dev = hwprune.device(str(write(tmp_path, MINIMAL)))
    assert dev.id == "toy" and dev.level("L1").sets == 4096 // (32 * 4)
    # 0.4 GB/s at 100 MHz is 4 bytes per cycle.
    assert dev.level("DRAM").bandwidth_bytes_per_cycle == pytest.approx(4.0)


@pytest.mark.parametrize(
    "old, new, key, reason",
    [
        ('class = "mcu"', 'class = "mcu"\ncolour = "red"', "colour", "unknown key"),
        ('class = "mcu"', 'class = "fpga"', "class", "one of: mcu, cpu, gpu, accelerator"),
        ('clock_hz = 1e8', 'clock_hz = "fast"', "clock_hz", "a number > 0"),
        ('clock_hz = 1e8', 'clock_hz = -5', "clock_hz", "a number > 0"),
        ('units = 1', 'units = 1.5', "compute.units", "an integer >= 1"),
        ('name = "Toy MCU"\n', '', "name", "missing key"),
        ('mac_energy_pj = 1.0\n', '', "compute.mac_energy_pj", "missing key"),
        ('size_bytes = 4096', 'size_bytes = 0', "memory[0] (L1).size_bytes", "an integer >= 1"),
        ('size_bytes = 4096', 'size_bytes = 4000', "memory[0] (L1).size_bytes", "not divisible"),
        ('associativity = 4\n', '', "memory[0] (L1).associativity", "number of ways"),
        ('latency_cycles = 50', 'latency_cycles = 0.5', "memory[1] (DRAM).latency_cycles",
         "levels out of order"),
        ('read_energy_pj = 100.0', 'read_energy_pj = 1.0', "memory[1] (DRAM).read_energy_pj",
         "levels out of order"),
        ('word_bytes = 4\nassoc', 'word_bytes = 64\nassoc', "memory[0] (L1).word_bytes",
         "must not exceed line_bytes"),
        ('bandwidth_gb_s = 0.4', 'bandwidth_gb_s = 0.4\nbandwidth_bytes_per_cycle = 4',
         "memory[1] (DRAM).bandwidth_bytes_per_cycle", "exactly one"),
        ('kind = "dram"', 'kind = "cache"\nassociativity = 1', "memory[1].kind", "backing memory"),
        ('kind = "dram"', 'kind = "tape"', "memory[1] (DRAM).kind", "one of: register_file"),
        ('id = "toy"', 'id = "Toy Device"', "id", "lower-case"),
        ('[compute]', '[sources]\nclock_hz = "ok"\nunits = "?"\n[compute]', "sources.units",
         "names no numeric key"),
        ('clock_hz = 1e8', 'clock_hz = 1e8\ndataflow = "diagonal"', "dataflow",
         "one of: row-stationary"),
        ('[compute]', '[sparsity]\nzero_weights = "maybe"\n[compute]', "sparsity.zero_weights",
         "one of: none, gate, skip"),
        ('[compute]', '[sparsity]\nweight_format = "coo"\n[compute]', "sparsity.weight_format",
         "accepted: dense, csr, simd-group, rle, N:M"),
        ('kind = "dram"', 'kind = "dram"\nholds = ["weights", "bias"]', "memory[1] (DRAM).holds",
         "distinct operands"),
        ('name = "L1"\nkind = "cache"', 'name = "L1"\nkind = "cache"\nholds = ["weights"]',
         "memory[0].holds", "must hold the outputs"),
        ('associativity = 4\n', 'associativity = 4\npartition_bytes = { weights = 1024 }\n',
         "memory[0] (L1).partition_bytes", "exactly one part"),
        ('associativity = 4\n', 'associativity = 4\npartition_bytes = { weights = 4000, '
         '"inputs+outputs" = 1000 }\n', "memory[0] (L1).partition_bytes", "more than size_bytes"),
        ('kind = "dram"\nsize_bytes = 1048576\nline_bytes = 32\nword_bytes = 4\n'
         'latency_cycles = 50\nread_energy_pj = 100.0\nwrite_energy_pj = 100.0\n',
         'kind = "flash"\nholds = ["weights", "inputs"]\nsize_bytes = 1048576\n'
         'line_bytes = 32\nword_bytes = 4\nlatency_cycles = 50\nread_energy_pj = 100.0\n',
         "memory[1] (DRAM).holds", "can hold only weights"),
    ],
)
def test_bad_profiles_name_file_key_and_reason(tmp_path, old, new, key, reason):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    err = info.value
    assert err.path == str(path)
    assert err.key == key
    assert reason in err.reason
    assert str(path) in str(err) and key in str(err)


def test_energy_unit_defaults_to_pj_and_accepts_mac_equivalents(tmp_path):
    assert load_profile(write(tmp_path, MINIMAL)).energy_unit == "pJ"
    explicit = load_profile(write(tmp_path, MINIMAL.replace(
        'clock_hz = 1e8', 'clock_hz = 1e8\nenergy_unit = "pJ"', 1)))
    assert explicit.energy_unit == "pJ" and not explicit.energy_normalized
    normalized = load_profile(write(tmp_path, MINIMAL.replace(
        'clock_hz = 1e8', 'clock_hz = 1e8\nenergy_unit = "MAC-equivalents"', 1)))
    assert normalized.energy_unit == "MAC-equivalents" and normalized.energy_normalized


@pytest.mark.parametrize(
    "value, key, reason",
    [
        ('"nJ"', "energy_unit", "'nJ' is not accepted; use one of: pJ, MAC-equivalents"),
        ('"mac-equivalents"', "energy_unit", "use one of: pJ, MAC-equivalents"),
        ("1", "energy_unit", "must be a non-empty string"),
    ],
)
def test_bad_energy_unit_names_file_key_and_accepted_values(tmp_path, value, key, reason):
    path = write(tmp_path, MINIMAL.replace("clock_hz = 1e8", f"clock_hz = 1e8\nenergy_unit = {value}"))
    with pytest.raises(InputError) as info:
        load_profile(path)
    err = info.value
    assert isinstance(err, ProfileError) and err.path == str(path) and err.key == key
    assert reason in err.reason and str(path) in str(err) and key in str(err)


def test_mac_equivalents_need_a_mac_energy_of_one(tmp_path):
    text = MINIMAL.replace("clock_hz = 1e8", 'clock_hz = 1e8\nenergy_unit = "MAC-equivalents"')
    with pytest.raises(ProfileError) as info:
        load_profile(write(tmp_path, text.replace("mac_energy_pj = 1.0", "mac_energy_pj = 4.6")))
    assert info.value.key == "compute.mac_energy_pj" and "must be 1" in info.value.reason
    with pytest.raises(ProfileError) as info:      # out-of-order message in the profile's unit
        load_profile(write(tmp_path, text.replace("read_energy_pj = 100.0", "read_energy_pj = 1.0")))
    assert "(1 MAC-equivalents) comes after" in info.value.reason


def test_eyeriss_is_normalized_and_core_i7_is_in_pj():
    eyeriss, core_i7 = hwprune.device("eyeriss"), hwprune.device("core-i7")
    assert eyeriss.energy_unit == "MAC-equivalents" and eyeriss.energy_normalized
    assert core_i7.energy_unit == "pJ" and not core_i7.energy_normalized
    assert {d.id: d.energy_unit for d in list_devices()} == {
        "cortex-m4": "pJ", "cortex-m55": "pJ", "core-i7": "pJ", "titan-x": "pJ", "a100": "pJ",
        "eyeriss": "MAC-equivalents"}
    listing = hwprune.devices().set_index("device")["energy_unit"]
    assert (listing["eyeriss"], listing["core-i7"]) == ("MAC-equivalents", "pJ")
    for dev, unit in ((eyeriss, "MAC-equivalents"), (core_i7, "pJ")):
        detail = hwprune.device_detail(dev).set_index("key")["unit"]
        energies = detail[detail.index.str.contains("energy")]
        assert len(energies) > 2
        assert set(energies) == {unit, f"{unit}/word"}
        assert detail["compute.mac_energy_pj"] == unit


def test_energy_total_line_says_mac_equivalents_on_eyeriss(capsys):
    from hwprune.cli import main

    assert main(["energy", "lenet-300-100", "--device", "eyeriss"]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert total.startswith("total ") and "MAC-equivalents (normalized energies)" in total
    assert "pJ" not in total
    assert main(["energy", "lenet-300-100", "--device", "core-i7"]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert total.startswith("total ") and " pJ = " in total and "MAC-equivalents" not in total


def test_energy_plot_is_labelled_in_the_device_unit(capsys, monkeypatch, tmp_path):
    from hwprune.cli import main
    from hwprune.report import plots

    units = []
    monkeypatch.setattr(plots, "plot_energy", lambda df, levels, title, unit, path: units.append(unit))
    for device in ("eyeriss", "core-i7"):
        assert main(["energy", "lenet-300-100", "--device", device,
                     "--plot", str(tmp_path / f"{device}.png")]) == 0
    assert units == ["MAC-equivalents", "pJ"]


def test_not_toml_and_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(write(tmp_path, "id = = 3"))
    with pytest.raises(ProfileError, match="no such file"):
        hwprune.device(str(tmp_path / "absent.toml"))


def test_noc_level_holds_no_data(tmp_path):
    noc = MINIMAL.replace(
        '[[memory]]\nname = "DRAM"',
        '[[memory]]\nname = "Bus"\nkind = "noc"\nline_bytes = 8\nword_bytes = 4\n'
        'latency_cycles = 2\nread_energy_pj = 3.0\nwrite_energy_pj = 3.0\n'
        'bandwidth_bytes_per_cycle = 8\n\n[[memory]]\nname = "DRAM"',
    )
    dev = load_profile(write(tmp_path, noc))
    assert dev.level("Bus").size_bytes is None
    with pytest.raises(ProfileError, match="holds none"):
        load_profile(write(tmp_path, noc.replace('kind = "noc"', 'kind = "noc"\nsize_bytes = 8')))


def test_profile_directories_and_environment(tmp_path, monkeypatch):
    write(tmp_path, MINIMAL)
    assert "toy" not in {d.id for d in list_devices()}
    assert hwprune.device("toy", profiles=[tmp_path]).id == "toy"
    monkeypatch.setenv("HWPRUNE_PROFILES", str(tmp_path))
    assert hwprune.device("toy").id == "toy"
    assert "toy" in set(hwprune.devices()["device"])


def test_duplicate_ids_and_bad_directories(tmp_path):
    write(tmp_path, MINIMAL.replace('id = "toy"', 'id = "eyeriss"'))
    with pytest.raises(InputError, match="defined twice"):
        list_devices([tmp_path])
    with pytest.raises(InputError, match="does not exist"):
        list_devices([tmp_path / "missing"])


def test_unknown_device_lists_known_ones():
    with pytest.raises(UnknownNameError, match="known devices: .*cortex-m4"):
        hwprune.device("pentium")


# --- issue 18: level names, bounds, line sizes, files and directories --------------------


def test_reserved_level_names_match_the_energy_tables_fixed_columns():
    """hardware/ keeps its own copy of the energy table's fixed columns (it may not import
    cost/); this keeps the copy equal to the columns the table really has."""
    from hwprune.cost.energy import OPERAND_COLUMNS, level_columns
    from hwprune.hardware.profile import ENERGY_TABLE_COLUMNS, LEVEL_COLUMN_SUFFIXES, RESERVED_LEVEL_NAMES
    for device in ("core-i7", "eyeriss", "cortex-m4", "titan-x"):
        dev = hwprune.device(device)
        table = hwprune.energy("lenet-300-100", dev)
        derived = {name + s for name in level_columns(dev) for s in LEVEL_COLUMN_SUFFIXES}
        assert derived <= set(table.columns)
        assert set(table.columns) - derived == set(ENERGY_TABLE_COLUMNS), device
    assert set(OPERAND_COLUMNS) <= set(ENERGY_TABLE_COLUMNS)
    assert set(RESERVED_LEVEL_NAMES) == {"energy", "weights", "index", "inputs", "outputs",
                                         "compute"}


@pytest.mark.parametrize(
    "old, new, key, reason",
    [
        ('name = "DRAM"', 'name = "Energy"', "memory[1].name", "energy_pj would overwrite"),
        ('name = "DRAM"', 'name = "Weights"', "memory[1].name", "weights_pj would overwrite"),
        ('name = "L1"', 'name = "compute"', "memory[0].name", "compute_pj would overwrite"),
        ('name = "DRAM"', 'name = "INPUTS"', "memory[1].name", "may not be any of"),
        ('name = "DRAM"', 'name = "Memory"', "memory[1].name", "main memory"),
        ('name = "DRAM"', 'name = "l1"', "memory[1].name", "unique, ignoring case"),
        ('name = "L1"', 'name = "L1\\nDRAM"', "memory[0].name", "printable"),
        ('name = "L1"', 'name = "' + "x" * 33 + '"', "memory[0].name", "at most 32"),
        ('name = "L1"', 'name = " L1"', "memory[0].name", "leading or trailing"),
        ('name = "Toy MCU"', 'name = "Toy\\u0007"', "name", "printable"),
        ('line_bytes = 32\nword_bytes = 4\nassoc', 'line_bytes = 3\nword_bytes = 1\nassoc',
         "memory[0] (L1).line_bytes", "power of two"),
        ('line_bytes = 32\nword_bytes = 4\nlatency_cycles = 50',
         'line_bytes = 48\nword_bytes = 4\nlatency_cycles = 50', "memory[1] (DRAM).line_bytes",
         "power of two"),
        ('mac_energy_pj = 1.0', 'mac_energy_pj = 1e-300', "compute.mac_energy_pj", "1e-06"),
        ('mac_energy_pj = 1.0', 'mac_energy_pj = 1e7', "compute.mac_energy_pj", "outside"),
        ('read_energy_pj = 100.0', 'read_energy_pj = 1e9', "memory[1] (DRAM).read_energy_pj",
         "outside the accepted range"),
        ('clock_hz = 1e8', 'clock_hz = 1e12', "clock_hz", "100 GHz"),
        ('clock_hz = 1e8', 'clock_hz = 10', "clock_hz", "1 kHz"),
        ('size_bytes = 1048576', 'size_bytes = 2199023255552', "memory[1] (DRAM).size_bytes",
         "1 TiB"),
        ('size_bytes = 1048576', 'size_bytes = 1048576\ninstances = 2000000',
         "memory[1] (DRAM).instances", "2^20"),
        ('units = 1', 'units = 1e300', "compute.units", "outside"),
        ('simd_element_bits = 16', 'simd_element_bits = 128', "compute.simd_element_bits",
         "64"),
        ('latency_cycles = 50', 'latency_cycles = 1e12', "memory[1] (DRAM).latency_cycles",
         "1e+09"),
        ('bandwidth_gb_s = 0.4', 'bandwidth_gb_s = 1e9', "memory[1] (DRAM).bandwidth_gb_s",
         "PB/s"),
        ('bandwidth_bytes_per_cycle = 8', 'bandwidth_bytes_per_cycle = 1e-9',
         "memory[0] (L1).bandwidth_bytes_per_cycle", "outside"),
        ('associativity = 4', 'associativity = 131072', "memory[0] (L1).associativity",
         "65536"),
        ('clock_hz = 1e8', 'clock_hz = nan', "clock_hz", "a number > 0"),
        ('clock_hz = 1e8', 'clock_hz = inf', "clock_hz", "a number > 0"),
    ],
)
def test_names_bounds_and_lines_are_checked_at_load(tmp_path, old, new, key, reason):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    assert info.value.key == key and str(path) in str(info.value)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


def test_latency_and_curve_bounds(tmp_path):
    cpu = MINIMAL.replace('class = "mcu"', 'class = "cpu"')
    for table, key in (("[latency]\nrow_cycles = 1e12\n", "latency.row_cycles"),
                       ("[latency]\nrow_cycles = 1e-12\n", "latency.row_cycles"),
                       ("[stream_bandwidth]\nfootprint_bytes = [1, 1e20]\n"
                        "bytes_per_cycle = [1, 2]\n", "stream_bandwidth.footprint_bytes")):
        path = write(tmp_path, cpu.replace("[compute]", table + "[compute]"))
        with pytest.raises(ProfileError, match="outside the accepted range") as info:
            load_profile(path)
        assert info.value.key == key
    path = write(tmp_path, cpu.replace("[compute]", "[latency]\ndense_call_cycles = 0\n"
                                                    "[compute]"))
    assert load_profile(path).latency["dense_call_cycles"] == 0
    gpu = MINIMAL.replace('class = "mcu"', 'class = "gpu"')
    path = write(tmp_path, gpu.replace("[compute]", "[latency]\ngemm_efficiency = 1.5\n[compute]"))
    with pytest.raises(ProfileError, match="fraction"):
        load_profile(path)


def test_a_level_named_like_a_column_part_is_still_fine(tmp_path):
    """Only exact collisions are refused: 'Weights2', 'energy_l2' and 'PJ' are labels."""
    text = MINIMAL.replace('name = "L1"', 'name = "Weights2"').replace('name = "DRAM"',
                                                                      'name = "energy_x"')
    dev = load_profile(write(tmp_path, text))
    table = hwprune.energy("lenet-300-100", dev)
    assert {"weights2_pj", "energy_x_pj", "energy_pj"} <= set(table.columns)
    assert table["energy_pj"].sum() > table["weights2_pj"].sum()


def test_non_regular_and_huge_files_are_refused_without_reading(tmp_path):
    from hwprune.hardware.loader import MAX_PROFILE_BYTES
    with pytest.raises(ProfileError, match="character device, not a regular file"):
        hwprune.device("/dev/zero")
    with pytest.raises(ProfileError, match="a directory, not a regular file"):
        load_profile(tmp_path)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    with pytest.raises(ProfileError, match="FIFO"):           # must not block
        hwprune.device(str(fifo))
    big = write(tmp_path, MINIMAL + "#" * MAX_PROFILE_BYTES, "big.toml")
    with pytest.raises(ProfileError, match="larger than 1048576 bytes"):
        load_profile(big)
    with pytest.raises(ProfileError, match="nests too deeply|not valid TOML"):
        load_profile(write(tmp_path, "x = " + "[" * 100_000, "deep.toml"))


def test_long_names_and_untraversable_paths_are_one_line_errors(tmp_path, monkeypatch):
    long = "a" * 300
    with pytest.raises(ProfileError, match="too long"):
        hwprune.device(long + ".toml")
    with pytest.raises(UnknownNameError):
        hwprune.device(long)
    with pytest.raises(InputError, match="cannot be read: File name too long"):
        list_devices([tmp_path / long])
    real_stat = os.stat

    def no_search(path, *args, **kwargs):
        if str(path).startswith(str(tmp_path / "locked")):
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", no_search)
    with pytest.raises(ProfileError, match="cannot be read: Permission denied"):
        hwprune.device(str(tmp_path / "locked" / "x.toml"))
    with pytest.raises(InputError, match="cannot be read: Permission denied"):
        list_devices([tmp_path / "locked"])


def test_an_unlistable_profile_directory_is_an_error_not_skipped(tmp_path, monkeypatch):
    write(tmp_path, MINIMAL)
    real_scandir = os.scandir

    def refuse(path="."):
        if str(path) == str(tmp_path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", refuse)
    with pytest.raises(InputError, match="cannot be listed: Permission denied"):
        list_devices([tmp_path])
    monkeypatch.setenv("HWPRUNE_PROFILES", str(tmp_path))
    with pytest.raises(InputError, match="cannot be listed"):
        hwprune.devices()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_an_unreadable_profile_directory_really_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    write(locked, MINIMAL)
    locked.chmod(0)
    try:
        with pytest.raises(InputError, match="Permission denied"):
            list_devices([locked])
        with pytest.raises(ProfileError, match="Permission denied"):
            hwprune.device(str(locked / "toy.toml"))
    finally:
        locked.chmod(0o755)


def test_environment_entries_and_profiles_argument_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("HWPRUNE_PROFILES", str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"\$HWPRUNE_PROFILES.*does not exist"):
        hwprune.devices()
    monkeypatch.setenv("HWPRUNE_PROFILES", str(write(tmp_path, MINIMAL)))
    with pytest.raises(InputError, match="not a directory"):
        hwprune.devices()
    monkeypatch.delenv("HWPRUNE_PROFILES")
    with pytest.raises(InputError, match="profiles must be a list of directories"):
        list_devices(123)
    with pytest.raises(InputError, match="one entry is int"):
        list_devices([tmp_path, 5])
    assert "toy" in {d.id for d in list_devices(str(tmp_path))}     # one path is one directory


def test_parse_profile_refuses_a_non_table():
    from hwprune.hardware.loader import parse_profile
    with pytest.raises(ProfileError, match="must be a table"):
        parse_profile([1, 2], "<dict>")


def _fuzz_module():
    """benchmarks/fuzz_profiles.py, which holds the strategy and the property."""
    import importlib.util
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz_profiles.py"
    spec = importlib.util.spec_from_file_location("fuzz_profiles", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_profiles_load_and_work_or_are_rejected(tmp_path):
    """Mutated built-in profiles either load and then price lenet-300-100 (energy, and
    latency where the profile has a model) or are refused with a one-line InputError;
    never another exception, never a hang. ``python benchmarks/fuzz_profiles.py`` runs
    2,000 examples."""
    from hypothesis import HealthCheck, given, seed, settings

    fuzz = _fuzz_module()
    fuzz.warm_up()
    seen = Counter()

    @seed(18)
    @settings(max_examples=40, deadline=5000, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(fuzz.documents())
    def run(doc):
        seen[fuzz.check(doc, str(tmp_path))] += 1

    run()
    assert seen["accepted"] + seen["rejected"] + seen["late"] == 40


def test_fuzz_writer_round_trips_the_builtin_profiles():
    fuzz = _fuzz_module()
    for name, doc in fuzz.BASES.items():
        assert tomllib.loads(fuzz.dumps(doc)) == doc, name
