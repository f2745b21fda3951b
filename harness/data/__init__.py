"""Data layer of the harness: everything every model sees identically.

    csr        CSR: the one sparse array format (int64 indptr, int32 indices, float32 data)
    xmc        read_xmc / write_xmc: Extreme Classification Repository text files, XMCSplit
    xmc_parse, xmc_format  the Numba byte-level parser and formatter behind xmc
    cache      load_xmc_cached: parsed files kept as .npz, invalidated when the file changes
    synthetic  SyntheticSpec, generate: learnable synthetic data of any shape (Amazon-670K's too)
    batching   epoch_order, iterate_batches, eval_subset: seeded order and fixed eval subset
    datasets   DatasetConfig (schema of conf/dataset), Dataset, load_dataset

Modules are imported directly (e.g. `from harness.data.xmc import read_xmc`); this package
imports nothing so that `harness.data.csr` stays cheap to import.
"""
