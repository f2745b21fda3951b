"""Facts about the machine and the code that make a run reproducible: tagged on every run."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import resource
import subprocess
from pathlib import Path

LIBRARIES = ("numpy", "numba", "tensorflow-cpu", "tensorflow", "mlflow", "hydra-core", "pandas", "psutil")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    """Installed versions, read from package metadata so that nothing (TF!) gets imported."""
    out = {}
    for name in LIBRARIES:
        try:
            out[f"lib.{name}"] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def git_revision(root: str | os.PathLike) -> str:
    """HEAD of the project checkout, with '-dirty' when the work tree has changes."""
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_rss_mb() -> float:
    """Peak resident memory of this process (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine_tags() -> dict[str, str]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "python": platform.python_version(),
        "host": platform.node(),
        **library_versions(),
    }
