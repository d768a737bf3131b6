"""Stopping a federation's processes: descendants in sessions of their own are stopped too."""
import os
import sys
import time
from pathlib import Path

import pytest

from ganforge.federated.processes import ProcessGroup

# A leader that starts a child in a session of its own (as Flower's SuperLink starts its executor,
# whose ServerApp a signal to the SuperLink's group alone would miss), writes the child's pid, and waits.
LEADER = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
open(sys.argv[1], "w").write(str(child.pid))
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="descendants are found through /proc (Linux)")
@pytest.mark.parametrize("how", ["stop", "kill"])
def test_stopping_a_process_stops_its_descendants_in_other_sessions(tmp_path, how):
    group = ProcessGroup()
    pid_file = tmp_path / "child.pid"
    leader = group.start([sys.executable, "-c", LEADER, str(pid_file)], env=dict(os.environ))
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the leader did not start its child"
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert os.getpgid(child) != os.getpgid(leader.pid)  # out of reach of a signal to the leader's group
    getattr(group, how)(leader)
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_the_clientapp_module_imports_no_torch():
    """Flower starts a ClientApp process for every message; SecAgg+'s key-exchange and unmasking stages never
    reach the client, so the module the Flower App names for the ClientApp must not import torch."""
    import subprocess
    import sys
    import tomllib

    from ganforge.federated import processes

    app = tomllib.loads((processes.APP_DIR / "pyproject.toml").read_text())["tool"]["flwr"]["app"]["components"]
    module, attribute = app["clientapp"].split(":")
    code = f"import sys, {module} as m; print(type(m.{attribute}).__name__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["ClientApp", "False"]
