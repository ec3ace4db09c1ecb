"""Device profiles: the built-in ones are complete and sourced; bad files are clear errors."""

import tomllib
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
         "one of: dense, csr, rle, simd-group"),
        ('kind = "dram"', 'kind = "dram"\nholds = ["weights", "bias"]', "memory[1] (DRAM).holds",
         "distinct operands"),
        ('name = "L1"\nkind = "cache"', 'name = "L1"\nkind = "cache"\nholds = ["weights"]',
         "memory[0].holds", "must hold every operand"),
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
        "cortex-m4": "pJ", "core-i7": "pJ", "titan-x": "pJ", "eyeriss": "MAC-equivalents"}
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
