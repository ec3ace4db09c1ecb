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
"""

from __future__ import annotations

import os
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


def profile_dirs(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Built-in directory, then ``$HWPRUNE_PROFILES`` entries, then ``extra``."""
    dirs = [builtin_profile_dir()]
    env = os.environ.get(ENV_VAR, "")
    named = [(p, f"${ENV_VAR}") for p in env.split(os.pathsep) if p.strip()]
    named += [(str(p), "--profiles") for p in extra]
    for raw, via in named:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise InputError(f"profile directory {raw!r} (from {via}) does not exist or is "
                             "not a directory; pass a directory of *.toml device profiles")
        if path.resolve() not in {d.resolve() for d in dirs}:    # named twice: read once
            dirs.append(path)
    return dirs


@lru_cache(maxsize=256)
def _load_cached(path: str, mtime_ns: int) -> DeviceProfile:
    return load_profile(path)


def _load(path: Path) -> DeviceProfile:
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return load_profile(path)  # raises the ProfileError naming the file
    return _load_cached(str(path), mtime)


def list_devices(extra_dirs: Sequence[str | Path] = ()) -> list[DeviceProfile]:
    """Every profile found, built-in first, each id once.

    Raises :class:`InputError` when two files define the same id.
    """
    found: dict[str, DeviceProfile] = {}
    for directory in profile_dirs(extra_dirs):
        for path in sorted(directory.glob("*.toml")):
            profile = _load(path)
            if profile.id in found:
                raise InputError(
                    f"device id {profile.id!r} is defined twice: in {found[profile.id].origin} "
                    f"and in {path}; give each profile its own id"
                )
            found[profile.id] = profile
    return list(found.values())


def _looks_like_path(name: str) -> bool:
    return name.endswith(".toml") or os.sep in name or Path(name).is_file()


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
