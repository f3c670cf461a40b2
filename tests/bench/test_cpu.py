import os
import subprocess
import sys

from bench.cpu import CpuMeter, Own


def burn(ms: int) -> None:
    import time

    end = time.process_time() + ms / 1000
    while time.process_time() < end:
        pass


def test_counts_a_process_tree_its_own_process_and_processes_by_name():
    child = subprocess.Popen([sys.executable, "-c", "import time\nend=time.process_time()+0.3\n"
                              "while time.process_time()<end: pass"])
    meter = CpuMeter({"tree": os.getpid(), "own": Own(os.getpid()), "nobody": "no-such-command"})
    burn(100)
    child.wait()
    parts = meter.per_item_ms(1)
    assert parts["own"] >= 50  # clock ticks: coarse
    assert parts["nobody"] == 0
    assert parts["total"] == round(parts["tree"] + parts["own"] + parts["nobody"], 3)
