"""One typed answer to "what does this plan cost on that device": a :class:`Plan`
(a scheme and a density per layer) priced by :func:`evaluate` into an
:class:`Evaluation` (energy, latency and bytes per layer, adding up)."""

from .evaluation import FRAME_COLUMNS, Cost, Evaluation, FixedLayerEvaluation, LayerEvaluation, evaluate
from .plan import LayerPlan, LayerShape, Plan, kept_entries, shapes_as_run

__all__ = ["FRAME_COLUMNS", "Cost", "Evaluation", "FixedLayerEvaluation", "LayerEvaluation", "LayerPlan",
           "LayerShape", "Plan", "evaluate", "kept_entries", "shapes_as_run"]
