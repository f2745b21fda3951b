"""The README's screenshots of the MLflow UI, taken with headless Chromium on a store:

    docs/img/mlflow_runs.png            the experiment's runs table, the latest sweep expanded
    docs/img/mlflow_run_charts.png      one run of that sweep, its "Model metrics" charts
    docs/img/mlflow_system_metrics.png  the same run's "System metrics" charts

    .venv/bin/python docs/screenshot_mlflow.py                  # the project's store (make run)
    .venv/bin/python docs/screenshot_mlflow.py --store sqlite:////tmp/x/mlflow.db --out /tmp/img

Needs Chromium (Debian: apt-get install -y chromium). It starts `mlflow ui` on a loopback address
and a free port, drives Chromium through its DevTools protocol and stops both at the end. The
runs table is laid out the way a user would (the sweep's row expanded, the run names wide
enough, columns for the status tag, final P@1, samples/s and the sweep's headline speed-up) by
writing the UI's own saved view state into the page's localStorage: no URL can say that, and
the store is not touched. That key is the MLflow 3.17 UI's; another version may shoot the table
as it opens. Linux only as written: it serves on 127.0.0.2, because
MLflow 3.17's UI opens its AI-assistant panel over a quarter of the page on a first visit to
localhost / 127.0.0.1 (any address of 127/8 is loopback on Linux).

The URLs carry `?workflowType=machine_learning`: MLflow 3.17's UI picks its GenAI or model
training layout from a per-browser toggle (default GenAI), not from the experiment's
mlflow.experimentKind tag (mlflow/mlflow#24498); a fresh browser profile is a first-time user.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp  # a dependency of mlflow: its websocket client speaks to Chromium
from mlflow.tracking import MlflowClient

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.2"
WINDOW = (1600, 1000)
# the runs table's saved view state in localStorage (MLflow 3.17's UI), per experiment id
VIEW_STATE_KEY = 'MLflowLocalStorage-1.1-ExperimentPage-["{}"]-ReactComponentState'
UI_QUERY = "?workflowType=machine_learning"


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"{url} did not answer (exit code {process.poll()})")
            time.sleep(0.5)


def pick_runs(store: str, experiment: str, run_id: str | None):
    """(experiment id, the latest sweep's parent run, the run whose charts to show: `run_id`,
    else the sweep's SLIDE job, else its first finished job)."""
    client = MlflowClient(tracking_uri=store)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        sys.exit(f"no experiment {experiment!r} in {store}")
    exp_id = found.experiment_id
    sweeps = client.search_runs([exp_id], "tags.kind = 'sweep'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    if not sweeps:
        sys.exit(f"no sweep in experiment {experiment!r}: run a -m sweep first (make run)")
    parent = sweeps[0]
    if run_id is None:
        jobs = client.search_runs([exp_id], "tags.status = 'finished' and "
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
                                  order_by=["attributes.start_time ASC"])
        if not jobs:
            sys.exit("the latest sweep has no finished job to chart")
        run_id = next((r for r in jobs if r.data.tags.get("model") == "slide"), jobs[0]).info.run_id
    return exp_id, parent, run_id


def headline_metric(parent) -> str | None:
    """The sweep's speed-up to show as a column: against tf_cpu at 75% if there, else against any
    baseline at 75%, else the first one it logged."""
    speedups = sorted(k for k in parent.data.metrics if k.startswith("speedup/"))
    for suffix in ("_vs_tf_cpu_at_75pct", "_at_75pct", ""):
        found = next((k for k in speedups if k.endswith(suffix)), None)
        if found:
            return found
    return None


def table_view(state: dict, parent) -> dict:
    """The saved view state with the sweep's row expanded and the columns to show, in order,
    with their widths (the UI applies widths to the columns listed in columnOrder only)."""
    shown = {"attributes.`Dataset`": 230, "tags.`status`": 80, "metrics.`final/p_at_1`": 100,
             "metrics.`final/samples_per_s`": 130}
    headline = headline_metric(parent)
    if headline:
        shown[f"metrics.`{headline}`"] = 240
    fixed = {"0": 50, "attributes.`Run Name`": 300, "runDateAndNestInfo": 140, "duration": 80}
    order = ["0", "attributes.`Run Name`", "runDateAndNestInfo", "attributes.`Dataset`", "duration",
             *list(shown)[1:]]
    return {**state, "runsExpanded": {**state.get("runsExpanded", {}), parent.info.run_id: True},
            "selectedColumns": list(shown), "columnOrder": order, "columnWidths": {**fixed, **shown}}


class Page:
    """The one tab of a headless Chromium, driven over its DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params):
        self.next_id += 1
        await self.ws.send_json({"id": self.next_id, "method": method, "params": params})
        async for message in self.ws:
            reply = json.loads(message.data)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError("Chromium closed the connection")

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    async def wait_for_text(self, text: str, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        shown = f"document.body && document.body.innerText.includes({json.dumps(text)})"
        while not await self.evaluate(shown):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} never appeared on the page")
            await asyncio.sleep(0.5)

    async def open(self, url: str, text: str, settle_s: float) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for_text(text)
        await self.evaluate(HIDE_CHART_TOOLBARS)
        await asyncio.sleep(settle_s)  # charts and lazy columns draw after the data arrives

    async def screenshot(self, path: Path) -> None:
        data = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(data["data"]))
        print(path)


# plotly's per-chart toolbar shows on every chart of a headless page (no hover state)
HIDE_CHART_TOOLBARS = """(() => {
  const style = document.createElement('style');
  style.textContent = '.modebar-container { display: none !important; }';
  document.head.appendChild(style);
})()"""


async def lay_out_runs_table(page: Page, exp_id: str, parent) -> None:
    """Rewrite the runs table's saved view state (table_view) and reload the page."""
    key = json.dumps(VIEW_STATE_KEY.format(exp_id))
    saved = await page.evaluate(f"localStorage.getItem({key})")
    if saved is None:
        print("warning: no saved view state under the MLflow 3.17 key: the table is shot as it opens",
              file=sys.stderr)
        return
    state = json.dumps(table_view(json.loads(saved), parent))
    await page.evaluate(f"localStorage.setItem({key}, {json.dumps(state)})")
    await page.call("Page.reload")
    await page.wait_for_text(parent.info.run_name)


async def shoot(debug_port: int, base: str, exp_id: str, parent, run_id: str, out: Path) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{debug_port}/json/list") as answer:
        target = next(t for t in json.load(answer) if t["type"] == "page")
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1],
                            deviceScaleFactor=1, mobile=False)
            await page.open(f"{base}/#/harness/{exp_id}/runs{UI_QUERY}", parent.info.run_name, 1)
            await lay_out_runs_table(page, exp_id, parent)
            await asyncio.sleep(3)
            await page.screenshot(out / "mlflow_runs.png")
            run_page = f"{base}/#/harness/{exp_id}/runs/{run_id}"
            await page.open(f"{run_page}/model-metrics{UI_QUERY}", "eval/p_at_1", 5)
            await page.screenshot(out / "mlflow_run_charts.png")
            await page.open(f"{run_page}/system-metrics{UI_QUERY}", "cpu_utilization_percentage", 5)
            await page.screenshot(out / "mlflow_system_metrics.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=f"sqlite:///{ROOT / 'mlflow.db'}", help="backend store URI")
    parser.add_argument("--experiment", default="slide-bench")
    parser.add_argument("--run-id", default=None, help="the run whose charts to show")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "chromium"))
    args = parser.parse_args()
    if shutil.which(args.chromium) is None:
        sys.exit(f"no {args.chromium}: apt-get install -y chromium")
    exp_id, parent, run_id = pick_runs(args.store, args.experiment, args.run_id)
    args.out.mkdir(parents=True, exist_ok=True)

    port, debug_port = free_port(HOST), free_port("127.0.0.1")
    base = f"http://{HOST}:{port}"
    mlflow = Path(sys.executable).parent / "mlflow"
    ui = subprocess.Popen([str(mlflow), "ui", "--backend-store-uri", args.store, "--host", HOST,
                           "--port", str(port), "--workers", "1", "--allowed-hosts", f"{HOST}:{port}",
                           "--cors-allowed-origins", base],
                          env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with tempfile.TemporaryDirectory() as profile:
        browser = None
        try:
            wait_for(f"{base}/health", ui)
            browser = subprocess.Popen(
                [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--remote-debugging-port={debug_port}",
                 f"--user-data-dir={profile}", "about:blank"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(f"http://127.0.0.1:{debug_port}/json/version", browser)
            asyncio.run(shoot(debug_port, base, exp_id, parent, run_id, args.out))
        finally:
            for process in (browser, ui):
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)


if __name__ == "__main__":
    main()
