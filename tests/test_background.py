"""generator/background.py: one call in a forked second process, its result or its exception back."""

import os
import subprocess
import sys
import time

import pytest

from generator import background
from generator.config import REPO


def test_the_result_and_the_exception_come_back():
    big = background.start(lambda: bytes(range(256)) * 40_000)  # 10 MB: more than a pipe holds
    fails = background.start(lambda: 1 / 0)
    assert big() == bytes(range(256)) * 40_000
    with pytest.raises(ZeroDivisionError):
        fails()


ORPHAN = """
import multiprocessing, os, sys, time
from generator import background
background.start(lambda: (time.sleep(1), b"x" * 10_000_000)[1])
print(*[p.pid for p in multiprocessing.active_children()], flush=True)
os._exit(0)  # dies without asking for the result, as when make kills a stage
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the second process is forked only where fork exists")
def test_a_child_whose_parent_died_exits():
    out = subprocess.run([sys.executable, "-c", ORPHAN], cwd=REPO, capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=str(REPO))).stdout.split()
    assert len(out) == 1
    pid = int(out[0])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, 9)
    pytest.fail("the orphaned child still ran 30 s after its parent died")
