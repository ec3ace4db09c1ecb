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
