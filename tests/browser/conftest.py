"""Browser tests: Debian's chromium (/usr/bin/chromium, installed by `.ci/install-browser`) driven by
Playwright for Python. Never `playwright install`: nothing is downloaded. Skipped only when the
browser is absent. Every page gets a network guard: a request that leaves the machine is blocked
and recorded, so a test can assert that a page needs nothing from outside."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/runstore_fixtures.py

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`bash .ci/install-browser`) "
                    "to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


class Watched:
    """A page with what went wrong on it: console errors, uncaught exceptions, blocked requests."""

    def __init__(self, page, allowed_origin: str | None):
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.blocked: list[str] = []
        page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

        def guard(route):
            url = route.request.url
            if url.startswith(("file:", "data:", "blob:")) or (allowed_origin and url.startswith(allowed_origin + "/")):
                return route.continue_()
            self.blocked.append(url)
            return route.abort()
        page.route("**/*", guard)


@pytest.fixture
def open_page(chromium):
    """``open_page(allowed_origin=None)`` -> a Watched page (1300x900) in a fresh browser context."""
    contexts = []

    def make(allowed_origin: str | None = None, **context_options) -> Watched:
        context = chromium.new_context(viewport={"width": 1300, "height": 900}, accept_downloads=True, **context_options)
        contexts.append(context)
        return Watched(context.new_page(), allowed_origin)
    yield make
    for context in contexts:
        context.close()
