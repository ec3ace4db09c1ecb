"""Find device profiles: the built-in ones, user directories, and single files.

Profiles are looked up, in this order of precedence for *listing* (ids must be
unique across all of them):

1. the built-in profiles: the package ``hwprune.hardware_profiles``, which is the
   top-level ``hardware_profiles/`` directory of the repository mapped into the
   package (pyproject.toml ``[tool.setuptools.package-dir]``), so that a wheel and an
   editable install both have it;
2. every directory named in the ``HWPRUNE_PROFILES`` environment variable
   (separated by ``os.pathsep``);
3. every directory passed explicitly (``--profiles DIR`` on the command line).

A DEVICE argument that is a path to an existing file, or ends in ``.toml``, is
loaded from that file directly.

A directory that cannot be listed (no permission, a name the system refuses, not a
directory) is an :class:`InputError`, never skipped; every ``*.toml`` entry in it is
read as a profile, and one that is not a regular file (a FIFO, a device, a
directory) is refused by :func:`hwprune.hardware.loader.read_profile_bytes`.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import InputError, UnknownNameError
from .loader import load_profile
from .profile import DeviceProfile

ENV_VAR = "HWPRUNE_PROFILES"
BUILTIN_PACKAGE = "hwprune.hardware_profiles"


def builtin_profile_dir() -> Path:
    """Directory holding the built-in profile TOML files.

    Found through :mod:`importlib.resources` as the package :data:`BUILTIN_PACKAGE`:
    ``site-packages/hwprune/hardware_profiles/`` in a wheel install, the repository's
    top-level ``hardware_profiles/`` in an editable one. A source tree that is merely
    on ``sys.path`` (not installed) has no such package; there the directory beside
    the ``hwprune`` package is used. Each profile's ``origin`` is the path of its file
    in this directory.
    """
    try:
        return Path(str(resources.files(BUILTIN_PACKAGE)))
    except ModuleNotFoundError:
        source_tree = Path(__file__).resolve().parents[2] / "hardware_profiles"
        if source_tree.is_dir():
            return source_tree
        raise InputError(f"the built-in device profiles are missing: package {BUILTIN_PACKAGE} "
                         f"is not installed and {source_tree} does not exist; reinstall "
                         "hwprune (pip install .)") from None


def _extra_dirs(extra: Iterable[str | Path] | str | Path) -> list[str]:
    """``extra`` as a list of directory names: one path, or an iterable of paths."""
    if isinstance(extra, (str, os.PathLike)):
        extra = [extra]
    try:
        items = list(extra)
    except TypeError:
        raise InputError(f"profiles must be a list of directories (str or Path), got "
                         f"{type(extra).__name__} {extra!r}") from None
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"profiles must be a list of directories (str or Path); one entry "
                             f"is {type(item).__name__} {item!r}")
    return [os.fspath(item) for item in items]


def _directory(raw: str, via: str) -> Path:
    """``raw`` as a profile directory, or an :class:`InputError` saying why it cannot be."""
    where = f"profile directory {raw!r} (from {via})"
    path = Path(raw).expanduser()
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise InputError(f"{where} does not exist; pass a directory of *.toml device "
                         "profiles") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror or exc}; pass a directory "
                         "of *.toml device profiles that you may read") from None
    except ValueError as exc:                                   # an embedded NUL byte
        raise InputError(f"{where} is not a usable path: {exc}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise InputError(f"{where} is not a directory; pass a directory of *.toml device "
                         "profiles")
    try:
        with os.scandir(path):
            pass
    except OSError as exc:
        raise InputError(f"{where} cannot be listed: {exc.strerror or exc}; pass a directory "
                         "of *.toml device profiles that you may read") from None
    return path


def profile_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Built-in directory, then ``$HWPRUNE_PROFILES`` entries, then ``extra``.

    Raises :class:`InputError` for an entry that does not exist, is not a directory or
    cannot be read."""
    dirs = [builtin_profile_dir()]
    env = os.environ.get(ENV_VAR, "")
    named = [(p, f"${ENV_VAR}") for p in env.split(os.pathsep) if p.strip()]
    named += [(p, "--profiles") for p in _extra_dirs(extra)]
    for raw, via in named:
        path = _directory(raw, via)
        try:
            resolved = path.resolve()
            known = {d.resolve() for d in dirs}
        except OSError as exc:
            raise InputError(f"profile directory {raw!r} (from {via}) cannot be read: "
                             f"{exc.strerror or exc}") from None
        if resolved not in known:    # named twice: read once
            dirs.append(path)
    return dirs


def profile_files(directory: Path) -> list[Path]:
    """The ``*.toml`` entries of a profile directory, sorted; :class:`InputError` when
    the directory cannot be listed (``Path.glob`` would skip it silently)."""
    try:
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries if e.name.endswith(".toml"))
    except OSError as exc:
        raise InputError(f"profile directory {str(directory)!r} cannot be listed: "
                         f"{exc.strerror or exc}; pass a directory of *.toml device profiles "
                         "that you may read") from None
    return [directory / name for name in names]


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime_ns: int) -> DeviceProfile:
    return load_profile(path)


def _load(path: Path) -> DeviceProfile:
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return load_profile(path)  # raises the ProfileError naming the file
    if not stat.S_ISREG(info.st_mode):
        return load_profile(path)  # refuses it without opening it
    return _load_cached(str(path), info.st_mtime_ns)


def list_devices(extra_dirs: Sequence[str | Path] = ()) -> list[DeviceProfile]:
    """Every profile found, built-in first, each id once.

    Raises :class:`InputError` when two files define the same id.
    """
    found: dict[str, DeviceProfile] = {}
    for directory in profile_dirs(extra_dirs):
        for path in profile_files(directory):
            profile = _load(path)
            if profile.id in found:
                raise InputError(
                    f"device id {profile.id!r} is defined twice: in {found[profile.id].origin} "
                    f"and in {path}; give each profile its own id"
                )
            found[profile.id] = profile
    return list(found.values())


def _looks_like_path(name: str) -> bool:
    if name.endswith(".toml") or os.sep in name or (os.altsep and os.altsep in name):
        return True
    return os.path.isfile(name)    # False, not an OSError, for a name the system refuses


def get_device(name_or_path: str | Path | DeviceProfile,
               extra_dirs: Sequence[str | Path] = ()) -> DeviceProfile:
    """A profile by id (built-in or from a profile directory) or by TOML path."""
    if isinstance(name_or_path, DeviceProfile):
        return name_or_path
    name = str(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(name):
        return _load(Path(name))
    devices = list_devices(extra_dirs)
    for profile in devices:
        if profile.id == name:
            return profile
    raise UnknownNameError(
        f"unknown device {name!r}; known devices: " + ", ".join(p.id for p in devices)
        + " (or pass the path of a .toml profile)"
    )
