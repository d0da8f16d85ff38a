"""The report's rendering (experiments/svg.py, experiments/html.py): pure functions, checked on their output.

The pages are parsed with the standard library's HTMLParser, so the checks look at elements and
attributes as a browser would, not at substrings. tests/test_report_browser.py opens the same pages in
a real Chromium.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_data import HOSTILE, loss_curve, make_run, make_sweep

from artlab_kohya.experiments.html import (
    RunReport,
    Sample,
    SweepReport,
    render_run,
    render_sweep,
    run_chart,
)
from artlab_kohya.experiments.svg import Band, Series, decimate, line_chart, log_ticks, nice_ticks


class Element:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Element | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Element] = []
        self.text = ""

    def iter(self, tag: str | None = None):
        for child in self.children:
            if tag is None or child.tag == tag:
                yield child
            yield from child.iter(tag)

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [e for e in self.iter(tag) if all(e.attrs.get(k) == v for k, v in attrs.items())]

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


VOID = {"meta", "img", "br", "line", "circle", "rect", "polyline", "input", "link"}


class Tree(HTMLParser):
    """A small DOM: enough to count elements, read attributes and text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self.current = Element("#root", {}, None)
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Element(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Element | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"</{tag}> closes nothing"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.text += data


def chart_of(tree: Tree) -> Element:
    (svg,) = [e for e in tree.root.iter("svg") if "chart" in e.classes()]
    return svg


def series_named(svg: Element, name: str) -> Element:
    (group,) = [g for g in svg.iter("g") if "series" in g.classes() and g.attrs.get("data-name") == name]
    return group


def coordinates(polyline: Element) -> list[tuple[float, float]]:
    return [tuple(map(float, pair.split(","))) for pair in polyline.attrs["points"].split()]  # type: ignore[misc]


# --- escaping ----------------------------------------------------------------------------------


def test_hostile_text_stays_text_everywhere():
    run = make_run()
    rows = [replace(r, checkpoint=HOSTILE) for r in run.epochs]
    run = replace(
        run,
        name=HOSTILE,
        status=HOSTILE,
        params={HOSTILE: HOSTILE},
        epochs=rows,
        checkpoint_metadata={HOSTILE: {HOSTILE: HOSTILE}},
        samples=[Sample(2, 0, HOSTILE, HOSTILE)],
    )
    page = render_run(run)
    tree = Tree(page)
    assert not list(tree.root.iter("script"))
    assert "<script" not in page.lower()
    assert not any(k.startswith("on") for e in tree.root.iter() for k in e.attrs)
    (h1,) = tree.root.find("h1")
    assert HOSTILE in h1.all_text()
    assert tree.root.find("dt")[0].text == HOSTILE
    assert tree.root.find("img")[0].attrs["title"] == HOSTILE

    sweep = render_sweep(SweepReport(HOSTILE, [replace(run, href=HOSTILE)], [HOSTILE]))
    assert "<script" not in sweep.lower()
    tree = Tree(sweep)
    assert not any(k.startswith("on") for e in tree.root.iter() for k in e.attrs)
    assert HOSTILE in [e.attrs.get("data-name") for e in tree.root.iter("g")]


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)", "data:text/html,x"]
)
def test_links_never_carry_a_script_scheme(href):
    run = replace(make_run(), href=href, samples=[Sample(1, 0, "p", href)])
    tree = Tree(render_sweep(SweepReport("s", [run])))
    hrefs = [e.attrs["href"] for e in tree.root.iter("a")] + [e.attrs["src"] for e in tree.root.iter("img")]
    assert len(hrefs) == 3 and all(h.startswith("./") for h in hrefs)


@pytest.mark.parametrize("href", ["samples/a b.png", "https://example.org/a.png", "data:image/png;base64,AAAA"])
def test_plain_links_are_kept(href):
    tree = Tree(render_run(replace(make_run(), samples=[Sample(1, 0, "p", href)])))
    assert tree.root.find("img")[0].attrs["src"] == href


def test_the_page_forbids_scripts_and_loads_nothing_from_a_network():
    page = render_run(make_run())
    tree = Tree(page)
    (csp,) = [m for m in tree.root.iter("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp.attrs["content"]
    assert not tree.root.find("link") and not tree.root.find("script")
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "") and "https://" not in page


# --- the run's chart and tables ----------------------------------------------------------------


def test_every_step_and_epoch_is_drawn_when_the_run_is_short():
    run = make_run(steps=300, epochs=10)
    svg = chart_of(Tree(render_run(run)))
    steps = series_named(svg, "loss per step").find("polyline")[0]
    assert steps.attrs["data-points"] == steps.attrs["data-source-points"] == "300"
    assert len(coordinates(steps)) == 300
    epochs = series_named(svg, "epoch average")
    assert epochs.find("polyline")[0].attrs["data-points"] == "10"
    assert len(epochs.find("circle")) == 10


def test_the_window_is_shaded_where_the_ticks_say():
    svg = chart_of(Tree(line_chart([Series("a", [(0, 0.0), (10, 0.3)])], band=Band(0.1, 0.2, "window"))))
    ticks = {float(t.text): t for t in svg.iter("text") if "tick" in t.classes() and t.attrs["text-anchor"] == "end"}
    (rect,) = next(g for g in svg.iter("g") if "band" in g.classes()).find("rect")
    top, height = float(rect.attrs["y"]), float(rect.attrs["height"])
    assert top == pytest.approx(float(ticks[0.2].attrs["y"]) - 4, abs=0.11)
    assert top + height == pytest.approx(float(ticks[0.1].attrs["y"]) - 4, abs=0.11)


def test_the_window_is_in_view_even_when_the_loss_never_reaches_it():
    svg = chart_of(Tree(line_chart([Series("a", [(0, 0.3), (10, 0.2)])], band=Band(0.08, 0.1))))
    ticks = [float(t.text) for t in svg.iter("text") if "tick" in t.classes() and t.attrs["text-anchor"] == "end"]
    assert min(ticks) <= 0.08 and max(ticks) >= 0.3


def test_the_picked_epoch_is_ringed_on_its_dot_and_marked_in_the_tables():
    run = make_run()
    chosen = next(r for r in run.epochs if r.picked)
    tree = Tree(render_run(run))
    svg = chart_of(tree)
    dots = series_named(svg, "epoch average").find("circle")
    (ring,) = next(g for g in svg.iter("g") if "mark" in g.classes()).find("circle")
    dot = dots[chosen.epoch - 1]
    assert (ring.attrs["cx"], ring.attrs["cy"]) == (dot.attrs["cx"], dot.attrs["cy"])
    assert f"epoch {chosen.epoch}" in svg.all_text()

    rows = {int(r.attrs["data-epoch"]): r for r in tree.root.iter("tr") if "data-epoch" in r.attrs}
    assert [e for e, r in rows.items() if "picked" in r.classes()] == [chosen.epoch]
    assert [e for e, r in rows.items() if "in-window" in r.classes()] == [r.epoch for r in run.epochs if r.in_window]


def test_no_pick_no_ring_and_the_caption_says_so():
    run = make_run(window=(0.001, 0.002))
    assert not any(r.picked for r in run.epochs)
    tree = Tree(render_run(run))
    assert not [g for g in chart_of(tree).iter("g") if "mark" in g.classes()]
    assert "no epoch in the window" in tree.root.all_text()


def test_checkpoint_metadata_is_collapsible_one_block_per_checkpoint():
    run = make_run()
    details = Tree(render_run(run)).root.find("details")
    assert len(details) == len(run.checkpoint_metadata)
    assert all("open" not in d.attrs for d in details)
    assert "ss_network_dim" in details[0].all_text()


def test_samples_grid_is_epochs_by_prompts_with_relative_hrefs():
    run = make_run()
    (table,) = [t for t in Tree(render_run(run)).root.iter("table") if "samples" in t.classes()]
    body_rows = table.find("tbody")[0].find("tr")
    assert len(body_rows) == 5  # epochs 2, 4, ..., 10
    assert all(len(r.find("img")) == 2 for r in body_rows)
    assert [i.attrs["src"] for i in body_rows[0].find("img")] == [s.image_href for s in run.samples[:2]]


def test_self_contained_inlines_images_and_keeps_a_missing_one_as_a_link(tmp_path: Path):
    from PIL import Image

    (tmp_path / "samples").mkdir()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(tmp_path / "samples" / "a.png")
    run = replace(make_run(), samples=[Sample(1, 0, "p", "samples/a.png"), Sample(1, 1, "q", "samples/gone.png")])
    tree = Tree(render_run(run, self_contained=True, base_dir=tmp_path))
    sources = [i.attrs["src"] for i in tree.root.iter("img")]
    assert sources[0].startswith("data:image/png;base64,")
    assert sources[1] == "samples/gone.png"


def test_an_empty_running_run_renders():
    tree = Tree(render_run(RunReport("new", "running")))
    assert "no data" in chart_of(tree).all_text()
    assert "No epoch finished yet." in tree.root.all_text()


def test_a_run_that_failed_in_its_first_epoch_shows_its_steps_alone():
    run = replace(make_run(steps=450), status="failed", epochs=[], checkpoint_metadata={}, samples=[])
    svg = chart_of(Tree(render_run(run)))
    assert [g.attrs["data-name"] for g in svg.iter("g") if "series" in g.classes()] == ["loss per step"]
    assert not [g for g in svg.iter("g") if "legend" in g.classes()]


def test_epochs_without_steps_are_drawn_on_an_epoch_axis():
    run = replace(make_run(), steps=[], epochs=[replace(r, end_step=None) for r in make_run().epochs])
    svg = chart_of(Tree(render_run(run)))
    assert "epoch" in [t.text for t in svg.iter("text") if "axis-label" in t.classes()]
    assert series_named(svg, "epoch average").find("polyline")[0].attrs["data-points"] == "10"


def test_log_axis_drops_what_it_cannot_draw_and_ticks_in_1_2_5():
    svg = chart_of(Tree(line_chart([Series("a", [(0, 0.5), (1, 0.0), (2, 0.05), (3, -1.0), (4, 0.2)])], log_y=True)))
    assert svg.find("polyline")[0].attrs["data-points"] == "3"
    assert log_ticks(0.04, 0.6) == [0.05, 0.1, 0.2, 0.5]
    assert log_ticks(1e-4, 10) == [1e-4, 1e-3, 1e-2, 0.1, 1, 10]
    assert log_ticks(0.0216, 0.19) == [0.03, 0.05, 0.07, 0.1, 0.15]  # a loss curve: less than a decade
    assert len(log_ticks(0.101, 0.109)) >= 2


def test_nan_and_inf_are_left_out():
    svg = chart_of(Tree(line_chart([Series("a", [(0, 1.0), (1, math.nan), (2, math.inf), (3, 2.0)])])))
    assert svg.find("polyline")[0].attrs["data-points"] == "2"


def test_rendering_is_deterministic():
    assert render_run(make_run()) == render_run(make_run())


# --- ticks and decimation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (0.063, 0.31, [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]),
        (1, 10000, [0, 2000, 4000, 6000, 8000, 10000]),
    ],
)
def test_nice_ticks(lo, hi, expected):
    assert nice_ticks(lo, hi, 6) == expected


def test_nice_ticks_survive_a_flat_range():
    ticks = nice_ticks(3, 3)
    assert ticks[0] < 3 < ticks[-1]


def test_decimation_is_bounded_and_keeps_ends_extremes_and_order():
    points = [(float(s), v) for s, v in loss_curve(10_000, seed=3)]
    points[5000] = (5000.0, 9.0)  # a spike must survive
    points[7000] = (7000.0, -9.0)
    kept = decimate(points, 100)
    assert len(kept) <= 400
    assert kept[0] == points[0] and kept[-1] == points[-1]
    assert (5000.0, 9.0) in kept and (7000.0, -9.0) in kept
    assert [x for x, _ in kept] == sorted(x for x, _ in kept)
    assert set(kept) <= set(points)


def test_short_series_are_not_decimated():
    points = [(float(i), float(i % 7)) for i in range(400)]
    assert decimate(points, 100) == points


def test_a_long_series_is_drawn_with_a_bounded_number_of_points():
    svg = chart_of(Tree(line_chart([Series("steps", [(float(s), v) for s, v in loss_curve(10_000)])], width=760)))
    polyline = svg.find("polyline")[0]
    drawn = int(polyline.attrs["data-points"])
    assert polyline.attrs["data-source-points"] == "10000"
    assert drawn == len(coordinates(polyline)) <= 2 * 760
    capped = chart_of(Tree(line_chart([Series("s", loss_curve(10_000))], max_points=200))).find("polyline")[0]
    assert int(capped.attrs["data-points"]) <= 200


def test_many_epochs_get_boundaries_a_few_dozen_pixels_apart():
    svg = chart_of(Tree(run_chart(make_run(steps=10_000, epochs=100))))
    guides = [g for g in svg.iter("line") if "guide" in g.classes()]
    assert 10 <= len(guides) <= 30
    xs = [float(g.attrs["x1"]) for g in guides]
    assert min(b - a for a, b in zip(xs[:-1], xs[1:], strict=True)) >= 30


# --- a sweep --------------------------------------------------------------------------------------


def test_sweep_overlays_one_curve_per_run_with_a_legend():
    sweep = make_sweep()
    svg = chart_of(Tree(render_sweep(sweep)))
    for run in sweep.runs:
        group = series_named(svg, run.name)
        assert len(group.find("circle")) == len(run.epochs)
    legend = [g for g in svg.iter("g") if "legend-entry" in g.classes()]
    assert [g.attrs["data-name"] for g in legend] == [r.name for r in sweep.runs]
    assert [g for g in svg.iter("g") if "band" in g.classes()]  # all runs share the window
    with_a_new_run = replace(sweep, runs=[*sweep.runs, RunReport("just started", "running")])
    svg = chart_of(Tree(render_sweep(with_a_new_run)))
    assert [g for g in svg.iter("g") if "band" in g.classes()]  # a run without a window yet changes nothing


def test_sweep_runs_beyond_the_palette_are_dashed():
    svg = chart_of(Tree(render_sweep(make_sweep(12))))
    lines = [g.find("polyline")[0].attrs for g in svg.iter("g") if "series" in g.classes()]
    assert lines[0]["stroke"] == lines[10]["stroke"] and lines[1]["stroke"] == lines[11]["stroke"]
    assert "stroke-dasharray" not in lines[0] and lines[10]["stroke-dasharray"]
    looks = {(line["stroke"], line.get("stroke-dasharray")) for line in lines}
    assert len(looks) == 12


def test_sweep_band_only_when_the_runs_share_a_window():
    sweep = make_sweep(2)
    sweep = replace(sweep, runs=[sweep.runs[0], replace(sweep.runs[1], window=(0.2, 0.3))])
    svg = chart_of(Tree(render_sweep(sweep)))
    assert not [g for g in svg.iter("g") if "band" in g.classes()]


def test_sweep_table_has_the_varied_params_and_each_pick():
    sweep = make_sweep()
    (table,) = [t for t in Tree(render_sweep(sweep)).root.iter("table") if "runs" in t.classes()]
    header = [th.all_text() for th in table.find("thead")[0].iter("th")]
    assert header == ["run", "status", "learning_rate", "picked epoch", "its loss"]
    rows = table.find("tbody")[0].find("tr")
    for run, row in zip(sweep.runs, rows, strict=True):
        cells = [td.all_text() for td in row.find("td")]
        chosen = next(r for r in run.epochs if r.picked)
        assert cells[0] == run.name and cells[2] == run.params["learning_rate"]
        assert cells[3] == str(chosen.epoch) and cells[4] == f"{chosen.avg_loss:.4f}"
        assert row.find("a")[0].attrs["href"] == run.href


def test_sweep_samples_are_runs_by_prompts_at_each_runs_last_epoch():
    sweep = make_sweep(3)
    (table,) = [t for t in Tree(render_sweep(sweep)).root.iter("table") if "samples" in t.classes()]
    rows = table.find("tbody")[0].find("tr")
    assert len(rows) == 3
    for run, row in zip(sweep.runs, rows, strict=True):
        assert [i.attrs["src"] for i in row.find("img")] == [s.image_href for s in run.samples if s.epoch == 10]


# --- size and time ------------------------------------------------------------------------------


def test_a_ten_epoch_report_is_small():
    assert len(render_run(make_run(steps=2000, epochs=10)).encode()) < 100_000


def test_a_ten_thousand_step_run_is_small_and_fast():
    run = make_run(steps=10_000, epochs=100)
    render_run(run)  # warm
    start = time.perf_counter()
    page = render_run(run)
    elapsed = time.perf_counter() - start
    assert len(page.encode()) < 200_000
    assert elapsed < 1.0, f"{elapsed:.3f} s"


def test_a_sweep_of_ten_long_runs_is_small():
    runs = [make_run(f"r{i}", steps=10_000, epochs=100, seed=i) for i in range(10)]
    page = render_sweep(SweepReport("big", runs, ["seed"]))
    assert len(page.encode()) < 300_000
    assert re.search(r"<svg[^>]*class=\"chart\"", page)
