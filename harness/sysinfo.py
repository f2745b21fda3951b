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
    """Peak resident memory of this process since its start or the last reset_peak_rss(): the
    kernel's high-water mark VmHWM. Not ru_maxrss: across fork + exec Linux carries the forked
    copy's peak into it, so a job spawned by a big parent (a sweep process, pytest) would report
    at least the parent's size. ru_maxrss (KiB) only where /proc is unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Make peak_rss_mb() start again from the current resident size (Linux: writing 5 to
    /proc/self/clear_refs resets the high-water mark VmHWM), so that a job run in a process that
    ran other jobs reports its own peak. False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def thp_mode() -> str:
    """The kernel's transparent-huge-page mode: always | madvise | never | unknown."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text[text.index("[") + 1:text.index("]")] if "[" in text else text.strip() or "unknown"


def start_environment() -> dict[str, str]:
    """The environment this process was started with (/proc/self/environ): what glibc and other
    start-up readers saw, unlike os.environ, which later code may have changed."""
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def minor_page_faults() -> int:
    """Minor page faults of this process so far (first touches of fresh pages, microseconds each)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def machine_tags() -> dict[str, str]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "python": platform.python_version(),
        "host": platform.node(),
        **library_versions(),
    }
