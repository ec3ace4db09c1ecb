"""Studies: the policies that decide how to prune, and the sweeps over them.

Each takes a model (the numpy reference models of :mod:`hwprune.prune`) and devices,
prices every pruned network through :func:`hwprune.evaluate.evaluate`, and returns
typed results: Scalpel's per-layer choice (:mod:`.scalpel`), the choice at an expected
density (:mod:`.recommend`), energy-aware pruning (:mod:`.energy_aware`), sensitivity
(:mod:`.sensitivity`), the trade-off sweep with its Pareto fronts (:mod:`.tradeoff`)
and the report's whole study (:mod:`.report_study`). Rendering is :mod:`hwprune.report`'s.
"""
