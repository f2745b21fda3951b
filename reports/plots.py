"""The report figures, one module each, drawn from the tidy tables of reports.load (never
from MLflow directly); every function returns the PNG and SVG paths it wrote.

- reports.figure3: P@1 against training time (log x), the paper's Figure 3
- reports.iterations: P@1 and loss against iterations
- reports.scaling: samples/s and time to target against threads
- reports.sublinear: seconds per sample against labels, log-log
"""
from __future__ import annotations

from reports.figure3 import figure3
from reports.iterations import iterations
from reports.labels import context_text, curve_labels, not_plotted, varied_params
from reports.scaling import scaling
from reports.style import MODEL_COLOURS, MODEL_MARKERS, model_colour, model_marker, run_colours
from reports.sublinear import loglog_slope, sublinear, sublinear_points

FIGURES = {"figure3": figure3, "iterations": iterations, "scaling": scaling,
           "sublinear": sublinear}
__all__ = ["FIGURES", "MODEL_COLOURS", "MODEL_MARKERS", "context_text", "curve_labels",
           "figure3", "iterations", "loglog_slope", "model_colour", "model_marker",
           "not_plotted", "run_colours", "scaling", "sublinear", "sublinear_points",
           "varied_params"]
