"""What the headless-Chromium tests share: finding Chromium, launching it, serving an app.

Test modules call ``skip_without_chromium()`` at import, so they skip with a clear reason
where Playwright or Debian's ``chromium`` is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

try:
    from playwright.sync_api import Browser, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def skip_without_chromium() -> None:
    """Skip the calling test module when the browser cannot run here."""
    if sync_playwright is None:
        pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)
    if not CHROMIUM:
        pytest.skip("no chromium or chromium-browser on PATH", allow_module_level=True)


def launch() -> Iterator[Browser]:
    """A headless Chromium for one test module (use from a module-scoped fixture)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        browser.close()


def serve(wsgi: Callable[..., Any]) -> tuple[BaseWSGIServer, threading.Thread]:
    """Serve a WSGI app over real HTTP on a free port, threaded, in the background."""
    server = make_server("127.0.0.1", 0, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def stop(server: BaseWSGIServer, thread: threading.Thread) -> None:
    """Stop a server started by ``serve``."""
    server.shutdown()
    server.server_close()
    thread.join(5)
