"""keep_freed_memory: large freed buffers are reused instead of being mapped (and faulted in) again."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = textwrap.dedent(
    """
    import resource, numpy as np
    from facenet_core.memory import keep_freed_memory

    def faults():
        np.ones(4 << 20, dtype=np.float32)  # 16 MiB, freed at once
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(5):
            np.ones(4 << 20, dtype=np.float32)
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    before = faults()
    kept = keep_freed_memory()
    print(before, kept, faults(), keep_freed_memory())
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_large_buffers_are_reused_once_freed_memory_is_kept():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True)
    before, kept, after, again = out.stdout.split()
    assert kept == again == "True"
    assert int(before) > 20  # each 16 MiB buffer is a fresh mapping, faulted in page by page
    assert int(after) == 0
