"""Open the audit page in headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

For the viewer's browser tests and its benchmark; selenium is a dev dependency, imported here
only. The browser runs with a fresh profile and with background networking, component updates,
sync and QUIC off, so it makes no network calls of its own.

    with chromium_session(tmp_dir) as driver:
        driver.get(Path("audit.html").resolve().as_uri())
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,1800")


def find_chromium() -> tuple[str | None, str | None]:
    """(browser, chromedriver) paths; ``MEDALIGN_CHROMIUM`` / ``MEDALIGN_CHROMEDRIVER`` win."""
    browser = os.environ.get("MEDALIGN_CHROMIUM") or next(
        (p for p in map(shutil.which, BROWSERS) if p), None)
    driver = os.environ.get("MEDALIGN_CHROMEDRIVER") or shutil.which("chromedriver")
    return browser, driver


@contextlib.contextmanager
def chromium_session(profile_parent: str | None = None) -> Iterator:
    """A selenium driver on headless Chromium with browser console logging on."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver_path = find_chromium()
    if not browser or not driver_path:
        raise RuntimeError("chromium / chromedriver not found: apt-get install chromium "
                           "chromium-driver (or set MEDALIGN_CHROMIUM and MEDALIGN_CHROMEDRIVER)")
    profile = tempfile.mkdtemp(prefix="medalign-chromium-", dir=profile_parent)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
