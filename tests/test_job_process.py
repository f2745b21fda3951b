"""What a job's process is and reports: the environment an isolated job starts with (glibc's
huge-page tunable must be there from the first instruction), its own peak memory when several
jobs share a process, and the thread count it really ran on."""
from __future__ import annotations

import multiprocessing

import numba
import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from harness import job
from harness.job import HUGE_PAGES_TUNABLE, _environment, isolated_environment
from harness.sysinfo import start_environment
from tests.conftest import job_runs, run_cli


def _report_start_environment(queue) -> None:
    queue.put(start_environment())


def job_config(huge_pages: bool):
    return OmegaConf.create({"model": {"env": {"SLIDE_BENCH_PROBE": "1"}, "huge_pages": huge_pages},
                             "train": {"threads": 2}})


def test_isolated_environment_reaches_the_child_before_it_starts(monkeypatch):
    monkeypatch.setattr(job, "thp_mode", lambda: "madvise")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    env = isolated_environment(job_config(huge_pages=True))
    assert env["GLIBC_TUNABLES"] == HUGE_PAGES_TUNABLE and env["NUMBA_NUM_THREADS"] == "2"
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=_report_start_environment, args=(queue,))
    with _environment(env):
        child.start()
    seen = queue.get(timeout=60)
    child.join(timeout=60)
    # /proc/<child>/environ: what the process was started with, i.e. what glibc read
    assert seen["GLIBC_TUNABLES"] == HUGE_PAGES_TUNABLE and seen["SLIDE_BENCH_PROBE"] == "1"
    import os

    assert "SLIDE_BENCH_PROBE" not in os.environ  # the parent's environment is restored


def test_huge_pages_only_when_asked_and_where_the_kernel_allows(monkeypatch):
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    monkeypatch.setattr(job, "thp_mode", lambda: "madvise")
    env = isolated_environment(job_config(huge_pages=True))
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2:" + HUGE_PAGES_TUNABLE  # appended, not replaced
    assert "GLIBC_TUNABLES" not in isolated_environment(job_config(huge_pages=False))
    monkeypatch.setattr(job, "thp_mode", lambda: "never")
    assert "GLIBC_TUNABLES" not in isolated_environment(job_config(huge_pages=True))


@pytest.mark.slow
def test_in_process_jobs_report_their_own_peak_memory_and_threads(tmp_path):
    """Two SLIDE jobs in one process (the basic launcher): the first holds ~400 MB of bucket
    offsets (400 tables of 2^18 buckets), the second ~2 MB; each reports its own peak."""
    result = run_cli(["-m", "model=slide", "model.params.L=400,2", "model.params.range_pow=18",
                      "dataset=synthetic_tiny", "train.epochs=1", "train.eval_every=100"], tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    runs = {r.data.params["model.params.L"]: r for r in job_runs(client)}
    big, small = runs["400"].data, runs["2"].data
    assert big.tags["peak_rss_scope"] == small.tags["peak_rss_scope"] == "job"
    assert big.metrics["mem/peak_rss_mb"] > small.metrics["mem/peak_rss_mb"] + 300, (
        big.metrics["mem/peak_rss_mb"], small.metrics["mem/peak_rss_mb"])
    expected_threads = str(min(2, numba.config.NUMBA_NUM_THREADS))  # what set_num_threads can give
    assert big.tags["threads"] == small.tags["threads"] == expected_threads
    assert big.metrics["time/setup_s"] > 0 and "perf/page_faults_per_step" in big.metrics
