"""Size, write and read seconds of a job checkpoint (harness.job_state) at a real shape.

Builds the model as a job would (conf/model/<model>.yaml's params, the default Amazon-670K
shape 135,909 -> 128 -> 670,091), trains a few steps on synthetic batches so that the Adam
moments are dense with values, then times what a job does: Checkpointer.save (state_dict, write,
fsync, rename, prune) and load_latest + load_state_dict. One model per process (TF's thread
pools are fixed at start); --both runs slide and tf_cpu one after the other.

    python benchmarks/bench_checkpoint.py --model slide
    python benchmarks/bench_checkpoint.py --both --repeats 3
    python benchmarks/bench_checkpoint.py --both --sigterm-after 30   # a real job, stopped
Prints one `RESULT {...}` JSON line per model: size, median save and load seconds, and the
share of wall time that checkpointing every train.checkpoint_every_s seconds costs.

--sigterm-after S runs `run.py model=<model> dataset=synthetic_amazon` (the Amazon-670K shape;
generated and cached on first use), sends SIGTERM S seconds after training started, and reports
how long the job took to stop (the step or evaluation in progress, the checkpoint, ending the
run) and its exit code, with its own MLflow store in a temporary folder.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.bench_tf import synthetic_csr  # noqa: E402
from harness.sysinfo import peak_rss_mb  # noqa: E402


def build(model_name: str, ctx):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    params = OmegaConf.load(ROOT / "conf" / "model" / f"{model_name}.yaml").params
    return instantiate(params, _partial_=True)(ctx=ctx)


def run_one(a) -> dict:
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    from omegaconf import OmegaConf

    from harness.job_state import Checkpointer, load_latest
    from harness.models.base import ModelContext

    every_s = OmegaConf.load(ROOT / "conf" / "config.yaml").train.checkpoint_every_s
    ctx = ModelContext(n_features=a.features, n_labels=a.labels, hidden=(a.hidden,), lr=1e-3, seed=0,
                       threads=a.threads, batch_size=a.batch, label_counts=np.ones(a.labels, dtype=np.int64))
    t0 = time.perf_counter()
    model = build(a.model, ctx)
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    x = synthetic_csr(rng, a.batch, a.features, 75.7, 1)
    y = synthetic_csr(rng, a.batch, a.labels, 4.45, 0)
    y = y._replace(data=np.ones_like(y.data))
    model.warmup(x, y)
    for _ in range(a.steps):
        model.train_step(x, y)
    folder = Path(tempfile.mkdtemp(prefix="bench_ckpt_", dir=a.dir))
    try:
        saver = Checkpointer(folder, "bench", "bench", every_s=None, keep=2)
        save_s, load_s = [], []
        for i in range(a.repeats):
            t0 = time.perf_counter()
            path = saver.save(model, {"iteration": i}, i)
            save_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            load_latest(folder, "bench", lambda meta, arrays: model.load_state_dict(arrays))
            load_s.append(time.perf_counter() - t0)
        size_mb = path.stat().st_size / 2**20
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    save = statistics.median(save_s)
    result = {"model": a.model, "shape": [a.features, a.hidden, a.labels], "threads": a.threads,
              "size_mb": round(size_mb, 1), "save_s_median": round(save, 3), "save_s": [round(s, 3) for s in save_s],
              "load_s_median": round(statistics.median(load_s), 3), "load_s": [round(s, 3) for s in load_s],
              "write_mb_per_s": round(size_mb / save, 1), "checkpoint_every_s": every_s,
              "wall_share_pct": round(100 * save / (every_s + save), 3) if every_s else None,
              "build_s": round(build_s, 2), "peak_rss_mb": round(peak_rss_mb())}
    print("RESULT " + json.dumps(result), flush=True)
    model.close()
    return result


def stop_a_job(a) -> dict:
    """Time SIGTERM -> exit of a real job at the Amazon shape (module docstring)."""
    import signal

    work = Path(tempfile.mkdtemp(prefix="bench_sigterm_", dir=a.dir))
    log_path = work / "job.log"
    command = [sys.executable, str(ROOT / "run.py"), f"model={a.model}", "dataset=synthetic_amazon",
               f"train.threads={a.threads}", "train.eval_samples=200", "train.eval_every=100000", "+progress=false",
               f"hydra.run.dir={work}/run", f"tracking.uri=sqlite:///{work}/mlflow.db",
               f"tracking.artifact_root={work}/artifacts"]
    try:
        with open(log_path, "w") as log:
            job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work)
            while "warm-up (compile/trace) took" not in log_path.read_text():
                if job.poll() is not None:
                    raise RuntimeError(f"the job ended early:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.2)
            time.sleep(a.sigterm_after)
            sent = time.perf_counter()
            job.send_signal(signal.SIGTERM)
            code = job.wait(timeout=600)
            stop_s = time.perf_counter() - sent
        saved = [line for line in log_path.read_text().splitlines() if "harness.job_state" in line]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"model": a.model, "dataset": "synthetic_amazon", "threads": a.threads, "sigterm_after_s": a.sigterm_after,
              "stop_s": round(stop_s, 2), "exit_code": code, "checkpoint_log": saved[-1] if saved else None}
    print("RESULT " + json.dumps(result), flush=True)
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["slide", "tf_cpu", "tf_sampled", "numpy_dense"], default="slide")
    p.add_argument("--both", action="store_true", help="slide, then tf_cpu, each in its own process")
    p.add_argument("--features", type=int, default=135_909)
    p.add_argument("--labels", type=int, default=670_091)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=3, help="training steps before the first checkpoint")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dir", default=None, help="where to write (default: the system's temp folder)")
    p.add_argument("--sigterm-after", type=float, default=None,
                   help="instead: stop a real job this many seconds into training (module docstring)")
    a = p.parse_args(argv)
    if not a.both:
        stop_a_job(a) if a.sigterm_after is not None else run_one(a)
        return
    forwarded = [arg for arg in (argv if argv is not None else sys.argv[1:]) if arg != "--both"]
    for model in ("slide", "tf_cpu"):
        subprocess.run([sys.executable, __file__, "--model", model, *forwarded], check=True)


if __name__ == "__main__":
    main()
