"""SLIDE training and evaluation speed at the Amazon-670K shape (135,909 -> 128 -> 670,091),
batch 128, in one run, next to what the machine's memory and BLAS can do.

    .venv/bin/python -m benchmarks.bench_slide                   # full (about 5 minutes)
    .venv/bin/python -m benchmarks.bench_slide --batches 30 --no-small --threads 2
    .venv/bin/python -m benchmarks.bench_slide --packings exact --reference

What it prints:
- machine: a STREAM-like copy (GB/s, bytes read + written, numba prange on `threads`) and the
  sgemm rate the dense evaluation runs on (GFLOP/s, single-threaded BLAS per thread);
- per packing (`exact`, the engine's default, and `reference_ln`, the C++ code's floor(ln 8)
  key packing; every other option the engine's default) and thread count: samples/s from the
  median batch time, the split of the training clock (hash / tables / forward-backward /
  Adam / rehash), the active set's parts, and the Adam profile: distinct rows the batch
  touched per layer, bytes Adam moved (W, m, v read and written per touched row; the first
  layer's gradient too) and the GB/s that makes against the copy;
- optionally (--reference) the C++ reference code's settings (model=slide_reference: DWTA
  K=6 L=50, union padded to 1,000, FIFO buckets, dense Adam, rehash every 50);
- dense evaluation points/s (top-5 over 670,091 labels, every label scored exactly) and the
  share of the measured sgemm rate it reaches; peak RSS; the 67k vs 670k time ratio.

Medians per batch, not means: on a shared 2-core machine a batch that lost its core to
another process is an outlier, not the engine's speed. Data: random CSR batches with the
Amazon statistics (~75 features per point out of 135,909 with Zipf-like frequencies, ~5.4
labels per point); speed does not depend on learnability.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np
from numba import prange

from benchmarks.active_set import parse_options
from harness.data.csr import CSR
from harness.sysinfo import peak_rss_mb
from slide_core import LayerConfig, NetworkConfig, SlideNetwork
from slide_core.network import TIMERS

N_FEATURES, HIDDEN, N_LABELS = 135_909, 128, 670_091
TOP_K = 5


def random_batches(n_batches: int, batch: int, n_features: int, n_labels: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    feat_p = 1.0 / np.arange(1, n_features + 1) ** 0.8
    feat_p /= feat_p.sum()
    feat_perm = rng.permutation(n_features)
    out = []
    for _ in range(n_batches):
        nnz = rng.integers(40, 110, batch)
        xr, xv, yr = [], [], []
        for s in range(batch):
            f = np.unique(feat_perm[rng.choice(n_features, nnz[s], p=feat_p)])
            xr.append(f.tolist())
            xv.append((rng.random(len(f)) + 0.1).astype(np.float32).tolist())
            yr.append(np.unique(rng.integers(0, n_labels, int(rng.integers(1, 11)))).tolist())
        out.append((CSR.from_rows(xr, n_features, xv), CSR.from_rows(yr, n_labels)))
    return out


# ------------------------------------------------------------------ the machine
@numba.njit(parallel=True, nogil=True)
def _copy(dst, src, n_chunks):
    n = src.shape[0]
    for c in prange(n_chunks):
        dst[c * n // n_chunks:(c + 1) * n // n_chunks] = src[c * n // n_chunks:(c + 1) * n // n_chunks]


def copy_gbs(threads: int, mb: int = 512, repeats: int = 7) -> float:
    """STREAM-like copy of `mb` MB on `threads` threads: GB/s counting bytes read + written."""
    numba.set_num_threads(threads)
    src = np.ones(mb << 18, dtype=np.float32)
    dst = np.zeros_like(src)
    _copy(dst, src, threads)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        _copy(dst, src, threads)
        ts.append(time.perf_counter() - t0)
    return 2 * src.nbytes / statistics.median(ts) / 1e9


def sgemm_gflops(threads: int, repeats: int = 5) -> float:
    """The rate of the products dense evaluation runs: (2048 labels x 128) @ (128 x 256
    points) blocks, single-threaded BLAS on each of `threads` Python threads."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(1)
    W = rng.standard_normal((1 << 16, HIDDEN), dtype=np.float32)  # 32 MB: from memory, as in evaluation
    H = rng.standard_normal((256, HIDDEN), dtype=np.float32)
    outs = [np.empty((2048, 256), dtype=np.float32) for _ in range(threads)]

    def work(t):
        for i in range(t, W.shape[0] // 2048, threads):
            np.matmul(W[i * 2048:(i + 1) * 2048], H.T, out=outs[t])

    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(work, range(threads)))
            ts.append(time.perf_counter() - t0)
    return 2 * W.shape[0] * HIDDEN * H.shape[0] / statistics.median(ts) / 1e9


# ------------------------------------------------------------------ training
def config(n_labels: int, packing: str = "exact", reference: bool = False, budget: int | None = None,
           layer: dict | None = None) -> NetworkConfig:
    if reference:  # conf/model/slide_reference.yaml
        out = LayerConfig(n_labels, sparsity=min(1.0, 1000 / n_labels), hash_family="dwta", K=6, L=50, range_pow=18,
                          bin_size=8, bucket_capacity=128, insertion="fifo", packing="reference_ln",
                          strategy="vanilla", retrieval_cap=None, log_q_correction=False)
        return NetworkConfig(n_features=N_FEATURES, layers=(LayerConfig(HIDDEN), out), lr=1e-4, optimizer="dense",
                             schedule="fixed", rehash_every=50, rebuild_every=1000)
    sparsity = "auto" if budget is None else min(1.0, budget / n_labels)
    out = LayerConfig(n_labels, sparsity=sparsity, fan_in=HIDDEN, packing=packing,
                      **(layer or {}))  # else the engine's defaults
    return NetworkConfig(n_features=N_FEATURES, layers=(LayerConfig(HIDDEN), out), lr=1e-4)


def adam_bytes(net: SlideNetwork) -> tuple[list[int], float]:
    """Rows the last batch's Adam updated per layer, and the bytes that update moved: W, m, v
    read and written per row (and the first layer's gradient rows, read and zeroed); dense
    Adam touches every row."""
    rows, total = [], 0.0
    for p in net.params:
        n = p.W.shape[0] if net.config.optimizer == "dense" else int(np.count_nonzero(p.row_stamp == net.step))
        arrays = 4 if p.gW.shape[0] == p.W.shape[0] else 3
        rows.append(n)
        total += n * p.W.shape[1] * 4 * arrays * 2
    return rows, total


def train(net: SlideNetwork, batches) -> dict:
    """Train on batches[1:] after an untimed warm-up batch; per-batch medians of every timer."""
    net.train_batch(*batches[0])
    net.stats()
    per_batch = {k: [] for k in (*TIMERS, "wall_s", "adam_bytes")}
    parts = []
    n_rows = []
    t_all = time.perf_counter()
    for x, y in batches[1:]:
        t0 = time.perf_counter()
        net.train_batch(x, y)
        per_batch["wall_s"].append(time.perf_counter() - t0)
        st = net.stats()
        for k in TIMERS:
            per_batch[k].append(st[k])
        rows, nbytes = adam_bytes(net)
        n_rows.append(rows)
        per_batch["adam_bytes"].append(nbytes)
        parts.append([st.get(k, 0.0) for k in ("active_out_mean", "labels_out_mean", "retrieved_out_mean",
                                                  "padding_out_mean", "shared_out_mean")])
    total = time.perf_counter() - t_all
    med = {k: statistics.median(v) for k, v in per_batch.items()}
    med["rows"] = np.median(np.array(n_rows), axis=0)
    med["parts"] = np.mean(np.array(parts), axis=0)
    med["samples"] = batches[1][0].n_rows
    med["total_s"] = total
    med["n_batches"] = len(batches) - 1
    return med


def report(label: str, net: SlideNetwork, m: dict, copy: float) -> float:
    sps = m["samples"] / m["wall_s"]
    out = net.config.layers[-1]
    print(f"[{label}] threads={net.threads}: {sps:,.0f} samples/s (median batch {1000 * m['wall_s']:.1f} ms; "
          f"{m['n_batches'] * m['samples'] / m['total_s']:,.0f} samples/s over all {m['n_batches']} batches)")
    split = "  ".join(f"{k[:-2]} {1000 * m[k]:.1f} ms ({100 * m[k] / m['wall_s']:.0f}%)" for k in TIMERS)
    print(f"    split per batch: {split}")
    print(f"    output layer: K={out.K} L={out.L} budget={out.budget} retrieval cap={out.chosen_limit} "
          f"({out.hash_family}, {out.packing}, {out.strategy}, {net.config.optimizer} Adam)")
    act, lab, ret, pad, shared = m["parts"]
    print(f"    active set per sample: {act:.0f} = labels {lab:.1f} + retrieved {ret:.0f} + padding {pad:.0f}"
          f" + shared tail {shared:.0f} (tail: {out.tail_law})")
    gbs = m["adam_bytes"] / max(m["adam_s"], 1e-9) / 1e9
    rows = " + ".join(f"{r:,.0f}" for r in m["rows"])
    print(f"    Adam: {rows} distinct rows per batch (layers), {m['adam_bytes'] / 1e6:,.0f} MB moved, "
          f"{gbs:.1f} GB/s = {100 * gbs / copy:.0f}% of the copy")
    return sps


def run(n_labels: int, threads: int, batches, label: str, copy: float, packing: str = "exact",
        reference: bool = False, budget: int | None = None, layer: dict | None = None) -> tuple[SlideNetwork, float]:
    numba.set_num_threads(threads)
    t0 = time.perf_counter()
    counts = np.bincount(np.concatenate([y.indices for _, y in batches]), minlength=n_labels)
    net = SlideNetwork(config(n_labels, packing, reference, budget, layer), seed=0, threads=threads,
                       label_counts=counts)
    print(f"[{label}] build {time.perf_counter() - t0:.1f} s")
    m = train(net, batches)
    return net, report(label, net, m, copy)


def retrieval(net: SlideNetwork, x) -> None:
    q = net.retrieval_quality(x)
    print(f"    retrieval on {x.n_rows} held-out rows: retrieved {q['retrieved_mean']:.0f}, top-100 recall "
          f"{q.get('topk_recall_at_100', float('nan')):.3f} (lift {q.get('lift_at_100', float('nan')):.1f}), "
          f"softmax mass {q['softmax_mass']:.4f}")


def evaluation(net: SlideNetwork, batches, gemm: float, repeats: int = 3) -> float:
    """Dense top-5 points/s over `repeats` passes of 1,024 new points (median)."""
    x_all = random_batches(1, 1024, N_FEATURES, net.config.layers[-1].width, seed=2)[0][0]
    net.predict_topk(batches[0][0], TOP_K)  # compile
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net.predict_topk(x_all, TOP_K)
        ts.append(time.perf_counter() - t0)
    pps = x_all.n_rows / statistics.median(ts)
    need = 2 * HIDDEN * net.config.layers[-1].width * pps / 1e9
    print(f"    dense evaluation: {pps:,.0f} points/s (top-{TOP_K} of {net.config.layers[-1].width:,} labels, "
          f"threads={net.threads}; {need:.0f} GFLOP/s of output products = {100 * need / gemm:.0f}% of the "
          f"measured sgemm rate; 1,000 points/s would need {2 * HIDDEN * net.config.layers[-1].width / 1e6:.0f})")
    return pps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=61)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--packings", default="exact,reference_ln")
    ap.add_argument("--budget", type=int, default=None,
                    help="active neurons per sample (default: the engine's auto budget, 1,638 at 670k labels)")
    ap.add_argument("--no-small", action="store_true", help="skip the 67k-label run")
    ap.add_argument("--reference", action="store_true", help="also the C++ reference code's settings")
    ap.add_argument("--layer", nargs="*", default=[], metavar="KEY=VALUE",
                    help="output LayerConfig fields besides the engine's defaults, e.g. tail_law=uniform "
                         "(values parsed as JSON when they can be); label counts for a frequency law come "
                         "from the benchmark's own batches")
    args = ap.parse_args()
    layer = parse_options(args.layer)
    threads = [int(t) for t in args.threads.split(",")]
    top = max(threads)
    t0 = time.perf_counter()
    batches = random_batches(args.batches, args.batch, N_FEATURES, N_LABELS)
    print(f"data: {args.batches} batches of {args.batch} in {time.perf_counter() - t0:.1f}s; "
          f"numba threads available: {numba.config.NUMBA_NUM_THREADS}")
    copy = copy_gbs(top)
    gemm = sgemm_gflops(top)
    print(f"machine: copy {copy:.1f} GB/s ({top} threads, read + write), sgemm {gemm:.0f} GFLOP/s ({top} threads "
          f"of single-threaded BLAS on evaluation-sized blocks)")
    per = {}
    for packing in args.packings.split(","):
        for th in threads:
            net, sps = run(N_LABELS, th, batches, packing, copy, packing, budget=args.budget, layer=layer)
            per[packing, th] = sps
            if th == top:
                retrieval(net, batches[0][0])
                if packing == "exact":
                    evaluation(net, batches, gemm)
            del net
    if args.reference:
        run(N_LABELS, top, batches, "reference", copy, reference=True)
    if not args.no_small:
        small = N_LABELS // 10
        sb = [(x, CSR(y.indptr, (y.indices % small).astype(np.int32), y.data, small)) for x, y in batches]
        _, sps_small = run(small, top, sb, "67k", copy, budget=None if args.budget is None else args.budget // 10,
                           layer=layer)
        first = args.packings.split(",")[0]
        print(f"sub-linearity: per-sample time 670k / 67k = {sps_small / per[first, top]:.2f} (dense would be ~10)")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
