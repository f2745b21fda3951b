"""Seconds per training step, samples/s, peak RSS and full-evaluation time of the TF baselines.

Runs one configuration per process (TF's thread pools are fixed when its runtime starts) on
synthetic batches of the chosen shape; the default is Amazon-670K (135,909 -> 128 -> 670,091,
~76 nonzeros and ~5.4 labels per row). The machine is shared: run big shapes for a few steps.

    python benchmarks/bench_tf.py --model tf_cpu --batch 128 --steps 5
    python benchmarks/bench_tf.py --model tf_cpu --no-jit --batch 256 --steps 5
    python benchmarks/bench_tf.py --model tf_sampled --labels 67009 --steps 10
    python benchmarks/bench_tf.py --model tf_cpu --steps 0 --eval-points 10000
Prints one `RESULT {...}` JSON line per run (median seconds per step over the timed steps).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_csr(rng: np.random.Generator, n_rows: int, n_cols: int, mean_nnz: float, min_nnz: int):
    from experiments.data.csr import CSR

    counts = np.maximum(min_nnz, rng.poisson(mean_nnz, n_rows)).astype(np.int64)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = rng.integers(0, n_cols, int(indptr[-1]), dtype=np.int32)
    data = rng.random(int(indptr[-1]), dtype=np.float32)
    return CSR(indptr, indices, data, n_cols)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=["tf_cpu", "tf_sampled"], default="tf_cpu")
    p.add_argument("--features", type=int, default=135_909)
    p.add_argument("--labels", type=int, default=670_091)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=5, help="timed steps after warm-up")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--inter-op", type=int, default=None, help="inter-op threads (default: --threads)")
    p.add_argument("--jit", dest="jit", action="store_true", default=None, help="XLA on")
    p.add_argument("--no-jit", dest="jit", action="store_false", help="XLA off")
    p.add_argument("--sampled-fraction", type=float, default=0.1)
    p.add_argument("--n-sampled", type=int, default=None)
    p.add_argument("--nnz", type=float, default=75.7, help="mean input nonzeros per row (Amazon-670K: 75.7)")
    p.add_argument("--labels-per-row", type=float, default=5.45, help="mean labels per row (Amazon-670K: 5.45)")
    p.add_argument("--eval-points", type=int, default=0, help="time predict_topk(k=5) on this many rows")
    p.add_argument("--eval-chunk", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    load_before = os.getloadavg()[0]  # the machine is shared: say how busy it was
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    from experiments.models.base import ModelContext
    from experiments.models.tf import TFSampledSoftmaxModel, TFSoftmaxModel

    ctx = ModelContext(n_features=a.features, n_labels=a.labels, hidden=(a.hidden,), lr=1e-3,
                       seed=a.seed, threads=a.threads, batch_size=a.batch)
    kwargs = {"inter_op_threads": a.inter_op, "eval_chunk": a.eval_chunk}
    if a.jit is not None:
        kwargs["jit_compile"] = a.jit
    t0 = time.perf_counter()
    if a.model == "tf_cpu":
        model = TFSoftmaxModel(ctx, device="cpu", **kwargs)
    else:
        model = TFSampledSoftmaxModel(ctx, n_sampled=a.n_sampled, sampled_fraction=a.sampled_fraction, **kwargs)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(a.seed)
    n_batches = max(1, min(a.steps, 8))
    xs = [synthetic_csr(rng, a.batch, a.features, a.nnz, 1) for _ in range(n_batches)]
    ys = [synthetic_csr(rng, a.batch, a.labels, a.labels_per_row - 1, 0) for _ in range(n_batches)]
    ys = [y._replace(indptr=y.indptr, data=np.ones_like(y.data)) for y in ys]
    t0 = time.perf_counter()
    model.warmup(xs[0], ys[0])
    compile_s = time.perf_counter() - t0

    times, cpu_times, losses = [], [], []
    for i in range(a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(model.train_step(xs[i % n_batches], ys[i % n_batches]))
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)  # CPU-seconds: less sensitive to a busy machine
    eval_s = None
    if a.eval_points:
        xe = synthetic_csr(rng, a.eval_points, a.features, a.nnz, 1)
        t0 = time.perf_counter()
        model.predict_topk(xe, 5)
        eval_s = time.perf_counter() - t0
    tags = model.describe()
    med = statistics.median(times) if times else None
    result = {
        "model": a.model, "shape": [a.features, a.hidden, a.labels], "batch": a.batch,
        "threads": a.threads, "inter_op": tags["inter_op_threads"], "jit": tags["jit_compile"],
        "n_sampled": tags.get("n_sampled"), "steps": a.steps,
        "s_per_step_median": med, "s_per_step_min": min(times) if times else None,
        "samples_per_s": a.batch / med if med else None,
        "cpu_s_per_step_median": statistics.median(cpu_times) if cpu_times else None,
        "build_s": round(build_s, 2), "compile_s": round(compile_s, 2),
        "eval_points": a.eval_points, "eval_s": eval_s, "eval_chunk": tags["eval_chunk"],
        "peak_rss_mb": round(peak_rss_mb()), "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None, "traces": model.diagnostics()["tf/traces"],
        "load1_before": load_before, "load1_after": os.getloadavg()[0],
    }
    print("RESULT " + json.dumps(result), flush=True)
    model.close()
    return result


if __name__ == "__main__":
    main()
