"""Headless Chromium (Debian's `chromium`, installed by scripts/test) rendering HTML at a given width.

Chromium's new headless mode keeps a window at least 500 px wide, so the page is shown
in an iframe of exactly the width asked for (an iframe is its document's viewport, as a
phone's screen is); a script added to the page reports the document's width and height
to the outer page, which `--dump-dom` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

PROBE = ("<script>window.addEventListener('load',function(){var d=document.documentElement;"
         "parent.postMessage(JSON.stringify({scroll_width:d.scrollWidth,width:window.innerWidth,"
         "height:d.scrollHeight}),'*')})</script>")
WINDOW_WIDTH = 800  # wider than any frame we measure


@dataclass(frozen=True)
class Layout:
    scroll_width: int  # the document's width: more than `width` means horizontal scrolling
    width: int  # the viewport's
    height: int


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("Chromium is missing: scripts/test installs Debian's chromium (apt-get install chromium)")
    return path


def _outer_page(page: str, width: int, height: int) -> str:
    inner = page.replace("</body>", PROBE + "</body>") if "</body>" in page else page + PROBE
    return (
        '<!DOCTYPE html><html><body style="margin:0;background:#fff">'
        f'<iframe style="border:0;display:block" width="{width}" height="{height}" '
        f'srcdoc="{html.escape(inner, quote=True)}"></iframe>'
        "<script>window.addEventListener('message',function(e){document.body.setAttribute('data-layout',e.data)})"
        "</script></body></html>"
    )


def _run(args: list[str], page: str, width: int, height: int) -> str:
    with tempfile.TemporaryDirectory(prefix="rapport-chromium-") as folder:
        outer = Path(folder) / "page.html"
        outer.write_text(_outer_page(page, width, height), encoding="utf-8")
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
             f"--user-data-dir={folder}/profile", "--virtual-time-budget=5000", *args, outer.as_uri()],
            capture_output=True, text=True, timeout=120, check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"chromium failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def measure(page: str, width: int, height: int = 800) -> Layout:
    """Render `page` in a viewport `width` px wide; its document's size."""
    out = _run([f"--window-size={WINDOW_WIDTH},{height + 100}", "--dump-dom"], page, width, height)
    found = re.search(r'data-layout="([^"]*)"', out)
    if found is None:
        raise AssertionError("the page never reported its layout (did it load?)")
    return Layout(**json.loads(html.unescape(found.group(1))))


def screenshot(page: str, width: int, target: Path) -> Layout:
    """A PNG of the whole page at `width` px (the height it needs)."""
    layout = measure(page, width)
    with tempfile.TemporaryDirectory(prefix="rapport-shot-") as folder:
        shot = Path(folder) / "shot.png"
        _run([f"--window-size={WINDOW_WIDTH},{layout.height}", f"--screenshot={shot}"], page, width, layout.height)
        with Image.open(shot) as image:
            image.crop((0, 0, width, layout.height)).save(target, optimize=True)
    return layout
