"""A screenshot of `realcam edit` for the README, taken in headless Chromium.

Opens the editor on an image (with its metric depth) and a trajectory, lets the page settle and
saves the browser window as a PNG.

Usage: python examples/edit_screenshot.py IMAGE DEPTH TRAJECTORY OUT.png
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from stages.edit import EditorSession
from stages.edit.viewer import EditorViewer


def main() -> None:
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    image, depth, trajectory, out = (Path(a) for a in sys.argv[1:])
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("edit_screenshot: no chromium on this machine (Debian: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    session = EditorSession(image, trajectory, depth_file=depth)
    viewer = EditorViewer(session, port=0, export=out.with_suffix(".json"))
    try:
        viewer.wait_until_current(60)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
            )
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(viewer.url)
            page.get_by_text("Connected").wait_for(timeout=60_000)
            page.get_by_text("rendered in").wait_for(timeout=60_000)
            # The software-WebGL notice is for the headless browser only: close it.
            close = page.locator(".mantine-Notification-closeButton")
            if close.count():
                close.first.click()
            time.sleep(4.0)  # the client fades new content in
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))
            browser.close()
    finally:
        viewer.stop()
    print(f"edit_screenshot: wrote {out}")


if __name__ == "__main__":
    main()
