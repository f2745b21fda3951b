"""A SlideNetwork in one .npz file: SlideNetwork.state() written out (no pickle), and read
back through SlideNetwork.from_state. What the state holds is the network's (network.py);
this module only writes and reads files. The harness puts the same arrays into its job
checkpoints instead (harness.job_state).
"""
from __future__ import annotations

import os

import numpy as np

from slide_core.files import atomic_write


def save_network(net, path) -> None:
    """net.state() in one .npz file, written atomically (slide_core.files)."""
    state = net.state()
    atomic_write(path, lambda f: np.savez(f, **state))


def load_network(cls, path, threads: int | None = None):
    """A `cls` (SlideNetwork) from the file save_network wrote."""
    with np.load(path, allow_pickle=False) as z:
        return cls.from_state(z, threads, source=os.fspath(path))
