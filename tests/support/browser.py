"""Headless Chromium for page tests: Debian's ``chromium`` + ``chromium-driver`` driven by selenium.

Tools that download their own browser cannot fetch one here, so this uses the system's binaries and
never lets selenium-manager look for others. ``fake_media=True`` (or ``fake_audio=WAV``) gives the
page a fake camera and microphone and grants getUserMedia without a prompt, for WebRTC pages; a WAV
given as ``fake_audio`` is what the "microphone" says (Chromium loops it).

    with chromium() as driver:
        driver.get(url)
        screenshot(driver, Path("/tmp/page.png"))
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1400, 900)
T = TypeVar("T")


def missing() -> str | None:
    """Why a browser test cannot run here (None: it can)."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return f"{path} is not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@contextmanager
def chromium(*, window: tuple[int, int] = WINDOW, fake_media: bool = False, fake_audio: Path | None = None,
             args: Sequence[str] = (), log: Path | None = None) -> Iterator[Any]:
    """A headless Chromium WebDriver (selenium), quit on exit; its profile lives in a temporary folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cc-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={window[0]},{window[1]}",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-component-update",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio", f"--user-data-dir={profile}",
                "--force-device-scale-factor=1", *args):
        opts.add_argument(arg)
    if fake_media or fake_audio is not None:
        opts.add_argument("--use-fake-device-for-media-stream")
        opts.add_argument("--use-fake-ui-for-media-stream")
    if fake_audio is not None:
        opts.add_argument(f"--use-file-for-fake-audio-capture={fake_audio}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log) if log else None)
    driver = webdriver.Chrome(options=opts, service=service)
    try:
        # --window-size counts the (invisible) browser frame: make the page itself exactly ``window``.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": window[0], "height": window[1], "deviceScaleFactor": 1, "mobile": False})
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, path: Path) -> Path:
    """Save what the window shows as a PNG at ``path`` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not driver.save_screenshot(str(path)):
        raise RuntimeError(f"chromium could not save a screenshot to {path}")
    return path


def console(driver: Any, level: str = "SEVERE") -> list[str]:
    """The page's console messages at ``level`` since the last call (chromium keeps them per page)."""
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == level]


def wait_for(driver: Any, condition: Callable[[Any], T], timeout: float = 10.0, what: str = "") -> T:
    """Poll ``condition(driver)`` until it is truthy and return it; TimeoutException naming ``what``.

    An element the page replaced while the condition looked at it (stale) or has not drawn yet counts as "not yet".
    """
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout, poll_frequency=0.05,
                         ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))
    result: T = wait.until(condition, message=what)
    return result
