"""Open a page in Debian's headless chromium, as the report.html tests do."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Rendered:
    dom: subprocess.CompletedProcess  # ``--dump-dom``: the page after its scripts ran
    console: list[str]  # the page's console messages and failed loads (chromium's CONSOLE lines)
    snap: subprocess.CompletedProcess  # ``--screenshot`` of a 1280 x 2000 window
    shot: Path


def render(page: Path, tmp_path: Path) -> Rendered:
    """Dump ``page``'s DOM and take a screenshot of it, in a fresh chromium profile."""
    url = page.resolve().as_uri()
    shot = tmp_path / "report.png"
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=1"]
    dom = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    console = [ln for ln in dom.stderr.splitlines()
               if "CONSOLE" in ln or "Failed to load resource" in ln]
    snap = subprocess.run([*base, "--window-size=1280,2000", f"--screenshot={shot}", url],
                          capture_output=True, text=True, timeout=120)
    return Rendered(dom, console, snap, shot)
