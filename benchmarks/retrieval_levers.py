"""Which hash finds the large logits of a TRAINED output layer? Offline, on a saved network:
for each way of hashing the rows (raw, centered, centered with norm completion ...) and each
K, SimHash tables (L of them, the engine's sparse +-1 projections) are built in numpy, probed
with held-out queries, and what they return is compared with the exact logits:

    union      distinct neurons in the L probed buckets (what `vanilla` would take)
    recall     share of the exact top-100 by logit in the union
    topk       recall@100 of the `limit` most-hit neurons (the `topk` strategy) and their lift
    rerank     recall@100 of the `limit` best by exact logit among the `pool` most-hit (rerank_pool)

    .venv/bin/python -m benchmarks.retrieval_levers --net /tmp/sy.npz --data synthetic
    (train and save one with: python -m benchmarks.active_set ... --save /tmp/sy.npz)

Transforms, each ranking the rows by the hashed inner product as w.h does (a common vector
subtracted from every row changes every logit by the same amount; the norm completion appends
sqrt(M^2 - |w|^2) to each row and 0 to the query, so every row has norm M and the angle ranks
the rows as the inner product does: Neyshabur and Srebro's "simple LSH" for maximum inner
product search):
    raw            w against h
    centered       w - mean(w) against h
    whitened       [A^-T w, w.mu] against [A (h - mu), 1], A = Cov(h)^-1/2 over 2,000 train rows
    *_mips         the same with the norm completion
Buckets have no capacity limit here (the engine's hold 128): the numbers are what the hash
itself does.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.active_set import dataset_config
from benchmarks.retrieval_anatomy import hidden_rows
from harness.data.datasets import load_dataset
from slide_core import SlideNetwork
from slide_core.hashing.simhash import make_simhash

TOP = 100


def transform(name: str, W: np.ndarray, Hfit: np.ndarray):
    """(rows as the tables would hash them, the matching map of queries), float64, such that
    rows . map(h) ranks the rows as w . h does. Hfit: queries to fit whitening statistics on."""
    ident = lambda H: H  # noqa: E731
    if name in ("raw", "mips"):
        rows, qmap = W.copy(), ident
    elif name in ("centered", "centered_mips"):
        rows, qmap = W - W.mean(axis=0), ident
    elif name in ("whitened", "whitened_mips"):
        # queries whitened about their mean (h' = A (h - mu)), rows w' = [A^-T w, w . mu] against
        # [h', 1]: w' . [h', 1] = w . h exactly, and the queries fill the space evenly
        mu = Hfit.mean(axis=0)
        C = np.cov(Hfit, rowvar=False) + 1e-6 * np.eye(Hfit.shape[1])
        vals, vecs = np.linalg.eigh(C)
        A = vecs @ np.diag(vals ** -0.5) @ vecs.T
        A_inv_T = np.linalg.inv(A).T
        rows = np.hstack([W @ A_inv_T.T, (W @ mu)[:, None]])
        qmap = lambda H: np.hstack([(H - mu) @ A.T, np.ones((len(H), 1))])  # noqa: E731
    else:
        raise ValueError(name)
    if name.endswith("mips"):
        norms = np.linalg.norm(rows, axis=1)
        rows = np.hstack([rows, np.sqrt(np.maximum(norms.max() ** 2 - norms ** 2, 0.0))[:, None]])
        inner = qmap
        qmap = lambda H: np.hstack([inner(H), np.zeros((len(H), 1))])  # noqa: E731
    return rows, qmap


def keys_of(X: np.ndarray, R: np.ndarray, K: int, L: int) -> np.ndarray:
    """int64 (n, L) bucket keys: the K sign bits of each table packed (exact packing)."""
    bits = (X @ R < 0).reshape(len(X), L, K)
    return (bits * (1 << np.arange(K))).sum(axis=2)


def evaluate(H, Hfit, W, b, name: str, K: int, L: int, limit: int, pool: int, seed: int = 0) -> dict[str, float]:
    rows, qmap = transform(name, W, Hfit)
    Hq = qmap(H)
    R = make_simhash(np.random.default_rng(seed), rows.shape[1], K * L, 1.0 / 3.0).astype(np.float64)
    for extra in range(H.shape[1], rows.shape[1]):  # appended coordinates always get a projection weight
        R[extra] = np.where(R[extra] == 0, 1.0, R[extra])
    kr, kq = keys_of(rows, R, K, L), keys_of(Hq, R, K, L)
    Z = H @ W.T + b
    out = {"union": [], "recall": [], "topk": [], "rerank": []}
    rng = np.random.default_rng(seed)
    for q in range(len(H)):
        counts = (kr == kq[q]).sum(axis=1)
        top = np.argpartition(-Z[q], TOP)[:TOP]
        union = np.flatnonzero(counts)
        out["union"].append(len(union))
        out["recall"].append(np.isin(top, union).mean())
        # most hits first, ties at random (the engine breaks them by order of appearance)
        order = union[np.lexsort((rng.random(len(union)), -counts[union]))]
        out["topk"].append(np.isin(top, order[:limit]).mean())
        cand = order[:pool]
        best = cand[np.argsort(-Z[q, cand])[:limit]]
        out["rerank"].append(np.isin(top, best).mean())
    res = {k: float(np.mean(v)) for k, v in out.items()}
    res["topk_lift"] = res["topk"] / max(min(limit, res["union"]) / len(W), 1e-12)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--net", required=True, help="a SlideNetwork saved with SlideNetwork.save")
    ap.add_argument("--data", default="synthetic", help="the conf/dataset it was trained on (queries: its test rows)")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--Ks", default="4,6,8,10")
    ap.add_argument("--L", type=int, default=50)
    ap.add_argument("--transforms", default="raw,centered,mips,centered_mips")
    ap.add_argument("--pool", type=float, default=4.0, help="re-rank pool, in multiples of the limit")
    args = ap.parse_args()
    net = SlideNetwork.load(args.net)
    dcfg, cache = dataset_config(args.data)
    ds = load_dataset(dcfg, cache)
    rows = np.random.default_rng(1).choice(ds.test.n_points, args.rows, replace=False)
    H = hidden_rows(net, ds.test.features.take_rows(np.sort(rows))).astype(np.float64)
    H = H[H.any(axis=1)]
    fit = np.random.default_rng(2).choice(ds.train.n_points, 2000, replace=False)
    Hfit = hidden_rows(net, ds.train.features.take_rows(np.sort(fit))).astype(np.float64)
    p = net.params[-1]
    W, b = p.W.astype(np.float64), p.b.astype(np.float64)
    limit = net.config.layers[-1].chosen_limit
    pool = int(math.ceil(args.pool * limit))
    print(f"{args.net}: {W.shape[0]:,} rows, {len(H)} queries, limit {limit}, re-rank pool {pool}, L={args.L}")
    print(f"{'transform':>14} {'K':>3} {'union':>8} {'recall':>7} {'topk':>6} {'lift':>6} {'rerank':>7}")
    for name in args.transforms.split(","):
        for K in (int(k) for k in args.Ks.split(",")):
            r = evaluate(H, Hfit, W, b, name, K, args.L, limit, pool)
            print(f"{name:>14} {K:>3} {r['union']:>8.0f} {r['recall']:>7.3f} {r['topk']:>6.3f} "
                  f"{r['topk_lift']:>6.1f} {r['rerank']:>7.3f}", flush=True)


if __name__ == "__main__":
    main()
