"""Pruning substrate: a small numpy trainer, reference models on bundled data, masks
by granularity, importance criteria and schedules."""
