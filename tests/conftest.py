"""Fixtures shared by the browser tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a test module's pages, closed after it; skipped without
    Chromium or Playwright unless FEATVIZ_REQUIRE_BROWSER=1 (see _browser.find_chromium)."""
    from _browser import find_chromium, launch

    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw, chromium, 30_000)
        yield b
        b.close()
