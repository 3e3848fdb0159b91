"""Open a notebook in a real JupyterLab, run all cells, move its sliders, and take screenshots.

Widgets only live in a browser; this is how a maintainer checks them without clicking by hand.
Needs Debian's chromium (or any Chromium: --chromium PATH) and the playwright package
(`pip install playwright`; do not run `playwright install`, the system browser is used).

    python scripts/screenshot_widgets.py solutions/lab3_optimizers.ipynb review/lab3-widgets

Writes before.png (after Run All), one after_<n>.png per slider moved, and prints what it did.
The notebook is copied into a temporary folder first; the original is never touched.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_server(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"JupyterLab did not answer at {url} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--sliders", type=int, default=3, help="how many sliders to move")
    parser.add_argument("--run-timeout", type=float, default=600.0, help="seconds to wait for Run All")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(args.notebook, Path(work) / args.notebook.name)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1",
             "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={work}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_server(f"{base}/api")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=args.chromium,
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync"],
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/lab/tree/{args.notebook.name}")
                page.wait_for_selector(".jp-Notebook", timeout=60_000)
                time.sleep(3)
                dialog = page.locator(".jp-Dialog button.jp-mod-accept")  # "Select Kernel" on first open
                if dialog.count():
                    dialog.first.click()
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                # The menu bar's "Run" and its "Run All Cells" item (a notebook's own text may say the same words).
                page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click(timeout=10_000)
                page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click(timeout=10_000)
                time.sleep(3)
                page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                       timeout=args.run_timeout * 1000)
                sliders = page.locator(".widget-slider .noUi-handle, .widget-slider .slider-handle")
                count = sliders.count()
                print(f"Run All finished; {count} slider(s) found")
                if count:
                    sliders.first.scroll_into_view_if_needed()
                page.screenshot(path=str(args.out / "before.png"))
                for index in range(min(count, args.sliders)):
                    handle = sliders.nth(index)
                    handle.scroll_into_view_if_needed()
                    handle.focus()
                    for _ in range(5):
                        handle.press("ArrowRight")
                    time.sleep(1)
                    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
                    time.sleep(1)
                    page.screenshot(path=str(args.out / f"after_{index}.png"))
                    print(f"moved slider {index}; screenshot after_{index}.png")
                errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
                print(f"stderr outputs on the page: {errors.count()}")
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
