"""The report figures, one module each, drawn from the tidy tables of reports.load (never
from MLflow directly); every function returns the PNG and SVG paths it wrote.

- reports.figure3: P@1 against training time (log x), the paper's Figure 3
- reports.iterations: P@1 and loss against iterations
- reports.scaling: samples/s and time to target against threads
- reports.sublinear: seconds per sample against labels, log-log
- reports.retrieval: SLIDE's top-k recall and lift over random against iterations
- reports.sparsity_tradeoff: final P@1 against the active fraction, per SLIDE strategy
  (build also writes its points as sparsity_tradeoff.csv / .md)
"""
from __future__ import annotations

from reports.figure3 import figure3
from reports.iterations import iterations
from reports.labels import context_text, curve_labels, not_plotted, varied_params
from reports.scaling import scaling
from reports.retrieval import has_retrieval, retrieval
from reports.sparsity_tradeoff import budgets_vary, sparsity_tradeoff, tradeoff_points
from reports.style import (MODEL_COLOURS, MODEL_MARKERS, STRATEGY_COLOURS, model_colour,
                           model_marker, run_colours, strategy_colour)
from reports.sublinear import loglog_slope, sublinear, sublinear_points

FIGURES = {"figure3": figure3, "iterations": iterations, "scaling": scaling,
           "sublinear": sublinear, "retrieval": retrieval,
           "sparsity_tradeoff": sparsity_tradeoff}
__all__ = ["FIGURES", "MODEL_COLOURS", "MODEL_MARKERS", "STRATEGY_COLOURS", "budgets_vary",
           "context_text", "curve_labels", "figure3", "has_retrieval", "iterations",
           "loglog_slope", "model_colour", "model_marker", "not_plotted", "retrieval",
           "run_colours", "scaling", "sparsity_tradeoff", "strategy_colour", "sublinear",
           "sublinear_points", "tradeoff_points", "varied_params"]
