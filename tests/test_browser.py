"""The HTML report in a real browser: headless Chromium (Debian's `chromium` + `chromium-driver`).

Asserts what a reader depends on: every image decodes, the comparison table
has one row per trained model, nothing is fetched from the network, and the
page fits a phone's width (only the table scrolls sideways). Skipped with a
reason when Chromium is absent, except in CI (env CI set), where that fails.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from test_report import run_stage_main, write_synthetic_study

pytestmark = pytest.mark.browser

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
PHONE = (390, 844)
LAPTOP = (1366, 900)


def _chromium() -> str | None:
    return next((path for path in CHROMIUM_CANDIDATES if Path(path).is_file()), None)


@pytest.fixture(scope="module")
def browser():
    binary = _chromium()
    if binary is None or not CHROMEDRIVER.is_file():
        reason = "headless Chromium not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="aebench-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", f"--window-size={LAPTOP[0]},{LAPTOP[1]}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # CDP network events
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, int]:
    root = tmp_path_factory.mktemp("browser-study")
    cwd = os.getcwd()
    os.chdir(root)  # MLflow's artifact store lands under the working directory
    try:
        raw = write_synthetic_study(root)
        run_stage_main(root)
    finally:
        os.chdir(cwd)
    models = len(raw["datasets"]) * len(raw["models"]) * len(raw["latent_dims"])
    return root / "reports" / "report.html", models


def _requested_urls(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _open(driver, path: Path, size: tuple[int, int]) -> None:
    driver.set_window_size(*size)
    driver.get_log("performance")  # drop events from earlier pages
    driver.get(path.as_uri())


def test_every_image_decodes_and_the_table_lists_every_model(browser, report):
    path, models = report
    _open(browser, path, LAPTOP)
    images = browser.execute_script(
        "return Array.from(document.images, img => [img.alt, img.complete, img.naturalWidth, img.naturalHeight]);"
    )
    assert len(images) > models
    undecoded = [alt for alt, complete, width, height in images if not (complete and width > 0 and height > 0)]
    assert undecoded == []
    rows = browser.execute_script("return document.querySelectorAll('table.comparison tbody tr').length;")
    assert rows == models


def test_nothing_is_requested_from_the_network(browser, report):
    path, _ = report
    _open(browser, path, LAPTOP)
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name);"
    )
    assert [name for name in resources if not name.startswith("data:")] == []
    # The only request the browser made is the file itself (data: images issue none over the network).
    outside = [url for url in _requested_urls(browser) if not url.startswith(("data:", path.as_uri()))]
    assert outside == []


def test_page_fits_a_phone_and_only_the_table_scrolls_sideways(browser, report):
    path, _ = report
    _open(browser, path, PHONE)
    widths = browser.execute_script(
        "const doc = document.documentElement;"
        "const widest = Math.max(...Array.from(document.images, img => img.getBoundingClientRect().width));"
        "const wrap = document.querySelector('.table-wrap');"
        "return [doc.scrollWidth, doc.clientWidth, widest, wrap.scrollWidth > wrap.clientWidth];"
    )
    page, viewport, widest_image, table_scrolls = widths
    assert page <= viewport, "the page itself must not scroll sideways on a phone"
    assert widest_image <= viewport
    assert table_scrolls, "the wide comparison table scrolls inside its own box"
