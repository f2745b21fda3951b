"""`python -m reports {REPORT,all} --experiment NAME [--sweep-id ID|latest] [--tracking-uri URI]
[--out DIR]`: reports from MLflow alone (`--help` lists the reports: reports.build.REPORTS)."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from reports.build import REPORTS, build
from reports.load import get_client
from reports.table import DEFAULT_FRACTIONS, METHODS


# The harness's default store (conf/tracking/local.yaml: sqlite:///<project root>/mlflow.db),
# so `python -m reports figure3` finds the runs of `python run.py` from any folder.
PROJECT_STORE = Path(__file__).resolve().parents[1] / "mlflow.db"


def default_tracking_uri() -> str | None:
    """MLFLOW_TRACKING_URI if set, else the project's store if it exists, else MLflow's own
    default (None)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{PROJECT_STORE}" if PROJECT_STORE.exists() else None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reports",
        description="SLIDE Bench figures and tables from MLflow runs (reads MLflow only).")
    p.add_argument("report", choices=[*REPORTS, "all"],
                   help="which report: " + "; ".join(f"{r.name}: {r.about}" for r in REPORTS.values())
                        + "; all: each of these that the runs can fill")
    p.add_argument("--experiment", default="slide-bench",
                   help="MLflow experiment name (default: slide-bench, the harness's default)")
    p.add_argument("--sweep-id", default=None,
                   help="only runs with this sweep_id tag (the Hydra sweep dir); 'latest' = the "
                        "sweep of the most recent run; default: every run of the experiment")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI (default: MLFLOW_TRACKING_URI, else the project's "
                        "sqlite:///<project>/mlflow.db when it exists, else MLflow's default)")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: outputs/reports/<experiment>)")
    p.add_argument("--fractions", type=float, nargs="+", default=list(DEFAULT_FRACTIONS),
                   help="table targets as fractions of the best final P@1 (default 0.5 0.75 0.9)")
    p.add_argument("--method", choices=METHODS, default="interpolate",
                   help="time to target: interpolate between eval points, or first eval at/above")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not all(0.0 < f <= 1.0 for f in args.fractions):
        raise SystemExit(f"--fractions must lie in (0, 1], got {args.fractions}")
    out = args.out if args.out is not None else Path("outputs", "reports", args.experiment)
    uri = args.tracking_uri or default_tracking_uri()
    try:
        written = build(get_client(uri), args.experiment, args.sweep_id, out, args.report,
                        tuple(args.fractions), args.method)
    except ValueError as error:  # no such experiment / sweep: a message, not a traceback
        print(f"python -m reports: {error}", file=sys.stderr)
        return 2
    for name, paths in written.items():
        print(f"{name}: {', '.join(str(p) for p in paths)}")  # user-facing CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
