"""hwprune: hardware-aware cost modeling and simulation of neural-network pruning.

The Python API mirrors the ``hwprune`` command::

    import hwprune
    net = hwprune.network("alexnet")
    dev = hwprune.device("eyeriss")
    hwprune.show(net)          # one row per layer (DataFrame)
    hwprune.devices()          # one row per device profile
    hwprune.energy(net, dev)   # energy per layer by memory level and operand
"""

import os as _os


def _numba_cache_dir() -> str | None:
    """Where numba should cache hwprune's compiled functions, if not beside the source.

    numba writes its cache into ``__pycache__`` next to each module. On a read-only
    install (a system site-packages, a read-only container layer) that fails, so when
    ``NUMBA_CACHE_DIR`` is unset and a package directory cannot be written, the cache
    goes to ``$XDG_CACHE_HOME/hwprune/numba`` (default ``~/.cache/hwprune/numba``).
    Returns the directory chosen, or None when numba's default is kept."""
    if _os.environ.get("NUMBA_CACHE_DIR"):
        return None
    here = _os.path.dirname(_os.path.abspath(__file__))
    dirs = [here] + [_os.path.join(here, d) for d in ("sparse", "cost", "calibrate")]
    dirs += [_os.path.join(d, "__pycache__") for d in dirs
             if _os.path.isdir(_os.path.join(d, "__pycache__"))]
    if all(_os.access(d, _os.W_OK | _os.X_OK) for d in dirs if _os.path.isdir(d)):
        return None
    base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    return _os.path.join(base, "hwprune", "numba")


NUMBA_CACHE_DIR = _numba_cache_dir()
"""The numba cache directory hwprune chose at import (None: numba's own default)."""
if NUMBA_CACHE_DIR is not None:
    _os.environ["NUMBA_CACHE_DIR"] = NUMBA_CACHE_DIR       # before numba is imported
    import sys as _sys

    if "numba" in _sys.modules:                              # imported before hwprune
        _sys.modules["numba"].config.CACHE_DIR = NUMBA_CACHE_DIR

from .api import (  # noqa: E402
    device,
    device_detail,
    devices,
    energy,
    energy_detail,
    network,
    networks,
    show,
)
from .errors import HwpruneError, InputError, ProfileError, ShapeError, UnknownNameError  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "device", "device_detail", "devices", "energy", "energy_detail", "network", "networks",
    "show",
    "HwpruneError", "InputError", "ProfileError", "ShapeError", "UnknownNameError",
    "__version__",
]
