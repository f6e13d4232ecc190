"""The live page in real headless Chromium (Playwright): what it draws must match what was streamed."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from leukedge.liveview import LiveViewSink
from leukedge.sinks.synthetic import crop_pool, random_cells
from leukedge.synthetic import make_smear_frame
from leukedge.types import BBox, Cell, FrameResult
from tests.conftest import require_program, skip_or_fail

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-test-token-0123456789"


@pytest.fixture(scope="module")
def browser():
    exe = require_program("chromium", "/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright (Python package) is not installed: pip install 'leukedge[dev]'")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.requests = []  # type: ignore[attr-defined]
    pg.on("request", lambda req: pg.requests.append(req.url))  # type: ignore[attr-defined]
    yield pg
    ctx.close()


def shown_cells(page):
    return page.eval_on_selector_all(
        "#boxes g.cell",
        """gs => gs.map(g => { const r = g.querySelector('rect');
             return {cell: +g.dataset.cell, label: g.dataset.label, p: +g.dataset.pAll, kind: g.getAttribute('class'),
                     bbox: ['x','y','width','height'].map(a => +r.getAttribute(a)),
                     stroke: getComputedStyle(r).stroke, text: g.querySelector('text').textContent}; })""",
    )


def test_page_draws_the_streamed_boxes_and_counts(page, tmp_path) -> None:
    frame, _ = make_smear_frame(3, width=640, height=480, cells=5, scale=0.5)
    pool = crop_pool(2)
    rng = np.random.default_rng(5)
    with LiveViewSink("127.0.0.1", 0, model="0123456789ab", max_fps=30, min_cells=50) as sink:
        page.goto(sink.url)
        page.wait_for_selector("#status[data-state='live']", timeout=10_000)
        totals = {"cells": 0, "all": 0}
        for i in range(4):
            cells = list(random_cells(rng, 6, width=640, height=480, crops=pool))
            cells[0] = Cell(0, BBox(10, 20, 60, 50), 2000, pool[0], 0.97, "all")  # certainly ALL
            cells[1] = Cell(1, BBox(100, 200, 70, 70), 2000, pool[1], 0.12, "hem")  # certainly not
            cells[2] = Cell(2, BBox(300, 100, 80, 60), 2000, pool[1], 0.45, "hem")  # indeterminate
            t = time.time()
            r = FrameResult(i, "synthetic://", t - 0.04, t, tuple(cells), 640, 480)
            totals["cells"] += len(cells)
            totals["all"] += r.n_all
            sink.write_frame(r, frame)
            page.wait_for_selector(f"#frame-index:text-is('{i}')", timeout=10_000)
            time.sleep(0.05)  # the accept interval (1/30 s) must pass before the next frame is shown
        page.wait_for_selector(f"#n-cells:text-is('{totals['cells']}')")
        shown = shown_cells(page)
        assert [(c["cell"], c["label"], c["bbox"]) for c in shown] == [
            (c.index, c.label, c.bbox.as_list()) for c in r.cells
        ]
        assert [c["p"] for c in shown] == pytest.approx([c.p_all for c in r.cells], abs=1e-6)
        kinds = {c["cell"]: c["kind"] for c in shown}
        assert (kinds[0], kinds[1], kinds[2]) == ("cell all", "cell hem", "cell ind")
        strokes = {c["kind"]: c["stroke"] for c in shown}
        assert strokes["cell all"] == "rgb(215, 38, 61)" and strokes["cell hem"] == "rgb(27, 152, 224)"
        assert shown[0]["text"] == "ALL 0.97"
        text = {k: page.inner_text(f"#{k}") for k in ("n-cells", "n-all", "n-frames", "all-fraction", "verdict")}
        assert text["n-cells"] == str(totals["cells"]) and text["n-all"] == str(totals["all"])
        assert text["n-frames"] == "4"
        assert text["all-fraction"] == f"{100 * totals['all'] / totals['cells']:.1f}%"
        assert text["verdict"].startswith("inadequate: 24 classified cells")
        assert page.get_attribute("#frame-image", "href").startswith("data:image/jpeg;base64,")
        page.wait_for_selector("#gallery figure")
        assert page.eval_on_selector_all(
            "#gallery img", "imgs => imgs.every(i => i.complete && i.naturalWidth === 128)"
        )
        shot = tmp_path / "liveview.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("LEUKEDGE_SCREENSHOT_DIR"):  # to look at it by hand
            shutil.copy(shot, Path(os.environ["LEUKEDGE_SCREENSHOT_DIR"]) / shot.name)
        assert all(u.startswith(sink.url) or u.startswith("data:") for u in page.requests), page.requests
    page.wait_for_selector("#status:text-is('run ended')", timeout=10_000)


def test_page_with_a_token_on_a_public_bind(page) -> None:
    with LiveViewSink("0.0.0.0", 0, token=TOKEN, max_fps=30) as sink:
        base = f"http://127.0.0.1:{sink.port}/"
        resp = page.goto(base)
        assert resp.status == 401 and "needs its token" in page.inner_text("body")
        page.goto(base + "?token=" + TOKEN)
        page.wait_for_selector("#status[data-state='live']", timeout=10_000)
        t = time.time()
        sink.write_frame(
            FrameResult(0, "cam", t, t, (Cell(0, BBox(5, 5, 40, 40), 900, None, 0.8, "all"),), 320, 240), None
        )
        page.wait_for_selector("#frame-index:text-is('0')", timeout=10_000)
        assert page.inner_text("#n-all") == "1"
        assert shown_cells(page)[0]["bbox"] == [5, 5, 40, 40]
