"""Dense output top-k throughput (slide_core.inference.dense_topk): points/s at Amazon-670K
scale (670,091 labels, hidden 128) and at 67K labels, with 1 and 2 threads, median of repeats.

    python benchmarks/bench_inference.py                       # defaults
    python benchmarks/bench_inference.py --points 1024 --repeats 5 --blocks 128x2048,256x4096

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
    ap.add_argument("--blocks", default="128x2048", help="points x labels per BLAS block, comma-separated")
    a = ap.parse_args()
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
                      f"({gflops:.0f} GFLOP/s, median of {a.repeats}, min {a.points / min(ts):.0f})", flush=True)


if __name__ == "__main__":
    main()
