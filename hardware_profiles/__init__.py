"""The built-in device profiles, one TOML file each (data only, no code).

This directory sits at the top of the repository and installs as the package
``hwprune.hardware_profiles`` (``[tool.setuptools.package-dir]`` in pyproject.toml);
:func:`hwprune.hardware.registry.builtin_profile_dir` finds it through
:mod:`importlib.resources`, in a wheel and in an editable install alike.
"""
