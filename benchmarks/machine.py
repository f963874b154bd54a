"""What the benchmarks say about the machine they ran on."""

from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), as BENCHMARKS.md names the machine of each figure."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "unknown CPU"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown CPU")
