"""Screenshots of every app page from trained runs, driven in headless Chromium (for docs/app/).

Examples:
  python scripts/app_screenshots.py --output docs/app/                       # runs in saved_models/
  python scripts/app_screenshots.py --train-tiny /tmp/app-runs --output /tmp/shots/    # pages only, untrained

Starts `streamlit run scripts/app.py` on a free localhost port, opens each
page, uploads a real image from ../shared/datasets (mammogram, car, chest
X-ray), waits for the result and saves `<page>.png`. Needs the Debian
packages chromium and chromium-driver and the Python package selenium.
"""

import argparse
import contextlib
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from tf_models.core import cli

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
APP = REPO_ROOT / "scripts" / "app.py"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
# Each page: the shared-datasets image it uploads (None: no upload) and the text that shows its result.
PAGES = {
    "Generate": (None, "Download the grid"),
    "Enhance": ("mammography/mdb003.png", "Download the enhanced image"),
    "Segment": ("carvana_hr/train/0789bed99cb8_01.jpg", "Download the mask"),
    "Classify": ("chest_xray/test/PNEUMONIA/person100_bacteria_475.jpeg", "Download the Grad-CAM overlay"),
}


def missing_browser_parts():
    """What is missing to drive Chromium ([] when all is there)."""
    missing = [f"{path} (apt-get install chromium chromium-driver)" for path in (CHROMIUM, CHROMEDRIVER)
               if not path.is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package (pip install -r requirements-dev.txt)")
    return missing


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_healthy(url, process, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before serving {url}.")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not answer at {url} within {timeout} s.")


@contextlib.contextmanager
def app_server(models_root, log_path, timeout=90):
    """Runs the app on a free localhost port; yields its URL; always stops the server."""
    port = free_port()
    environment = dict(os.environ, TF_MODELS_ROOT=str(models_root), TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true", "--server.fileWatcherType", "none",
               "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process, timeout)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


@contextlib.contextmanager
def chromium_driver(user_data_dir, width=1280, height=900):
    """A headless Chromium WebDriver with a fresh profile; always quit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()


def show_page(driver, url, page, upload=None, timeout=90):
    """Opens `page`, uploads `upload` (a path) when given, waits for the result; returns the page text.

    Raises TimeoutError when the result does not show, RuntimeError when the
    app shows an error or exception instead.
    """
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    _, result_text = PAGES[page]
    driver.get(f"{url}/?page={page}")
    wait = WebDriverWait(driver, timeout)
    try:
        if upload is not None:
            wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "input[type=file]")))
            driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(upload))
        wait.until(lambda browser: result_text in browser.find_element(By.TAG_NAME, "body").text
                   or browser.find_elements(By.CSS_SELECTOR, "[data-testid=stException], [data-testid=stAlertContentError]"))
    except TimeoutException:
        raise TimeoutError(f"{page}: no result ({result_text!r}) within {timeout} s.") from None
    problems = driver.find_elements(By.CSS_SELECTOR, "[data-testid=stException], [data-testid=stAlertContentError]")
    if problems:
        raise RuntimeError(f"{page}: the app shows an error: {problems[0].text[:500]}")
    time.sleep(1.0)
    return driver.find_element(By.TAG_NAME, "body").text


def save_screenshot(driver, path, max_width=1100, colours=128):
    """The visible page as a small palette PNG."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.quantize(colours).save(path, optimize=True)
    return path


def capture_all(models_root, datasets_root, output_dir, pages=tuple(PAGES), timeout=90):
    """Screenshots of `pages` into `output_dir` (lower-case `<page>.png`); returns their paths."""
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        with app_server(models_root, pathlib.Path(scratch) / "streamlit.log") as url:
            with chromium_driver(pathlib.Path(scratch) / "profile", height=1500) as driver:
                for page in pages:
                    upload, _ = PAGES[page]
                    show_page(driver, url, page, upload and pathlib.Path(datasets_root) / upload, timeout)
                    written.append(save_screenshot(driver, output_dir / f"{page.lower()}.png"))
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="docs/app", help="folder for the PNG screenshots")
    parser.add_argument("--models-root", default="saved_models", help="the saved_models folder the app reads")
    parser.add_argument("--train-tiny", metavar="DIR",
                        help="first train tiny runs of every task into DIR (about a minute) and show those")
    parser.add_argument("--datasets", default=str(REPO_ROOT.parent / "shared" / "datasets"),
                        help="the shared datasets folder the uploads come from")
    args = parser.parse_args(argv)
    missing = missing_browser_parts()
    if missing:
        parser.error("cannot drive Chromium, missing: " + "; ".join(missing))
    models_root = args.models_root
    if args.train_tiny:
        from tf_models.app import demo as app_demo

        models_root = app_demo.train_tiny_runs(args.train_tiny, args.datasets)
    for path in capture_all(models_root, args.datasets, args.output):
        print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main))
