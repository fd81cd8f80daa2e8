"""Debian's headless Chromium for the page tests, driven by Selenium through Debian's
``chromium-driver``: neither Selenium nor anything else downloads a browser or a driver.
Without them the browser tests skip and say why, except under CI (``CI=true``), where a
missing browser is a failure (``.ci/run`` installs it)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# what works in a container as root, with no network beyond the test server
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the dev extra: pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not path.exists():
            return f"{path} missing: apt-get install -y chromium chromium-driver (Debian's {package})"
    return None


def require_browser() -> None:
    """Skip (or, under CI, fail) when Chromium, its driver or selenium is missing."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the browser tests: {reason}")
    pytest.skip(reason)


class Browser:
    """One Chromium with a fresh profile, removed on ``quit``."""

    def __init__(self) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.profile_dir = tempfile.mkdtemp(prefix="chromium-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile_dir}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # an explicit driver path: Selenium Manager never runs (it would try to download one)
        self.driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        self.driver.set_script_timeout(30)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """Make the page's viewport exactly ``width`` x ``height`` CSS pixels (screenshots too)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def console_errors(self) -> list[str]:
        """Console messages at error level since the last call (CSP violations included)."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def quit(self) -> None:
        """Close the browser and remove its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile_dir, ignore_errors=True)
