"""Screenshot a run's report in headless Chromium after clicking a node: docs/report.png.

    python docs/screenshot.py RUN_DIR [--node L1N1] [--out docs/report.png]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--node", default="L1N1")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("report.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        browser = p.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, viewport={"width": 1200, "height": 900},
            args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
        page = browser.new_page()
        page.goto((args.run_dir / "report.html").resolve().as_uri())
        page.locator(f'#graph .node[data-node="{args.node}"]').click()
        page.locator("#messages-table").wait_for()
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
