"""A real headless Chromium (the Debian packages chromium and chromium-driver, installed
by ``make test``) driven by selenium, offline: every host name but 127.0.0.1 fails to
resolve, so a page that needs a CDN shows it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    exe, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert exe and driver, "chromium missing: `make test` installs chromium, chromium-driver"
    opts = Options()
    opts.binary_location = exe
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    try:
        yield browser
    finally:
        browser.quit()


def errors(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    """Console errors (failed loads included) since the last call."""
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def wait_for(browser: webdriver.Chrome, css: str, timeout: float = 20) -> Any:
    """The elements matching ``css`` once there is at least one."""
    WebDriverWait(browser, timeout).until(lambda b: b.find_elements(By.CSS_SELECTOR, css))
    return browser.find_elements(By.CSS_SELECTOR, css)


def shot(browser: webdriver.Chrome, name: str, full: bool = False) -> Path:
    """A screenshot for the README (docs/console/<name>.png), made by the tests; ``full``:
    the whole page, not only the window."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    size = browser.get_window_size()
    if full:
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(size["width"], min(int(height) + 140, 4000))
    browser.save_screenshot(str(path))
    if full:
        browser.set_window_size(size["width"], size["height"])
    assert path.stat().st_size > 1000
    return path
