"""Shared Playwright helpers for the browser tests (report, server UI): one place for how Chromium is
found and launched. Debian's `chromium` package provides /usr/bin/chromium (scripts/test.sh installs it
on CI); `playwright install` is never used. Without Chromium the browser tests skip locally, and fail
on CI (CI=true), where a missing browser is a broken setup, not a reason to pass."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from typing import Iterator

import pytest

CHROMIUM = os.environ.get("ZTURBO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]


def missing_reason() -> str | None:
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set ZTURBO_CHROMIUM)"
    return None


def require_browser() -> None:
    """Skip (locally) or fail (CI) when the browser is missing: call at the top of a fixture."""
    reason = missing_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run on CI: {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def launch() -> Iterator[object]:
    """A headless Chromium (playwright Browser); closed on exit."""
    require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclasses.dataclass
class PageLog:
    """What went wrong while a page ran: console errors, uncaught exceptions, failed or blocked requests."""

    errors: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    blocked: list[str] = dataclasses.field(default_factory=list)


def open_page(browser, allow: tuple[str, ...] = ("file:", "data:", "blob:"), viewport=(1280, 900)):
    """A fresh page whose requests outside `allow` are blocked (and recorded): offline by construction.
    Returns (page, log)."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    log = PageLog()

    def route(r):
        if r.request.url.startswith(allow):
            r.continue_()
        else:
            log.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: log.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.errors.append(str(e)))
    page.on("requestfailed", lambda r: log.failed.append(f"{r.url} ({r.failure})"))
    return page, log
