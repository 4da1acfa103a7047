"""Stroke-to-answer on the `digitnet serve` page, in headless Chromium.

    DIGITNET_DATA=../shared/data python benchmarks/serve_latency.py [MODEL.npz ...]
        [--strokes 30] [--screenshots docs/]

For each model, a server runs in this process and a headless Chromium
writes digits on its page with real pointer strokes (pen, mouse and touch
in turn).  The page notes, for every stroke, the milliseconds from the
pointerup event to the answer painted (the frame after the digit, the bars
and the 28x28 preview were updated), and of that the request's own round
trip; this prints their median, 90th percentile and maximum.  The first
strokes after loading are dropped (Chromium warms up its canvas and
network paths).

Without models it measures the two networks the README serves: the
chapter-1 `[784, 30, 10]` (trained here for one epoch, seed 0) and the
handwriting recipe's conv network (its architecture, untrained: the time is
the architecture's, the weights do not change it).  Timings are wall-clock
on whatever machine runs this, browser and server sharing its cores; the
load average is printed with them.

--screenshots DIR also saves the page at 1920x1080, 800x1000 and 390x844
(serve-1920x1080.png, ...) after a 7 is written, for the docs.
"""

import argparse
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import digitnet
from digitnet import serve

HANDWRITING = "conv:20x5x5,pool:2,conv:40x5x5,pool:2,fc:100,softmax:10"
# Hand-made strokes in canvas units (0-1), as tests/test_browser.py draws them.
ONE = [[(0.46, 0.16), (0.5, 0.14), (0.51, 0.3), (0.51, 0.5), (0.5, 0.7), (0.5, 0.86)]]
ZERO = [[(0.5 + 0.21 * np.sin(t), 0.5 - 0.32 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 26)]]
SEVEN = [[(0.27, 0.2), (0.45, 0.2), (0.62, 0.2), (0.74, 0.2)],
         [(0.74, 0.2), (0.64, 0.38), (0.55, 0.56), (0.48, 0.72), (0.43, 0.86)]]
SIZES = [(1920, 1080), (800, 1000), (390, 844)]
WARM_UP = 3


def browser(width=1240, height=1000):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        sys.exit("serve_latency.py: needs chromium and chromedriver on the PATH")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--force-device-scale-factor=1",
                "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


def wait_for(driver, condition, seconds=15):
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, seconds, poll_frequency=0.02).until(
        lambda d: d.execute_script(f"return {condition}"))


def stroke(driver, points, kind="mouse"):
    """One stroke through `points` (fractions of the pad) with a real pointer
    of this kind; tests/test_browser.py draws with it too."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    pad = driver.find_element("id", "pad")
    w, h = pad.size["width"], pad.size["height"]

    def offset(p):  # W3C actions measure from the element's centre
        return int(round((p[0] - 0.5) * w)), int(round((p[1] - 0.5) * h))

    actions = ActionBuilder(driver, mouse=PointerInput(kind, f"{kind}-pointer"), duration=15)
    actions.pointer_action.move_to(pad, *offset(points[0])).pointer_down()
    for p in points[1:]:
        actions.pointer_action.move_to(pad, *offset(p))
    actions.pointer_action.pointer_up()
    actions.perform()


def write(driver, strokes, kind="mouse"):
    """Write one digit, stroke by stroke, each answered before the next."""
    for points in strokes:
        before = driver.execute_script("return window.digitnet.timings.length")
        stroke(driver, points, kind)
        wait_for(driver, f"window.digitnet.timings.length > {before}")


def measure(driver, url, strokes):
    driver.get(url)
    wait_for(driver, "document.getElementById('model').dataset.ready === '1'")
    digits, kinds, n = [ONE, ZERO, SEVEN], ["pen", "mouse", "touch"], 0
    while n < strokes + WARM_UP:
        driver.find_element("id", "clear").click()
        write(driver, digits[n % 3], kinds[n % 3])
        n = driver.execute_script("return window.digitnet.timings.length")
    timings = driver.execute_script("return window.digitnet.timings")[WARM_UP:]
    return [t["total"] for t in timings], [t["server"] for t in timings]


def quote(ms):
    ms = sorted(ms)
    return (f"median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * len(ms)) - 1]:.0f} ms, "
            f"max {ms[-1]:.0f} ms")


def screenshots(url, folder):
    from PIL import Image
    for width, height in SIZES:
        driver = browser(width, height)
        try:  # the viewport exactly this size (the window's would include its frame)
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
            driver.get(url)
            wait_for(driver, "document.getElementById('model').dataset.ready === '1'")
            write(driver, SEVEN, "touch" if width < 600 else "mouse")
            time.sleep(0.5)  # the bars' 0.25 s transition
            path = Path(folder) / f"serve-{width}x{height}.png"
            shot = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
            shot.convert("RGB").quantize(128).save(path, optimize=True)  # small, for git
            print(f"  saved {path}")
        finally:
            driver.quit()


def default_models(folder):
    """(name, path): chapter 1 trained one epoch, the handwriting conv net untrained."""
    chapter1 = Path(folder) / "chapter1.npz"
    net = digitnet.Network([784, 30, 10], seed=0, device="cpu")
    train, _, _ = digitnet.load_mnist()
    net.sgd(train, 1, 10, 3.0)
    digitnet.save(net, chapter1)
    conv = Path(folder) / "handwriting-architecture.npz"
    digitnet.save(digitnet.Model(HANDWRITING, activation="relu", init="scaled", seed=0,
                                 device="cpu"), conv)
    return [("chapter 1 [784, 30, 10], one epoch", chapter1),
            ("handwriting recipe's conv network (untrained)", conv)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--strokes", type=int, default=30)
    parser.add_argument("--screenshots", type=Path, help="save the page at three sizes here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        models = ([(str(m), m) for m in args.models] if args.models
                  else default_models(folder))
        for i, (name, path) in enumerate(models):
            net = digitnet.load(path, device="cpu")
            server, url = serve.start(serve.App(net, Path(path).name, seed=0))
            try:
                driver = browser()
                try:
                    total, server_ms = measure(driver, url, args.strokes)
                finally:
                    driver.quit()
                load = os.getloadavg()
                print(f"{name}: stroke to answer over {len(total)} strokes: {quote(total)}; "
                      f"of that the request: {quote(server_ms)} "
                      f"(load average {load[0]:.1f} on {os.cpu_count()} cores)", flush=True)
                if args.screenshots and i == 0:
                    screenshots(url, args.screenshots)
            finally:
                server.shutdown()
                server.server_close()
            time.sleep(0.2)


if __name__ == "__main__":
    main()
