"""The process's malloc keeps freed crop-sized blocks, so a frequency separation does not fault page by page."""

from __future__ import annotations

import subprocess
import sys

import pytest

# The page faults of an HF-map of a 512 crop (the Shading stage's), once warm: by default its 3 MB
# arrays go back to the kernel when freed and fault on every 4 KB page when the next call writes them.
PROBE = """
import resource, sys
import numpy as np
from megaportrait_desktop.core import frequency
from megaportrait_desktop.core.allocator import keep_freed_memory
tuned = keep_freed_memory() if sys.argv[1] == "tuned" else None
image = np.random.default_rng(0).random((512, 512, 3), dtype=np.float32)
for _ in range(3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    hf = frequency.hf_map(image, 30.0)
    del hf
print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         timeout=120).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_warm_frequency_separation_no_longer_faults_its_pages_in():
    tuned, faults = _faults("tuned")
    _, default_faults = _faults("default")
    assert tuned == "True"
    assert default_faults > 700, "the default allocator did not fault: the probe would show nothing"
    assert faults < 50
