"""Dense output top-k throughput (slide_core.inference.dense_topk): points/s at Amazon-670K
scale (670,091 labels, hidden 128) and at 67K labels, with 1 and 2 threads, median of repeats.

    python benchmarks/bench_inference.py                       # defaults
    python benchmarks/bench_inference.py --points 1024 --repeats 5 --blocks 128x2048,256x4096
    python benchmarks/bench_inference.py --tf --points 2048 --labels 670091
        # the TF adapter's evaluation: TF's own matmul + top_k (DenseSoftmaxNet.predict_topk)
        # vs TF hidden activations + dense_topk (TFSoftmaxModel.predict_topk), 1024-row chunks
        # as harness.evaluation.Evaluator calls it; extrapolated to 10k points

Random weights and activations (ranking cost does not depend on the values beyond how often
the k-th score changes, which is rare either way). Variants are compared within one run
because the machine may be shared.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_info

from slide_core.inference import dense_topk


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", default="670091,67009")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--points", type=int, default=1024)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blocks", default="256x2048", help="points x labels per BLAS block, comma-separated")
    ap.add_argument("--tf", action="store_true", help="time the TF adapter's evaluation instead")
    a = ap.parse_args()
    if a.tf:
        return bench_tf(a)
    blas = threadpool_info()
    print("BLAS:", [(i.get("internal_api"), i.get("architecture"), i.get("version")) for i in blas if i["user_api"] == "blas"])
    rng = np.random.default_rng(0)
    H = np.maximum(rng.standard_normal((a.points, a.hidden), dtype=np.float32), 0)
    for n_labels in map(int, a.labels.split(",")):
        W = (rng.standard_normal((n_labels, a.hidden), dtype=np.float32) * 0.1)
        b = rng.standard_normal(n_labels, dtype=np.float32) * 0.1
        dense_topk(H[:8], W, b, a.k)  # compile
        for blk in a.blocks.split(","):
            bp, bl = map(int, blk.split("x"))
            for threads in map(int, a.threads.split(",")):
                ts = []
                for _ in range(a.repeats):
                    t0 = time.perf_counter()
                    dense_topk(H, W, b, a.k, threads=threads, block_points=bp, block_labels=bl)
                    ts.append(time.perf_counter() - t0)
                t = statistics.median(ts)
                gflops = 2 * n_labels * a.hidden * a.points / t / 1e9
                print(f"labels={n_labels:>7} block={bp}x{bl} threads={threads}: {a.points / t:8.0f} points/s "
                      f"({gflops:.0f} GFLOP/s, median of {a.repeats}, best {a.points / min(ts):.0f})", flush=True)


def bench_tf(a) -> None:
    from baselines.devices import configure_threads
    from harness.data.csr import CSR
    from harness.models.base import ModelContext
    from harness.models.tf import TFSoftmaxModel

    threads = max(map(int, a.threads.split(",")))
    configure_threads(threads, threads)
    n_features, nnz = 135_909, 75  # Amazon-670K's input width, ~its mean nonzeros per row
    rng = np.random.default_rng(0)
    rows = [np.sort(rng.choice(n_features, nnz, replace=False)) for _ in range(a.points)]
    x = CSR(np.arange(a.points + 1, dtype=np.int64) * nnz, np.concatenate(rows).astype(np.int32),
            rng.uniform(0.1, 1.0, a.points * nnz).astype(np.float32), n_features)
    for n_labels in map(int, a.labels.split(",")):
        ctx = ModelContext(n_features=n_features, n_labels=n_labels, hidden=(a.hidden,), lr=1e-4, seed=0,
                           threads=threads, batch_size=128, init_std=0.01)
        model = TFSoftmaxModel(ctx)
        warm = x.row_slice(0, 64)
        model.net.predict_topk(warm, a.k)
        model.predict_topk(warm, a.k)
        for name, fn in (("TF matmul + top_k", model.net.predict_topk), ("TF hidden + dense_topk", model.predict_topk)):
            model._eval_weights = None  # as after a training step: the copy counts
            t0 = time.perf_counter()
            outs = [fn(x.row_slice(s, min(a.points, s + 1024)), a.k) for s in range(0, a.points, 1024)]
            t = time.perf_counter() - t0
            print(f"labels={n_labels:>7} threads={threads} {name:24s}: {a.points / t:7.0f} points/s, "
                  f"{t * 10_000 / a.points:6.1f} s per 10k points", flush=True)
        print("  same top-1 on", f"{np.mean(np.concatenate(outs)[:, 0] == model.net.predict_topk(x, 1)[:, 0]):.4f}",
              "of rows (ties / float order may differ)")
        model.close()


if __name__ == "__main__":
    main()
