"""Headless Chromium for the browser tests: Debian's `chromium`, driven by playwright.

No browser test skips: without Chromium it fails and says how to install it (`.ci/run`
installs Debian's `chromium`; playwright comes with the test extra). Chromium starts with
the flags this machine needs: as root without a sandbox, and with nothing of its own
reaching for the network (a closed network refuses those connections, many at a time).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium binary (`CHROMIUM`, else `chromium` on PATH); fails the test if none."""
    found = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        pytest.fail(
            "browser tests need headless Chromium: apt-get install chromium "
            "(.ci/run does), or set CHROMIUM=/path/to/chromium",
            pytrace=False,
        )
    return found


@asynccontextmanager
async def browser_page(
    user_data: Path, width: int = 1400, height: int = 1000
) -> AsyncIterator[Page]:
    """A page in a fresh headless Chromium whose profile lives in `user_data`."""
    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(user_data),
            executable_path=chromium_path(),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": width, "height": height},
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()
