"""End to end: `streamlit run` on a free localhost port, driven by headless Chromium.

Skips when Chromium, chromedriver or selenium is missing, unless
REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

import os

import pytest

from scripts import app_screenshots
from tests import app_support
from tests.conftest import shared_dataset


@pytest.fixture(scope="module")
def browser_ready():
    missing = app_screenshots.missing_browser_parts()
    if missing:
        message = "cannot drive Chromium, missing: " + "; ".join(missing)
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (REQUIRE_BROWSER=1 requires it)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory):
    models_root = app_support.tiny_models_root(tmp_path_factory)
    log_path = tmp_path_factory.mktemp("streamlit") / "streamlit.log"
    with app_screenshots.app_server(models_root, log_path) as url:
        yield url


@pytest.fixture(scope="module")
def driver(server, tmp_path_factory):
    with app_screenshots.chromium_driver(tmp_path_factory.mktemp("chromium-profile")) as browser:
        yield browser


@pytest.mark.parametrize("page", list(app_screenshots.PAGES))
def test_page_shows_its_result_for_a_real_image(page, server, driver, tmp_path):
    upload, result_text = app_screenshots.PAGES[page]
    path = None
    if upload:
        dataset, _, rest = upload.partition("/")
        path = shared_dataset(dataset) / rest
    text = app_screenshots.show_page(driver, server, page, path, timeout=90)
    assert result_text in text
    if page == "Classify":
        assert "not a diagnosis" in text
    screenshot = app_screenshots.save_screenshot(driver, tmp_path / f"{page.lower()}.png")
    assert screenshot.stat().st_size > 5000
