"""Job checkpoints: what a killed job needs to continue as if it had never stopped.

One checkpoint is one .npz file (no pickle) in the job's checkpoint folder,
`<sweep or run folder>/checkpoints/<MLflow run id>/ckpt-<iteration>.npz`, holding
- the model's whole state under `model/...` (Model.state_dict: weights, optimiser moments and
  step, SLIDE's hash functions and tables, samplers' random states), and
- a JSON header under `meta`: the format, the config hash the job was started with, the run
  id, and the training loop's position (harness.loop.LoopState: epoch and batch, the
  iteration, the training clock, the last evaluated step, half-filled log windows).

A checkpoint is written to a temporary name, fsynced, renamed, and the folder fsynced
(slide_core.files.atomic_write): a file under the real name is always complete. The last
`keep` are kept. Reading tries the newest first; one that is truncated, of another format or
made for another config is reported with its path and the problem, and the one before it is
tried (load_latest).
"""
from __future__ import annotations

import json
import logging
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from slide_core.files import atomic_write

log = logging.getLogger(__name__)

FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.npz$")
_MODEL = "model/"


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def checkpoint_folder(sweep_dir: str | os.PathLike, run_id: str) -> Path:
    return Path(sweep_dir) / "checkpoints" / run_id


def owned_checkpoint_folder(tagged: str | None, run_id: str, sweep_dir: str | os.PathLike,
                            roots: Sequence[str | os.PathLike]) -> Path:
    """Where a continued run's checkpoints are read, written and pruned. The folder its tag
    (written by an earlier job, but readable and writable by anyone with access to the store)
    names is used only when it is a checkpoint folder of this very run, <folder>/checkpoints/<run
    id>, where <folder> is a Hydra sweep or run folder (it holds multirun.yaml or .hydra/) inside
    one of `roots` (the folders that hold this project's sweep and run folders), also after
    resolving links and '..'; otherwise this job's own folder for the run, and a warning."""
    own = checkpoint_folder(sweep_dir, run_id)
    if not tagged:
        return own
    path = Path(tagged)
    home = path.parent.parent
    if (path.is_absolute() and path.name == run_id and path.parent.name == "checkpoints"
            and any(_resolves_inside(home, Path(root)) for root in roots)
            and ((home / "multirun.yaml").is_file() or (home / ".hydra").is_dir())):
        return path
    log.warning("run %s: its checkpoint_dir tag (%s) is not a checkpoint folder of this run in a sweep or run "
                "folder under %s: refused; using %s", run_id, tagged, " or ".join(dict.fromkeys(map(str, roots))), own)
    return own


def _resolves_inside(path: Path, root: Path) -> bool:
    """`path` lies under `root`, also after resolving links and '..', and its checkpoints
    folder is no link out of it."""
    try:
        resolved, home = path.resolve(), root.resolve()
        links = (path / "checkpoints").is_symlink()
    except OSError:
        return False
    return resolved.is_relative_to(home) and resolved != home and not links


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files of a folder, newest (highest iteration) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def write_checkpoint(folder: str | os.PathLike, iteration: int, meta: Mapping[str, Any],
                     model_state: Mapping[str, np.ndarray]) -> Path:
    """Write one checkpoint atomically; returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt-{int(iteration):09d}.npz"
    header = np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8)
    arrays = {_MODEL + k: np.asarray(v) for k, v in model_state.items()}
    atomic_write(path, lambda f: np.savez(f, meta=header, **arrays))
    return path


def prune(folder: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints, and temporary files a kill left behind."""
    folder = Path(folder)
    for old in list_checkpoints(folder)[max(int(keep), 1):]:
        old.unlink(missing_ok=True)
    for tmp in folder.glob(".ckpt-*.tmp"):
        tmp.unlink(missing_ok=True)


def read_checkpoint(path: Path, config_hash: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, model arrays) of one checkpoint, all read into memory; CheckpointError when the
    file is truncated or corrupt, of another format, or made for another config."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            if meta.get("format") != FORMAT:
                raise CheckpointError(f"{path}: checkpoint format {meta.get('format')!r}, this version reads {FORMAT}")
            if meta.get("config_hash") != config_hash:
                raise CheckpointError(f"{path}: made for another config (hash {meta.get('config_hash')}, this "
                                      f"job's is {config_hash})")
            arrays = {k[len(_MODEL):]: z[k] for k in z.files if k.startswith(_MODEL)}
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path}: unreadable, truncated or corrupt ({type(error).__name__}: {error})") from None
    return meta, arrays


def load_latest(folder: str | os.PathLike, config_hash: str,
                apply: Callable[[dict, dict[str, np.ndarray]], None]) -> dict | None:
    """Read the newest usable checkpoint of `folder` and hand it to `apply(meta, arrays)`
    (which restores the model; an error there, e.g. arrays of another shape, counts as an
    unusable checkpoint too). Returns its meta, or None when the folder has no checkpoint.
    Every unusable one is logged with its path and the problem, and the previous one is tried;
    CheckpointError when none is usable."""
    problems = []
    for path in list_checkpoints(folder):
        try:
            meta, arrays = read_checkpoint(path, config_hash)
            try:
                apply(meta, arrays)
            except (KeyError, ValueError, TypeError) as error:
                raise CheckpointError(f"{path}: does not fit this model ({type(error).__name__}: {error})") from None
        except CheckpointError as problem:
            log.error("%s; trying the one before it", problem)
            problems.append(str(problem))
            continue
        meta["path"] = str(path)
        return meta
    if problems:
        raise CheckpointError("no usable checkpoint: " + "; ".join(problems))
    return None


class Checkpointer:
    """Writes the job's checkpoints: every `every_s` seconds of wall time (None: only when
    asked, i.e. at the end of training and on a stop signal), keeping the last `keep`.
    Before each write the tracker's buffered metrics are flushed, so that what MLflow holds
    always reaches at least the checkpoint's iteration (no step goes missing on resume)."""

    def __init__(self, folder: str | os.PathLike, config_hash: str, run_id: str, every_s: float | None,
                 keep: int = 2, tracker=None, clock=time.monotonic):
        self.folder = Path(folder)
        self.config_hash = config_hash
        self.run_id = run_id
        self.every_s = every_s
        self.keep = int(keep)
        self.tracker = tracker
        self._clock = clock
        self._last = clock()
        self.last_size_mb = 0.0
        self.total_save_s = 0.0  # wall seconds spent writing, all outside the training clock

    def start_timer(self) -> None:
        """The wall-time interval starts now (when training starts, not at construction)."""
        self._last = self._clock()

    def due(self) -> bool:
        return self.every_s is not None and self._clock() - self._last >= self.every_s

    def save(self, model, loop_state: Mapping[str, Any], iteration: int) -> Path:
        t0 = time.perf_counter()
        if self.tracker is not None:
            self.tracker.flush()
        path = write_checkpoint(self.folder, iteration,
                                {"config_hash": self.config_hash, "run_id": self.run_id, "loop": dict(loop_state)},
                                model.state_dict())
        prune(self.folder, self.keep)
        seconds = time.perf_counter() - t0
        self.total_save_s += seconds
        self.last_size_mb = path.stat().st_size / 2**20
        self._last = self._clock()
        log.info("checkpoint %s (%.0f MB) in %.2f s", path, self.last_size_mb, seconds)
        return path
