"""Host calibration (``hwprune calibrate``): measure the machine hwprune runs on and
write its cpu profile.

:mod:`~hwprune.calibrate.host` measures the clock, caches, latencies and the
stream-bandwidth curve and writes the profile TOML; :mod:`~hwprune.calibrate.matvec_fit`
times hwprune's matrix-vector kernels and fits the cpu latency model's per-kernel
costs. The package sits above :mod:`hwprune.latency` in the import order (it uses
``hardware``, ``sparse`` and ``latency``); only :mod:`hwprune.api`, :mod:`hwprune.cli`,
tests and benchmarks import it.
"""

from .host import calibrate

__all__ = ["calibrate"]
