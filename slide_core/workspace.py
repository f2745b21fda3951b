"""Preallocated per-batch-shape buffers of the batch step (one LayerWork per layer).

Allocated once per (batch rows, label room, chunk count) and reused for every batch of
that shape or smaller, so the hot loop never allocates. Per-chunk arrays (first axis =
chunk = thread) hold the dedup stamps, frequency counts, hash scratch and statistics.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from slide_core.adam import RowGroups
from slide_core.config import LayerConfig
from slide_core.hashing import scratch_sizes
from slide_core.step import N_STATS, ActiveSets, LayerInput, SelectScratch


class LayerWork(NamedTuple):
    ids: np.ndarray  # int32 (B, cap): active neuron ids per sample (unused when dense)
    cnt: np.ndarray  # int64 (B,): active count per sample
    vals: np.ndarray  # float32 (B, cap): activations (hidden) / logits -> gradient (output)
    delta: np.ndarray  # float32 (B, cap): dL/d activation (hidden layers)
    n_forced: np.ndarray  # int64 (B,): labels forced in first (output layer)
    n_exact: np.ndarray  # int64 (B,): active neurons before this index were chosen, the rest sampled
    shift: np.ndarray  # float32 (B, cap): log-Q correction of each sampled slot
    keys: np.ndarray  # int32 (B, L): bucket keys of each sample's input
    start: np.ndarray  # int64 (B,): s * cap, this layer's rows as the next layer's input
    stamp: np.ndarray  # int64 (T, width): dedup stamps (sampling.py)
    stamp_next: np.ndarray  # int64 (T,): next free stamp value per chunk
    counts: np.ndarray  # int32 (T, width): bucket-hit counts (threshold / topk)
    touched: np.ndarray  # int32 (T, L*capacity): neurons with counts > 0
    hist: np.ndarray  # int64 (T, L+2): count histogram (topk)
    scores: np.ndarray  # float32 (T, width): exact scores (oracle; a re-ranked pool's: pool_limit)
    work: np.ndarray  # float32 (T, width): quickselect buffer (oracle, re-rank)
    scratch_f: np.ndarray  # float32 (T, n): hash scratch
    scratch_i: np.ndarray  # int32 (T, n)
    stats: np.ndarray  # float64 (T, N_STATS)

    def active(self, rows: int, dense: bool) -> ActiveSets:
        """The first `rows` samples' active sets, as the kernels take them."""
        return ActiveSets(self.ids[:rows], self.cnt[:rows], self.vals[:rows], self.n_forced[:rows],
                          self.n_exact[:rows], self.shift[:rows], dense)

    def as_input(self, rows: int, dense: bool) -> LayerInput:
        """This layer's activations as the next layer's input (padded rows of cap entries)."""
        return LayerInput(self.start[:rows], self.cnt[:rows], self.ids[:rows].reshape(-1),
                          self.vals[:rows].reshape(-1), dense)

    def select_scratch(self) -> SelectScratch:
        return SelectScratch(self.stamp, self.stamp_next, self.counts, self.touched, self.hist, self.scores,
                             self.work)


class Workspace(NamedTuple):
    rows: int  # batch rows it holds
    label_room: int  # labels per sample the output layer has room for
    n_chunks: int
    x_start: np.ndarray  # int64 (rows,)
    x_cnt: np.ndarray  # int64 (rows,)
    y_ptr: np.ndarray  # int64 (rows + 1,)
    losses: np.ndarray  # float32 (rows,)
    has_grad: np.ndarray  # uint8 (rows,)
    layers: tuple[LayerWork, ...]
    # grouped output-layer Adam (adam's group_rows / grouped kernels); size 1 when unused
    grp_count: np.ndarray  # int32 (n_out,): zeros between batches
    grp_groups: RowGroups  # the batch's pairs grouped by output row, per chunk (adam.RowGroups)
    grp_gbuf: np.ndarray  # float32 (T, n_in): per-chunk gradient row
    tail: SharedTailWork  # the shared tail's buffers (m = 0 columns when the layer has none)

    def batch_input(self, rows: int, x_ids: np.ndarray, x_vals: np.ndarray) -> LayerInput:
        """The first layer's input: the CSR batch whose row offsets/counts are in x_start/x_cnt."""
        return LayerInput(self.x_start[:rows], self.x_cnt[:rows], x_ids, x_vals, False)


class SharedTailWork(NamedTuple):
    """Buffers of the output layer's shared tail (tail.py) for up to m neurons and `rows` samples."""
    z: np.ndarray  # float32 (rows, m): products h_s . w_j, then dL/dz (step.SharedTail.z)
    w: np.ndarray  # float32 (m, n_in): the shared rows of W, gathered
    shift: np.ndarray  # float32 (m,): b_j - log(pi_j)
    pos: np.ndarray  # int32 (width,): neuron -> column of z, -1 elsewhere (restored after each batch)
    gW: np.ndarray  # float32 (m, n_in): the shared rows' weight gradient
    gb: np.ndarray  # float32 (m,)
    dh: np.ndarray  # float32 (T, rows, n_in): each column block's part of the hidden delta
    seen: np.ndarray  # bool (width,): the sampler's scratch (all False between batches)
    ids: np.ndarray  # int32 (m,): the batch's shared neurons
    log_q: np.ndarray  # float32 (m,): their log inclusion probabilities


def make_tail_work(m: int, rows: int, n_in: int, width: int, T: int) -> SharedTailWork:
    return SharedTailWork(z=np.zeros((rows, m), np.float32), w=np.zeros((m, n_in), np.float32),
                          shift=np.zeros(m, np.float32), pos=np.full(width if m else 1, -1, np.int32),
                          gW=np.zeros((m, n_in), np.float32), gb=np.zeros(m, np.float32),
                          dh=np.zeros((T if m else 0, rows, n_in), np.float32),
                          seen=np.zeros(width if m else 1, np.bool_), ids=np.zeros(m, np.int32),
                          log_q=np.zeros(m, np.float32))


def _per_chunk(T: int, n: int, dtype, fill=0) -> np.ndarray:
    return np.full((T, max(1, n)), fill, dtype=dtype)


def active_room(cfg: LayerConfig, label_room: int, pad_draws: int = 0) -> int:
    """Slots per sample a training active set may fill: the config's capacity, or labels +
    retrieved + every draw of a per-sample tail drawn from a frequency law (tail.py)."""
    return min(cfg.width, max(cfg.active_capacity(label_room), label_room + cfg.chosen_limit + pad_draws))


def make_layer_work(cfg: LayerConfig, rows: int, label_room: int, T: int, hf, dense_out: bool,
                    pad_draws: int = 0) -> LayerWork:
    """Buffers for one layer. dense_out: every neuron active (sparsity 1 or dense inference);
    pad_draws: the draws of its per-sample tail when a frequency law draws it."""
    width = cfg.width
    cap = width if dense_out else active_room(cfg, label_room, pad_draws)
    sparse = not dense_out
    counting = sparse and cfg.strategy in ("threshold", "topk")
    oracle = sparse and cfg.strategy == "oracle"
    rerank = sparse and cfg.rerank_pool > 0
    if sparse and cfg.uses_tables and hf is not None:
        n_f, n_i = scratch_sizes(hf)
    else:
        n_f = n_i = 1
    return LayerWork(
        ids=np.zeros((rows, 1 if dense_out else cap), dtype=np.int32),
        cnt=np.zeros(rows, dtype=np.int64),
        vals=np.zeros((rows, cap), dtype=np.float32),
        delta=np.zeros((rows, cap), dtype=np.float32),
        n_forced=np.zeros(rows, dtype=np.int64),
        n_exact=np.zeros(rows, dtype=np.int64),
        shift=np.zeros((rows, 1 if dense_out else cap), dtype=np.float32),
        keys=np.zeros((rows, cfg.L if sparse else 1), dtype=np.int32),
        start=np.arange(rows, dtype=np.int64) * cap,
        stamp=_per_chunk(T, width if sparse else 1, np.int64),
        stamp_next=np.ones(T, dtype=np.int64),
        counts=_per_chunk(T, width if counting else 1, np.int32),
        touched=_per_chunk(T, cfg.L * cfg.bucket_capacity if counting else 1, np.int32),
        hist=_per_chunk(T, cfg.L + 2, np.int64),
        scores=_per_chunk(T, width if oracle else (cfg.pool_limit if rerank else 1), np.float32),
        work=_per_chunk(T, width if oracle else (cfg.pool_limit if rerank else 1), np.float32),
        scratch_f=_per_chunk(T, n_f, np.float32),
        scratch_i=_per_chunk(T, n_i, np.int32),
        stats=np.zeros((T, N_STATS), dtype=np.float64),
    )


def make_workspace(layers: tuple[LayerConfig, ...], rows: int, label_room: int, n_chunks: int,
                   hfs: list, dense: bool = False, grouped: bool = False, pad_draws: int = 0,
                   shared_draws: int = 0) -> Workspace:
    """Workspace for a batch of `rows`; dense=True computes every neuron (dense inference);
    grouped: buffers for the grouped output-layer Adam; pad_draws / shared_draws: the draws
    of the output layer's per-sample / shared tail under a frequency law (tail.py)."""
    out = layers[-1]
    cap = active_room(out, label_room, pad_draws) if grouped else 1
    m = shared_draws if (grouped and not dense) else 0
    n_pairs = rows * cap + m if grouped else 1
    n_in = layers[-2].width if (grouped and len(layers) > 1) else 1
    return Workspace(
        tail=make_tail_work(m, rows, n_in, out.width, n_chunks),
        grp_count=np.zeros(out.width if grouped else 1, dtype=np.int32),
        # per chunk room for every pair: a batch's labels may all fall in one chunk's rows
        grp_groups=RowGroups(rows=_per_chunk(n_chunks, n_pairs, np.int32), n_rows=np.zeros(n_chunks, dtype=np.int64),
                             ptr=_per_chunk(n_chunks, n_pairs + 1, np.int64),
                             pairs=_per_chunk(n_chunks, n_pairs, np.int64)),
        grp_gbuf=np.zeros((n_chunks, n_in), dtype=np.float32),
        rows=rows, label_room=label_room, n_chunks=n_chunks,
        x_start=np.zeros(rows, dtype=np.int64), x_cnt=np.zeros(rows, dtype=np.int64),
        y_ptr=np.zeros(rows + 1, dtype=np.int64), losses=np.zeros(rows, dtype=np.float32),
        has_grad=np.zeros(rows, dtype=np.uint8),
        layers=tuple(make_layer_work(cfg, rows, label_room if i == len(layers) - 1 else 0, n_chunks,
                                     hfs[i], dense or cfg.dense, pad_draws if i == len(layers) - 1 else 0)
                     for i, cfg in enumerate(layers)),
    )
