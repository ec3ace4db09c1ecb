"""How pruned data is stored: formats and their storage costs."""
