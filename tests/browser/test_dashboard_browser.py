"""The dashboard in a real headless Chromium: pages load, charts draw, uploads, loss switch, probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.conftest import CONFORMANCE

pytestmark = pytest.mark.browser

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
ERRORS = '[data-testid="stException"], [data-testid="stAlertContentError"]'
PLOT = '[data-testid="stPlotlyChart"] .main-svg'


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until the script run finished and every element is drawn (no loading skeleton)."""
    page.wait_for_selector(IDLE, state="attached")
    page.wait_for_load_state("networkidle")
    page.wait_for_selector(IDLE, state="attached")
    page.wait_for_function(
        "() => !document.querySelector("
        "'[data-testid=stSkeleton], [data-testid=stSkeletonElement], [data-testid=stAppSkeleton]')"
    )


def _open(page, url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.wait_for_selector('[data-testid="stSidebar"]')
    _settle(page)


def _no_errors(page) -> None:  # type: ignore[no-untyped-def]
    found = page.locator(ERRORS)
    assert found.count() == 0, found.all_inner_texts()


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


PAGES = {
    "data": "Data",
    "weights": "Weights",
    "calibration": "Calibration",
    "utterances": "Utterances",
    "probe": "Probe",
    "devices": "Devices",
}


def test_every_page_loads_with_charts_and_no_errors(server: str, page) -> None:  # type: ignore[no-untyped-def]
    for url_path, title in PAGES.items():
        # The default page (Data) lives at the root URL.
        path = "" if url_path == "data" else url_path
        _open(page, f"{server}/{path}?loss=R2")
        page.get_by_role("heading", name=title).first.wait_for()
        if url_path in ("data", "calibration", "devices", "utterances", "weights", "probe"):
            page.wait_for_selector(PLOT)
        _settle(page)
        _no_errors(page)
        _shot(page, url_path)


def test_switching_the_loss_redraws_and_goes_into_the_url(server: str, page) -> None:  # type: ignore[no-untyped-def]
    _open(page, f"{server}/calibration")
    page.wait_for_selector(PLOT)
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("R3", exact=True).click()
    page.wait_for_url("**loss=R3**")
    _settle(page)
    page.wait_for_selector(PLOT)
    _no_errors(page)
    # The loss survives a page switch through the navigation.
    sidebar.get_by_role("link", name="Utterances").click()
    page.wait_for_url("**/utterances**")
    _settle(page)
    page.get_by_text("Ranked with R3").wait_for()
    assert "loss=R3" in page.url
    _no_errors(page)


def test_upload_a_good_then_a_bad_file(server: str, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _open(page, f"{server}/")
    page.get_by_text("Upload a hypothesis table").click()
    upload = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    upload.set_input_files(str(CONFORMANCE / "hypotheses.csv"))
    page.wait_for_url("**dataset=Uploaded*hypotheses.csv**")
    page.get_by_role("heading", name="Uploaded: hypotheses.csv").wait_for()
    _settle(page)
    page.wait_for_selector(PLOT)
    _no_errors(page)
    _shot(page, "data_uploaded")
    bad = tmp_path / "broken.csv"
    bad.write_text(
        "utterance_id,domain,intent,slots,domain_score,intent_score,slot_score\n"
        "u1,A,A.x,,0.5,0.5,0.5\nu1,B,B.x,,0.5,7,0.5\n"
    )
    upload.set_input_files(str(bad))
    error = page.locator('[data-testid="stAlertContentError"]')
    error.wait_for()
    text = error.inner_text()
    assert "broken.csv: row 2 (line 3), column 'intent_score'" in text
    assert page.locator('[data-testid="stException"]').count() == 0
    _shot(page, "data_upload_error")


def test_probe_two_devices(server: str, page, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    if not (data_dir / "media" / "models").is_dir():
        pytest.skip("the media demo with NLU models is not in demo_data/ yet")
    _open(page, f"{server}/probe?dataset=Media+demo&loss=R3")
    page.locator('[data-testid="stPlotlyChart"]', has_text="play mary poppins").wait_for()
    box = page.get_by_label("Utterance")
    assert box.input_value() == "play mary poppins"
    box.fill("play moana")
    page.get_by_role("button", name="Probe").click()
    chart = page.locator('[data-testid="stPlotlyChart"]', has_text="play moana")
    chart.wait_for()
    _settle(page)
    assert "fire_tv" in chart.inner_text() and "echo_dot" in chart.inner_text()
    _no_errors(page)
    _shot(page, "probe_moana")


def test_chart_data_downloads_as_csv(server: str, page) -> None:  # type: ignore[no-untyped-def]
    _open(page, f"{server}/calibration")
    page.wait_for_selector(PLOT)
    with page.expect_download() as info:
        page.get_by_role("button", name="Download data (CSV)").first.click()
    path = info.value.path()
    header = Path(path).read_text().splitlines()[0]
    assert header.startswith("bin_low,bin_high,count,mean_score,frac_correct")


def test_filters_survive_page_switches(server: str, page) -> None:  # type: ignore[no-untyped-def]
    _open(page, f"{server}/utterances")
    caption = page.get_by_text("utterances match")
    before = caption.inner_text()
    page.get_by_text("Misranked only").click()
    page.wait_for_url("**utt_misranked=true**")
    # The URL changes before the rerun ends: wait for the caption itself (it must change).
    from playwright.sync_api import expect

    expect(page.get_by_text("utterances match")).not_to_have_text(before)
    _settle(page)
    filtered = page.get_by_text("utterances match").inner_text()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("link", name="Calibration").click()
    page.wait_for_url("**/calibration**")
    _settle(page)
    sidebar.get_by_role("link", name="Utterances").click()
    page.wait_for_url("**/utterances**")
    _settle(page)
    assert page.get_by_text("utterances match").inner_text() == filtered
    assert "utt_misranked=true" in page.url
    _no_errors(page)
