"""Hypothesis profiles.

``default`` (what the README's test command and CI run) is derandomized: the same
examples on every run, so the suite passes or fails for a change, not for a seed.
``explore`` draws fresh random examples on every run; run it a few times while
changing a model (``python -m pytest --hypothesis-profile explore tests/test_latency_monotone.py``)
and add what it finds as an ``@example``.
"""

from hypothesis import settings

settings.register_profile("default", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("default")


def _torchvision_models_importable() -> None:
    """Make torchvision's model definitions importable in the tests when its compiled
    operators do not load against the installed torch (a torch build other than the
    PyPI one torchvision's wheel was built for, e.g. a CPU build: ``operator
    torchvision::nms does not exist``). The models are plain Python and need none of
    those operators; only the fake-kernel registrations of ``torchvision/
    _meta_registrations.py`` fail, so that module is replaced by an empty one. With a
    matching torch (a fresh ``pip install '.[test]'``) torchvision imports as it is."""
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("torchvision") is None or importlib.util.find_spec("torch") is None:
        return
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision  # noqa: F401,F811


_torchvision_models_importable()
