"""Dense TensorFlow baselines: full softmax and sampled softmax networks of the SLIDE shape.

The only room that imports TensorFlow, and only lazily: importing `baselines` (or
`baselines.padding` / `baselines.memory`) does not import TF, so the SLIDE path never pays for
it. Modules:

    packing        CSR batch -> padded flat arrays (numpy only; stable shapes for tf.function/XLA)
    memory         estimate a dense model's memory and refuse it before building (no TF)
    devices        TF runtime setup: thread pools, visible GPUs and why there are none
    dense_softmax  sparse input -> ReLU hidden layers -> full softmax, fused Adam, top-k
    sampled_softmax  the same network trained with TF's sampled softmax (negatives drawn
                     log-uniformly by the labels' training frequency rank by default)

Nothing here imports `harness`: batches arrive as (indptr, indices, data) arrays.
"""
