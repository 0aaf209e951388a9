"""The report in a real headless browser (Debian's chromium): it renders, it is not blank, no errors.

Skipped, with the reason, where no chromium is installed (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path
from types import ModuleType

import pytest

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: install Debian's "
                                "'chromium' package (apt-get install -y chromium) to run the browser test")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]

# Injected first into a copy of the page: records script errors, then, once loaded, writes what
# the browser drew (box and chart sizes, error count) into the DOM that --dump-dom prints.
PROBE = """<script>window.__errors=[];window.addEventListener('error',function(e){
window.__errors.push(String(e.message||e.type))},true);
window.addEventListener('load',function(){var o=document.createElement('pre');o.id='probe';
var g=document.querySelector('svg.graph'),c=document.querySelector('svg.chart');
var b=g?g.getBBox():{width:0,height:0},d=c?c.getBBox():{width:0,height:0};
o.textContent=JSON.stringify({errors:window.__errors,graph:[b.width,b.height],chart:[d.width,d.height],
nodes:document.querySelectorAll('svg.graph g.node').length});document.body.appendChild(o)});</script>"""


def run_chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "HOME": str(profile)})


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and unfiltered RGB(A) rows of an 8-bit truecolour PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, header = 8, [], b""
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        offset += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    step = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    rows, previous, stride = [], bytearray(width * step), width * step
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - step] if i >= step else 0
            up, corner = previous[i], previous[i - step] if i >= step else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, rows


@pytest.mark.slow
def test_report_renders_in_chromium_without_errors(scripted: ModuleType, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    trainer, _, _ = scripted.build(tmp_path / "cache", checkpoint=tmp_path / "c.json", report=report,
                                   epochs=1, eval_every=1)
    trainer.fit()
    page = report.read_text()

    shot = tmp_path / "shot.png"
    done = run_chromium("--window-size=800,600", f"--screenshot={shot}", report.as_uri(),
                        profile=tmp_path / "profile-shot")
    assert shot.exists(), done.stderr[-2000:]
    assert "Uncaught" not in done.stderr and ":CONSOLE" not in done.stderr, done.stderr[-2000:]
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (800, 600)
    colours = {row[i:i + 3] for row in rows[::7] for i in range(0, len(row), 3 * 7)}
    assert len(colours) > 20, "the screenshot is (nearly) blank"

    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>" + PROBE, 1))
    dumped = run_chromium("--dump-dom", probed.as_uri(), profile=tmp_path / "profile-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    assert "Uncaught" not in dumped.stderr, dumped.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', dumped.stdout, re.S)
    assert found, dumped.stdout[-2000:]
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe["errors"] == []
    assert probe["nodes"] == page.count('<g class="node">') > 0
    assert min(probe["graph"]) > 40 and min(probe["chart"]) > 100
