"""MLflow -> tidy pandas tables. The only place reports/ talks to MLflow for reading.

Two tables (names follow the harness's MLflow conventions, docs/design.md):

- ``load_runs``: one row per run. Columns: run_id, run_name, mlflow_status, start_time, the
  contract tags (model, dataset, device, threads, sweep_id, status, reason, kind ...), every
  metric's latest value under its MLflow name (``final/p_at_1``, ``mem/peak_rss_mb`` ...) and
  every param under its MLflow name (``data.n_labels``, ``train.threads`` ...).
- ``load_histories``: one row per (run_id, step) with the series in ``HISTORY_KEYS`` joined on
  step (the contract logs eval/p_at_1 and time/train_s at the same step, so they line up),
  plus the SLIDE-only series in ``SLIDE_KEYS`` (retrieval quality at every evaluation, the
  training active set size), NaN for runs that did not log them.

Then the selections every table and figure makes of them: ``finished`` runs, SLIDE runs
(``is_slide``), the eval points of the histories, a series' last logged value.

A sweep is read as its parent run's children: the harness gives every `-m` sweep a parent run
(tags kind=sweep and sweep_id = the Hydra sweep dir; its jobs' runs carry mlflow.parentRunId).
Stores without one (sweeps from before, or runs logged by other tools) are read by the jobs'
own sweep_id tag (a single job's run, started without -m, is read the same way: its sweep_id is its
run folder). Parent runs are never rows: they hold figures, not training.

How a model is shown and compared comes from its own config (conf/model/<name>.yaml, logged as
the params model.role, model.colour, model.marker): the columns ``role``, ``colour``, ``marker``.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

import contract

logger = logging.getLogger(__name__)

HISTORY_KEYS: tuple[str, ...] = (contract.EVAL_P_AT_1, contract.EVAL_P_AT_5, contract.TRAIN_CLOCK,
                                 contract.TRAIN_LOSS)
# Logged by SLIDE runs only (slide_core.diagnostics at every eval; the active set at every log
# step). Fetched only for the runs whose latest metrics show they logged them: one MLflow call
# per key and run, and most runs of a sweep (baselines) would answer empty.
SLIDE_KEYS: tuple[str, ...] = (
    "slide/topk_recall_at_10", "slide/topk_recall_at_100", "slide/lift_at_10",
    "slide/lift_at_100", "slide/softmax_mass", "slide/active_out_mean",
)
TAG_COLUMNS: tuple[str, ...] = (
    contract.MODEL, contract.DATASET, contract.DEVICE, contract.THREADS, contract.CPU_MODEL,
    contract.GPU_MODEL, contract.GIT_REV, contract.SWEEP_ID, contract.STATUS, contract.SKIP_REASON,
    contract.FAILURE, contract.KIND, contract.REPEAT_GROUP,
)
# params -> the columns every figure and table reads them under
LOOK_COLUMNS: dict[str, str] = {contract.MODEL_ROLE: "role", contract.MODEL_COLOUR: "colour",
                                contract.MODEL_MARKER: "marker"}
# Params that are counts: parsed to nullable integers so they sort and plot as numbers.
INT_PARAMS: tuple[str, ...] = (
    "data.n_features", "data.n_labels", "data.n_train", "data.n_test",
    "train.threads", "train.batch_size", "slide.budget", "slide.K", "slide.L",
)
# MLflow run status -> our status vocabulary, for runs whose harness never set the tag
# (e.g. a job killed before it could tag itself).
_MLFLOW_STATUS: dict[str, str] = {
    "FINISHED": "finished", "FAILED": "failed", "KILLED": "killed",
    "RUNNING": "running", "SCHEDULED": "running",
}
PARENT_TAG = "mlflow.parentRunId"


def get_client(tracking_uri: str | None = None) -> MlflowClient:
    """A client for ``tracking_uri`` (None: MLflow's default, honouring MLFLOW_TRACKING_URI)."""
    return MlflowClient(tracking_uri=tracking_uri)


def experiment_id(client: MlflowClient, experiment: str) -> str:
    """The id of the experiment named ``experiment``; ValueError listing the names if absent."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(f"no MLflow experiment named {experiment!r} at "
                         f"{client.tracking_uri}; experiments there: {names}")
    return found.experiment_id


def _quote(value: str) -> str:
    """A literal for MLflow's filter grammar (single quotes unless the value holds one)."""
    if "'" in value and '"' in value:
        raise ValueError(f"cannot filter on a value containing both quote kinds: {value!r}")
    return f'"{value}"' if "'" in value else f"'{value}'"


def search_all_runs(client: MlflowClient, exp_id: str, filter_string: str = "") -> list[Run]:
    """Every run matching the filter, following MLflow's pagination."""
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([exp_id], filter_string=filter_string,
                                  max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _status(tags: dict[str, str], mlflow_status: str) -> str:
    if tags.get(contract.STATUS):
        return tags[contract.STATUS]
    return _MLFLOW_STATUS.get(mlflow_status, mlflow_status.lower())


def _reason(tags: dict[str, str], status: str) -> str:
    """Why a run has no (complete) curve: the skip reason, the failure message, or ''."""
    if status == "skipped":
        return tags.get(contract.SKIP_REASON, "") or "skipped (no reason given)"
    if status == "failed":
        return tags.get(contract.FAILURE, "") or "failed (no message)"
    if status == "killed":
        return tags.get(contract.FAILURE, "") or "killed"
    return ""


def _run_row(run: Run) -> dict[str, object]:
    tags = run.data.tags
    info = run.info
    status = _status(tags, info.status)
    row: dict[str, object] = {
        "run_id": info.run_id,
        "run_name": info.run_name or tags.get("mlflow.runName", info.run_id),
        "mlflow_status": info.status,
        "start_time": pd.Timestamp(info.start_time, unit="ms", tz="UTC"),
    }
    row.update({name: tags.get(name, "") for name in TAG_COLUMNS})
    row["status"] = status
    row["reason"] = _reason(tags, status)
    row.update(run.data.params)
    row.update(run.data.metrics)
    row.update({column: run.data.params.get(param, "") for param, column in LOOK_COLUMNS.items()})
    return row


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers as numbers: threads / counts as Int64; metric columns stay float64."""
    threads_tag = pd.to_numeric(frame["threads"].replace("", pd.NA), errors="coerce")
    if "train.threads" in frame.columns:
        threads_tag = threads_tag.fillna(pd.to_numeric(frame["train.threads"], errors="coerce"))
    out = frame.assign(threads=threads_tag.astype("Int64"))
    ints = {c: pd.to_numeric(out[c], errors="coerce").astype("Int64")
            for c in INT_PARAMS if c in out.columns}
    return out.assign(**ints)


def runs_frame(runs: Iterable[Run]) -> pd.DataFrame:
    """The runs table from MLflow Run objects (parent and report runs dropped), oldest run
    first."""
    rows = [_run_row(r) for r in runs if r.data.tags.get(contract.KIND) != contract.KIND_SWEEP]
    columns = ["run_id", "run_name", "mlflow_status", "start_time", *TAG_COLUMNS, "reason",
               *LOOK_COLUMNS.values()]
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in columns}).assign(
            threads=pd.Series(dtype="Int64"),
            start_time=pd.Series(dtype="datetime64[ms, UTC]"))
    frame = pd.DataFrame(rows)
    return _typed(frame).sort_values(["start_time", "run_name"], ignore_index=True)


def latest_sweep_id(client: MlflowClient, exp_id: str) -> str:
    """The sweep_id of the most recently started run that has one."""
    page = client.search_runs([exp_id], filter_string=f"tags.{contract.SWEEP_ID} != ''",
                              order_by=["attributes.start_time DESC"], max_results=1)
    if not page:
        raise ValueError(f"no run of experiment {exp_id} carries a {contract.SWEEP_ID} tag")
    return page[0].data.tags[contract.SWEEP_ID]


def sweep_run(client: MlflowClient, exp_id: str, sweep_id: str) -> Run | None:
    """The parent run of the sweep ``sweep_id`` (the latest, if the folder was swept twice),
    or None when the sweep has none."""
    page = client.search_runs([exp_id], filter_string=f"tags.{contract.KIND} = '{contract.KIND_SWEEP}' and "
                                                      f"tags.{contract.SWEEP_ID} = {_quote(sweep_id)}",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return page[0] if page else None


def sweep_filter(client: MlflowClient, exp_id: str, sweep_id: str) -> str:
    """The search filter for a sweep's job runs: the children of its parent run, or the runs
    tagged with its sweep_id where it has no parent run."""
    parent = sweep_run(client, exp_id, sweep_id)
    if parent is None:
        return f"tags.{contract.SWEEP_ID} = {_quote(sweep_id)}"
    return f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"


def load_runs(client: MlflowClient, experiment: str,
              sweep_id: str | None = None) -> pd.DataFrame:
    """One row per training run of ``experiment`` (optionally of one sweep: its parent run's
    children, see sweep_filter).

    ``sweep_id="latest"`` picks the sweep of the most recently started run.
    """
    exp_id = experiment_id(client, experiment)
    if sweep_id == "latest":
        sweep_id = latest_sweep_id(client, exp_id)
    flt = sweep_filter(client, exp_id, sweep_id) if sweep_id else ""
    frame = runs_frame(search_all_runs(client, exp_id, flt))
    logger.info("loaded %d runs from experiment %r%s", len(frame), experiment,
                f" sweep {sweep_id!r}" if sweep_id else "")
    return frame


def _series(client: MlflowClient, run_id: str, key: str) -> pd.Series:
    """One metric's history indexed by step; a step logged twice keeps its latest value."""
    points = client.get_metric_history(run_id, key)
    if not points:
        return pd.Series(dtype="float64", name=key, index=pd.Index([], dtype="int64", name="step"))
    raw = pd.DataFrame({"step": [p.step for p in points], "ts": [p.timestamp for p in points],
                        "value": [p.value for p in points]})
    last = raw.sort_values(["step", "ts"], kind="stable").drop_duplicates("step", keep="last")
    return pd.Series(last["value"].to_numpy(dtype="float64"), name=key,
                     index=pd.Index(last["step"].to_numpy(dtype="int64"), name="step"))


def _fill_time(frame: pd.DataFrame) -> pd.DataFrame:
    """Training clock at steps that lack it, interpolated on step between logged clock points.

    The contract logs time/train_s at every eval step, so this only matters for stores written
    by other tools; points outside the logged clock range stay NaN.
    """
    known = frame[contract.TRAIN_CLOCK].notna()
    if known.all() or known.sum() < 2:
        return frame
    steps = frame["step"].to_numpy(dtype="float64")
    t = np.interp(steps, steps[known.to_numpy()], frame.loc[known, contract.TRAIN_CLOCK].to_numpy(),
                  left=np.nan, right=np.nan)
    filled = frame[contract.TRAIN_CLOCK].fillna(pd.Series(t, index=frame.index))
    return frame.assign(**{contract.TRAIN_CLOCK: filled})


def run_history(client: MlflowClient, run_id: str,
                keys: Sequence[str] = HISTORY_KEYS) -> pd.DataFrame:
    """One run's series joined on step: columns run_id, step, *keys (NaN where not logged)."""
    joined = pd.concat([_series(client, run_id, k) for k in keys], axis=1, join="outer")
    frame = joined.reindex(columns=list(keys)).sort_index().reset_index()
    if "step" not in frame.columns:  # every series empty: concat drops the index name
        frame = frame.rename(columns={"index": "step"})
    if contract.TRAIN_CLOCK in frame.columns and len(frame):
        frame = _fill_time(frame)
    return frame.assign(run_id=run_id)[["run_id", "step", *keys]]


def logged_keys(runs: pd.DataFrame, keys: Sequence[str]) -> dict[str, list[str]]:
    """run_id -> the keys among ``keys`` that the run logged at least once (its latest value,
    a column of the load_runs table, is not NaN)."""
    present = [k for k in keys if k in runs.columns]
    return {row["run_id"]: [k for k in present if not pd.isna(row[k])]
            for row in runs[["run_id", *present]].to_dict("records")}


def load_histories(client: MlflowClient, runs: pd.DataFrame,
                   keys: Sequence[str] = HISTORY_KEYS,
                   optional: Sequence[str] = SLIDE_KEYS) -> pd.DataFrame:
    """One row per (run_id, step) for every run in ``runs`` (the load_runs table); columns
    *keys, then *optional (default SLIDE_KEYS), which are fetched only for runs that logged
    them and NaN elsewhere."""
    columns = ["run_id", "step", *keys, *optional]
    logged = logged_keys(runs, optional)
    parts = [run_history(client, rid, [*keys, *logged[rid]]) for rid in runs["run_id"]]
    if not parts:
        empty = {"run_id": pd.Series(dtype="str"), "step": pd.Series(dtype="int64")}
        empty.update({k: pd.Series(dtype="float64") for k in [*keys, *optional]})
        return pd.DataFrame(empty)
    frame = pd.concat(parts, ignore_index=True).reindex(columns=columns)
    return frame.astype({"step": "int64", **{k: "float64" for k in optional}})


def last_logged(histories: pd.DataFrame, key: str) -> pd.Series:
    """Per run_id, the value of ``key`` at the largest step where the run logged it (runs that
    never logged it are absent; a histories table without the column gives an empty Series)."""
    if key not in histories.columns:
        return pd.Series(dtype="float64", name=key, index=pd.Index([], dtype="str", name="run_id"))
    logged = histories[histories[key].notna()].sort_values(["run_id", "step"], kind="stable")
    return logged.groupby("run_id", sort=False)[key].last()


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs whose harness status is finished."""
    return runs[runs["status"] == "finished"]


def eval_points(histories: pd.DataFrame) -> pd.DataFrame:
    """Only the rows that carry an eval/p_at_1 value (the points of every P@1 curve)."""
    return histories[histories[contract.EVAL_P_AT_1].notna()]


def is_slide(runs: pd.DataFrame) -> pd.Series:
    """Which runs are SLIDE variants: role slide in their model's config (conf/model/*.yaml)."""
    return runs["role"].eq("slide")


def baselines(runs: pd.DataFrame) -> list[str]:
    """The baseline models among these runs (roles dense and sampled), dense first, each in the
    order of its first run: every speed-up is some model's time against one of these."""
    found = runs[runs["role"].isin(contract.BASELINE_ROLES)]
    order = {role: i for i, role in enumerate(contract.BASELINE_ROLES)}
    firsts = found.drop_duplicates("model")
    return list(firsts.sort_values("role", key=lambda r: r.map(order), kind="stable")["model"])
