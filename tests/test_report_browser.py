"""report.html in a real headless Chromium: opened from file://, as a person opens it.

The browser is driven over the DevTools protocol through a pipe (tests/chromium.py, standard library
only). Checked: no console error or warning (failed image loads and Content-Security-Policy violations
included), the SVG as the browser parsed it (points counted by the SVG DOM itself), the sample images
decoded, and a screenshot that is not blank. Skips only when no Chromium binary exists (Debian:
`apt-get install chromium`; scripts/ci_packages.sh does that in CI; $CHROMIUM names another binary).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chromium import Chromium, find_chromium, living
from report_data import HOSTILE, make_run, make_sweep

from artlab_kohya.experiments.html import RunReport, render_run, render_sweep

BROWSER = find_chromium()
pytestmark = pytest.mark.skipif(
    BROWSER is None, reason="no Chromium binary (apt-get install chromium, or set CHROMIUM to one)"
)

WIDTH = 1200


@pytest.fixture(scope="module")
def browser():
    assert BROWSER is not None
    with Chromium(BROWSER, width=WIDTH, height=900) as b:
        yield b


def write_images(folder: Path, run: RunReport) -> None:
    """Real PNGs where the samples' hrefs point, each a different gradient."""
    from PIL import Image

    for n, sample in enumerate(run.samples):
        path = folder / sample.image_href
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.linear_gradient("L").resize((64, 64)).convert("RGB")
        image.paste((40 * n % 255, 120, 200 - 20 * sample.prompt_index), (0, 0, 64, 24))
        image.save(path)


def polylines(browser: Chromium) -> dict[str, dict[str, int]]:
    """Per series: the points the SVG DOM parsed, the data-points attribute, and the circles."""
    return browser.evaluate(
        """Object.fromEntries([...document.querySelectorAll('svg.chart g.series')].map(g => {
            const line = g.querySelector('polyline');
            return [g.dataset.name, {parsed: line.points.numberOfItems, attr: +line.dataset.points,
                                     circles: g.querySelectorAll('circle').length}];
        }))"""
    )


def blank_check(path: Path) -> tuple[float, float]:
    """(standard deviation of the grey levels, share of pixels that are not near-white)."""
    from PIL import Image, ImageStat

    with Image.open(path) as image:
        grey = image.convert("L")
        stddev = ImageStat.Stat(grey).stddev[0]
        histogram = grey.histogram()
    return stddev, 1 - sum(histogram[245:]) / sum(histogram)


def test_run_report_in_chromium(browser: Chromium, tmp_path: Path):
    run = replace(make_run(steps=10_000, epochs=100), name=f"dog {HOSTILE}")
    run = replace(run, samples=[s for s in run.samples if s.epoch % 20 == 0])
    write_images(tmp_path, run)
    page = tmp_path / "report.html"
    page.write_text(render_run(run), encoding="utf-8")

    browser.open(page.as_uri())

    assert browser.load_images() == [64] * len(run.samples)
    assert browser.console_problems() == []
    assert browser.evaluate("document.scripts.length") == 0
    assert browser.evaluate("document.querySelector('h1').textContent").startswith(run.name)
    series = polylines(browser)
    steps, epochs = series["loss per step"], series["epoch average"]
    assert steps["parsed"] == steps["attr"] and 1000 <= steps["attr"] <= 2 * 1120
    assert epochs == {"parsed": 100, "attr": 100, "circles": 100}
    band = browser.evaluate("document.querySelector('svg.chart g.band rect').getBBox().height")
    assert band > 5
    assert browser.evaluate("document.querySelectorAll('svg.chart g.mark circle').length") == 1
    assert browser.evaluate("document.querySelectorAll('tr.picked').length") == 1
    assert browser.evaluate("document.querySelectorAll('details').length") == len(run.checkpoint_metadata)
    assert "<svg" in browser.dom()

    shot = browser.screenshot(tmp_path / "run.png")
    from PIL import Image

    with Image.open(shot) as image:
        assert image.width == WIDTH and image.height > 900  # the whole page, beyond the window
    stddev, inked = blank_check(shot)
    assert stddev > 20 and inked > 0.03, (stddev, inked)


def test_sweep_report_in_chromium(browser: Chromium, tmp_path: Path):
    sweep = make_sweep(4)
    for run in sweep.runs:
        write_images(tmp_path, run)
    page = tmp_path / "report.html"
    page.write_text(render_sweep(sweep), encoding="utf-8")

    browser.open(page.as_uri())

    assert browser.load_images() == [64] * 8  # 4 runs x 2 prompts, last epoch
    assert browser.console_problems() == []
    series = polylines(browser)
    assert list(series) == [r.name for r in sweep.runs]
    assert all(s == {"parsed": 10, "attr": 10, "circles": 10} for s in series.values())
    assert browser.evaluate("document.querySelectorAll('svg.chart g.legend-entry').length") == 4
    assert browser.evaluate("document.querySelectorAll('table.runs tbody tr').length") == 4
    stddev, inked = blank_check(browser.screenshot(tmp_path / "sweep.png"))
    assert stddev > 20 and inked > 0.03, (stddev, inked)


def test_self_contained_report_needs_no_other_file(browser: Chromium, tmp_path: Path):
    run = make_run(epochs=4)
    write_images(tmp_path / "run", run)
    page = tmp_path / "elsewhere" / "report.html"
    page.parent.mkdir()
    page.write_text(render_run(run, self_contained=True, base_dir=tmp_path / "run"), encoding="utf-8")

    browser.open(page.as_uri())

    assert browser.load_images() == [64] * len(run.samples)
    assert browser.console_problems() == []
    assert browser.evaluate("[...document.images].every(i => i.src.startsWith('data:image/png;base64,'))")


def test_the_harness_sees_errors_and_leaves_no_process(tmp_path: Path):
    """The checks above can fail: a console error and a missing image are reported. And once the
    browser is closed, nothing of it runs on."""
    page = tmp_path / "bad.html"
    page.write_text('<img src="missing.png"><script>console.error("boom")</script>', encoding="utf-8")
    assert BROWSER is not None
    with Chromium(BROWSER) as b:
        b.open(page.as_uri())
        assert b.load_images() == [0]
        problems = b.console_problems()
        group = b.group
        assert living(group)
    assert any("boom" in p for p in problems), problems
    assert any("missing.png" in p for p in problems), problems
    assert living(group) == []


def test_a_missed_escape_would_still_not_run(browser: Chromium, tmp_path: Path):
    """Defence in depth: the page's Content-Security-Policy refuses inline script."""
    page = tmp_path / "report.html"
    text = render_run(make_run(epochs=2, samples=False))
    page.write_text(text.replace("<h1>", '<h1><script>console.error("ran")</script>', 1), encoding="utf-8")

    browser.open(page.as_uri())

    problems = browser.console_problems()
    assert not any("ran" in p for p in problems), problems
    assert any("Content Security Policy" in p for p in problems), problems
