"""What an analyst must be able to trust, in a real browser: nothing leaves the machine, every
interval shown contains its estimate, no two series of a chart share a colour, a link to one
utterance opens it, stale parameters leave the URL, training logs no noise."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser.conftest import SERVER_LOG
from tests.browser.test_dashboard_browser import PLOT, _no_errors, _open, _settle, _shot

pytestmark = pytest.mark.browser

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
INTERVAL = re.compile(r"(-?\d+\.\d+)\s*\[(-?\d+\.\d+),\s*(-?\d+\.\d+)\]")
MEDIA = "dataset=Media+demo"
REAL = "dataset=Real+corpora+demo"


def _needs_demo(data_dir: Path) -> None:
    if not (data_dir / "media").is_dir() or not (data_dir / "real").is_dir():
        pytest.skip("the shipped demo datasets are not in demo_data/")


def _outside(urls: list[str]) -> list[str]:
    return [
        u
        for u in urls
        if urlsplit(u).scheme not in ("data", "blob") and urlsplit(u).hostname not in LOCAL_HOSTS
    ]


def test_no_request_leaves_the_machine(server: str, page, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    views = [
        f"?{MEDIA}",
        f"weights?{MEDIA}&loss=R2",
        f"calibration?{REAL}&loss=R2&cal_calibrators=temperature&cal_layout=side+by+side",
        f"utterances?{MEDIA}&loss=R2&utt_misranked=true",
        f"probe?{MEDIA}",
        f"devices?{REAL}&loss=R3",
        "?dataset=Sample",
    ]
    for view in views:
        _open(page, f"{server}/{view}")
        _no_errors(page)
    assert len(requests) > 50  # the recorder saw the page loads
    assert _outside(requests) == []


def _interval_cells(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [t for t in page.locator('[data-testid="stTable"] td').all_inner_texts() if "[" in t]


@pytest.mark.parametrize(
    "view",
    [
        # R2 smooth ECE was 0.0115 [0.0122, 0.0162], with temperature 0.0066 [0.0073, 0.0091]
        f"{REAL}&loss=R2&cal_calibrators=temperature&cal_calibrators=isotonic",
        f"{REAL}&loss=R2&cal_bins=50",  # MCE at 50 bins
        f"{MEDIA}&loss=R2&cal_domain=Music&cal_device=fire_tv",  # a small slice
    ],
)
def test_every_interval_shown_contains_its_estimate(
    server: str, page, data_dir: Path, view: str
) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    _open(page, f"{server}/calibration?{view}")
    page.wait_for_selector('[data-testid="stTable"]')
    _no_errors(page)
    cells = _interval_cells(page)
    assert len(cells) >= 7  # every metric of every curve carries an interval
    for cell in cells:
        value, low, high = (float(x) for x in INTERVAL.fullmatch(cell.strip()).groups())  # type: ignore[union-attr]
        assert low <= value <= high, cell


_TRACE_COLOURS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => gd.data.map(t => ({
    series: t.legendgroup || t.name || '',
    colors: [t.line && t.line.color, t.marker && t.marker.color, t.fillcolor]
        .filter(c => typeof c === 'string').map(c => c.toUpperCase()),
})))
"""


@pytest.mark.parametrize(
    "view",
    [
        f"calibration?{REAL}&loss=R2&cal_calibrators=temperature&cal_calibrators=isotonic"
        "&cal_layout=side+by+side&cal_strategy=equal+mass",
        f"devices?{REAL}&loss=R2",  # 21 domains
        f"utterances?{MEDIA}&loss=R2&utt_misranked=true",  # feature contributions
    ],
)
def test_no_two_series_of_a_chart_share_a_colour(
    server: str, page, data_dir: Path, view: str
) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    _open(page, f"{server}/{view}")
    page.wait_for_selector(PLOT)
    _settle(page)
    charts = page.evaluate(_TRACE_COLOURS)
    assert charts
    for traces in charts:
        by_series: dict[str, set[str]] = {}
        for t in traces:
            if t["colors"]:
                by_series.setdefault(t["series"], set()).update(t["colors"])
        assert all(len(c) == 1 for c in by_series.values()), by_series
        colours = [next(iter(c)) for c in by_series.values()]
        assert len(colours) == len(set(colours)), by_series
    _shot(page, "colours_" + view.split("?")[0])


def _shows_picked(page, uid: str) -> bool:  # type: ignore[no-untyped-def]
    """Whether the utterance picker shows ``uid`` (its options read ``<id> · <text>``)."""
    shown = page.get_by_role("combobox", name="Utterance").input_value()
    return bool(shown.startswith(f"{uid} · "))


def test_a_shared_link_opens_one_utterance(server: str, page, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    _open(page, f"{server}/utterances?{MEDIA}&loss=R2&utt_misranked=true")
    first = parse_qs(urlsplit(page.url).query)["utt"][0]  # the selection is in the URL
    # Pick another utterance through the search, and share the resulting link.
    box = page.get_by_label("Search text or id")
    box.fill("mary poppins")
    box.press("Enter")
    page.wait_for_url(re.compile(r".*utt_search=mary.*"))
    # The picker must follow the search instead of keeping a stale id (the search lands in the
    # URL before the rerun that picks from it ends, so wait for the id to move).
    page.wait_for_url(lambda url: parse_qs(urlsplit(url).query).get("utt", [first])[0] != first)
    _settle(page)
    chosen = parse_qs(urlsplit(page.url).query)["utt"][0]
    assert _shows_picked(page, chosen)
    # A fresh browser page on a link carrying only the dataset and the id opens that utterance,
    # although the default filters would not list it first.
    fresh = page.context.new_page()
    _open(fresh, f"{server}/utterances?{MEDIA}&loss=R2&utt={chosen}")
    assert _shows_picked(fresh, chosen)
    assert "mary poppins" in fresh.get_by_text("Text:").first.inner_text()
    _no_errors(fresh)
    _shot(fresh, "utterance_shared_link")


def test_parameters_of_a_slice_the_dataset_lacks_leave_the_url(
    server: str, page, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    _open(page, f"{server}/calibration?{MEDIA}&loss=R2&cal_domain=Games&cal_device=echo_dot")
    _no_errors(page)
    query = parse_qs(urlsplit(page.url).query)
    assert "cal_domain" not in query  # the media demo has no Games domain
    assert query.get("cal_device") == ["echo_dot"]


def test_training_in_the_dashboard_logs_no_streamlit_noise(
    server: str, page, data_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    _needs_demo(data_dir)
    _open(page, f"{server}/weights?{MEDIA}&loss=R2")
    page.get_by_role("tab", name="Train").click()
    domains = page.get_by_label("Domains (empty: all)")
    for name in ("Books", "Weather"):  # two domains: two worker processes
        domains.click()
        page.get_by_role("option", name=name, exact=True).click()
    page.get_by_test_id("stBaseButton-primaryFormSubmit").click()
    page.get_by_text("Published R2 weights").wait_for(timeout=300_000)
    _settle(page)
    _no_errors(page)
    assert not [line for line in SERVER_LOG if "ScriptRunContext" in line]
    _shot(page, "weights_trained")
