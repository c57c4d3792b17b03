"""A killed sweep client leaves no process behind: its forkserver, workers and resource tracker
all end within seconds (SIGKILL and SIGTERM run no clean-up in the client)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (Linux)")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, dead but not reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_sweep_client_leaves_no_process(tmp_path, sig):
    cmd = [sys.executable, "-m", "experiments.cli", "sweep", "three-dn", "--scenarios", "40",
           "--workers", "2", "--no-progress", "--no-figures", "--out", str(tmp_path / "sw")]
    client = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        # wait for the forkserver and both workers (3 descendants besides the resource tracker)
        while time.monotonic() < deadline and client.poll() is None:
            seen |= _descendants(client.pid)
            if len(seen) >= 3 and (tmp_path / "sw" / "sweep.json").exists():
                break
            time.sleep(0.2)
        assert client.poll() is None, "the sweep ended before it could be killed"
        seen |= _descendants(client.pid)
        assert len(seen) >= 3, f"expected a forkserver and two workers, saw {len(seen)} processes"
        os.kill(client.pid, sig)
        client.wait(timeout=30)
        deadline = time.monotonic() + 10
        left = {p for p in seen if _alive(p)}
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = {p for p in left if _alive(p)}
        assert not left, f"still running 10 s after {sig.name} of the client: {sorted(left)}"
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for p in seen | _descendants(client.pid):  # a failed test leaves nothing behind either
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
