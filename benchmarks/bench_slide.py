"""SLIDE training speed at the Amazon-670K shape (135,909 -> 128 -> 670,091), batch 128, with
1 and 2 threads, then at 67k labels for the sub-linearity ratio. Settings: the engine's
defaults (model=slide: SimHash, K and budget auto, topk + log-Q-corrected padding, adaptive
rehash, lazy Adam), or with --reference the C++ reference code's (model=slide_reference: DWTA
K=6 L=50, floor(ln 8) packing, union padded to 1,000, FIFO buckets, dense Adam, rehash every 50).

    .venv/bin/python -m benchmarks.bench_slide                     # full (a few minutes)
    .venv/bin/python -m benchmarks.bench_slide --batches 20 --no-small
    .venv/bin/python -m benchmarks.bench_slide --reference

Prints samples/s, the time split (hash / tables / forward-backward / Adam / rehash), peak RSS,
the active set's parts per sample (labels / retrieved by the tables / random padding), the
tables' retrieval quality on held-out rows (recall of the exact top-100 logits and lift over a
random set of the same size), dense inference points/s, and the 67k vs 670k time ratio.
Data: random CSR batches with the Amazon statistics (~75 features per point out of 135,909
with Zipf-like frequencies, ~5.4 labels per point); the speed does not depend on learnability.
"""
from __future__ import annotations

import argparse
import resource
import time

import numba
import numpy as np

from experiments.data.csr import CSR
from slide_core import LayerConfig, NetworkConfig, SlideNetwork

N_FEATURES, HIDDEN, N_LABELS = 135_909, 128, 670_091


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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def config(n_labels: int, reference: bool = False, schedule: str | None = None) -> NetworkConfig:
    if reference:  # conf/model/slide_reference.yaml
        out = LayerConfig(n_labels, sparsity=min(1.0, 1000 / n_labels), hash_family="dwta", K=6, L=50, range_pow=18,
                          bin_size=8, bucket_capacity=128, insertion="fifo", packing="reference_ln",
                          strategy="vanilla", retrieval_cap=None, log_q_correction=False)
        return NetworkConfig(n_features=N_FEATURES, layers=(LayerConfig(HIDDEN), out), lr=1e-4, optimizer="dense",
                             schedule="fixed", rehash_every=50, rebuild_every=1000)
    out = LayerConfig(n_labels, sparsity="auto", fan_in=HIDDEN)  # every other option: the engine's defaults
    extra = {} if schedule is None else {"schedule": schedule}
    return NetworkConfig(n_features=N_FEATURES, layers=(LayerConfig(HIDDEN), out), lr=1e-4, **extra)


def run(n_labels: int, threads: int, batches, label: str, reference: bool = False,
        schedule: str | None = None) -> float:
    numba.set_num_threads(threads)
    t0 = time.perf_counter()
    cfg = config(n_labels, reference, schedule)
    net = SlideNetwork(cfg, seed=0, threads=threads)
    build = time.perf_counter() - t0
    net.train_batch(*batches[0])  # compile / first touch, not timed
    net.stats()
    t0 = time.perf_counter()
    n = 0
    for x, y in batches[1:]:
        net.train_batch(x, y)
        n += x.n_rows
    wall = time.perf_counter() - t0
    st = net.stats()
    per_sample_ms = 1000 * wall / n
    print(f"[{label}] labels={n_labels} threads={threads}: {n / wall:,.0f} samples/s "
          f"({per_sample_ms:.3f} ms/sample, {len(batches) - 1} batches, build {build:.1f}s)")
    split = " ".join(f"{k[:-2]}={st[k]:.2f}s" for k in ("hash_s", "tables_s", "forward_backward_s", "adam_s", "rehash_s"))
    print(f"    split: {split}  (wall {wall:.2f}s)")
    out = cfg.layers[-1]
    print(f"    output layer: K={out.K} L={out.L} budget={out.budget} retrieval cap={out.chosen_limit} "
          f"({out.hash_family}, {out.strategy}, rehashes {net.rehash_total})")
    print(f"    active set per sample: {st['active_out_mean']:.0f} = labels {st['labels_out_mean']:.1f} + retrieved "
          f"{st['retrieved_out_mean']:.0f} + padding {st['padding_out_mean']:.0f}; label_recall="
          f"{st.get('label_recall', float('nan')):.3f} mults/sample={st['mults_per_sample']:,.0f} "
          f"(x{st['mults_dense_ratio']:.4f} of dense) peak_rss={peak_rss_mb():,.0f} MB")
    q = net.retrieval_quality(*batches[0])  # held out: batch 0 only warmed up the kernels
    print(f"    retrieval on {batches[0][0].n_rows} held-out rows: retrieved {q['retrieved_mean']:.0f}, "
          f"top-100 recall {q.get('topk_recall_at_100', float('nan')):.3f} (lift {q.get('lift_at_100', float('nan')):.1f}), "
          f"top-10 recall {q.get('topk_recall_at_10', float('nan')):.3f} (lift {q.get('lift_at_10', float('nan')):.1f}), "
          f"softmax mass {q['softmax_mass']:.4f}")
    if label == "main":
        # a second pass over the same batches ("epoch 2"): must not be slower (no leaks, no
        # per-sample allocation)
        t0 = time.perf_counter()
        for x, y in batches[1:]:
            net.train_batch(x, y)
        wall2 = time.perf_counter() - t0
        net.stats()
        print(f"    second pass: {n / wall2:,.0f} samples/s (first {n / wall:,.0f})")
        x_eval = batches[1][0]
        for _ in range(1):
            net.predict_topk(x_eval, 5)  # compile
        reps = max(1, 1024 // x_eval.n_rows)
        t0 = time.perf_counter()
        for r in range(reps):
            net.predict_topk(batches[1 + r % (len(batches) - 1)][0], 5)
        dt = time.perf_counter() - t0
        print(f"    dense inference: {reps * x_eval.n_rows / dt:,.0f} points/s (top-5 over {n_labels:,} labels)")
    return per_sample_ms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=61)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-small", action="store_true", help="skip the 67k-label run")
    ap.add_argument("--reference", action="store_true", help="the C++ reference code's settings (slide_reference)")
    ap.add_argument("--schedule", choices=("fixed", "exponential", "adaptive"), default=None,
                    help="rehash schedule (default: the engine's, adaptive; fixed: every 50 batches)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    batches = random_batches(args.batches, args.batch, N_FEATURES, N_LABELS)
    print(f"data: {args.batches} batches of {args.batch} in {time.perf_counter() - t0:.1f}s; "
          f"numba threads available: {numba.config.NUMBA_NUM_THREADS}")
    per = {}
    for th in [int(t) for t in args.threads.split(",")]:
        per[th] = run(N_LABELS, th, batches, "main", args.reference, args.schedule)
    if not args.no_small:
        small = N_LABELS // 10
        sb = [(x, CSR(y.indptr, (y.indices % small).astype(np.int32), y.data, small)) for x, y in batches]
        th = max(per)
        ms_small = run(small, th, sb, "67k", args.reference, args.schedule)
        print(f"sub-linearity: per-sample time 670k / 67k = {per[th] / ms_small:.2f} (dense would be ~10)")
    print(f"peak RSS {peak_rss_mb():,.0f} MB")


if __name__ == "__main__":
    main()
