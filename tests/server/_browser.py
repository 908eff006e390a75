"""Headless Chromium for the UI tests: Debian's /usr/bin/chromium driven by Playwright.

Playwright never downloads a browser here; a missing part skips with the reason (strict CI turns
that skip into a failure).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def require_browser() -> Any:
    """Return ``sync_playwright`` or skip naming what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install 'mlflowlet[test]'")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: run scripts/test-deps.sh (apt-get install chromium)")
    return sync_playwright


@contextmanager
def chromium():
    """Yield a launched headless Chromium browser."""
    sync_playwright = require_browser()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def login(page: Any, url: str, token: str) -> None:
    """Log in through the UI's form (sets the HttpOnly session cookie)."""
    page.goto(url + "/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
    page.wait_for_selector("#runs-table")
