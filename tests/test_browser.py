"""The `digitnet serve` page in a real, headless Chromium.

Digits are written on the canvas with real pointer input (mouse, pen and
touch, stroke by stroke), and after every stroke the page must show what
the API says for the very PNG the page sent (the page keeps it in
window.digitnet.lastPng): the same class, the same ten outputs, the same
28x28 picture, within a sane time of the stroke's end.  Undo, Clear, a
photo through the file picker and the test-set button are checked the same
way, and the browser's console must stay free of errors (a blocked script
or style would show there).  On a phone-sized and a tablet-sized screen the
answer must be in view beside the pad.

Needs Debian's `chromium` and `chromium-driver` and `pip install selenium`
(the `test` extra); without them the test skips with the reason, and CI
(DIGITNET_REQUIRE_BROWSER=1, see ../conftest.py) fails on that skip.
DIGITNET_SCREENSHOT=docs/serve.png saves a screenshot of the page.
"""

import base64
import http.client
import json
import os
import re
import shutil

import numpy as np
import pytest

from benchmarks.serve_latency import stroke  # one real pointer stroke, shared
from digitnet import load, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Hand-made strokes in canvas units (0-1), as a person would write them.
ONE = [[(0.46, 0.16), (0.5, 0.14), (0.51, 0.3), (0.51, 0.5), (0.5, 0.7), (0.5, 0.86)]]
ZERO = [[(0.5 + 0.21 * np.sin(t), 0.5 - 0.32 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 26)]]
SEVEN = [[(0.27, 0.2), (0.45, 0.2), (0.62, 0.2), (0.74, 0.2)],
         [(0.74, 0.2), (0.64, 0.38), (0.55, 0.56), (0.48, 0.72), (0.43, 0.86)]]


def browser_or_skip():
    """(chromium, chromedriver) paths, or a skip saying what is missing."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                    "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Chromium or its driver is missing "
                    "(apt-get install chromium chromium-driver)")
    return chromium, driver


@pytest.fixture(scope="module")
def page(trained_model, mnist_dir):
    """(driver, url, net): headless Chromium on a page served in a thread."""
    chromium, chromedriver = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1240,1000", "--force-device-scale-factor=1",
                "--hide-scrollbars", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    net = load(trained_model, device="cpu")
    server, url = serve.start(serve.App(net, "net.npz", data_dir=mnist_dir, seed=0))
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(url)
        wait_for(driver, "document.getElementById('model').dataset.ready === '1'")
        yield driver, url, net
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()


def wait_for(driver, condition, seconds=15):
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, seconds).until(lambda d: d.execute_script(f"return {condition}"))


def answered(driver, sent):
    """Wait until the page has sent `sent` drawings and shown the last answer."""
    wait_for(driver, f"window.digitnet.sent === {sent} && window.digitnet.shown === {sent}"
                     " && window.digitnet.lastPng !== null")


def post(url, body, kind="image/png"):
    host, port = url.split("//")[1].rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", "/api/predict", body=body, headers={"Content-Type": kind})
    res = conn.getresponse()
    assert res.status == 200
    return json.loads(res.read())


def shown(driver):
    """What the page shows: the winner, the ten values, the 28x28 preview."""
    return driver.execute_script("""
        const c = document.getElementById('input').getContext('2d').getImageData(0, 0, 28, 28);
        return {winner: document.getElementById('winner').textContent,
                digit: document.getElementById('winner').dataset.digit,
                top: [...document.querySelectorAll('#bars li.top')].map(li => +li.dataset.index),
                values: [...document.querySelectorAll('#bars .value')].map(v => v.textContent),
                preview: Array.from(c.data).filter((_, i) => i % 4 === 0)};""")


def last_png(driver):
    url = driver.execute_script("return window.digitnet.lastPng")
    assert url.startswith("data:image/png;base64,")
    return base64.b64decode(url.split(",", 1)[1])


def check_page_matches_api(driver, url):
    """The page shows exactly the API's answer for the PNG the page sent."""
    api = post(url, last_png(driver))
    got = shown(driver)
    assert got["winner"] == api["label"] and got["digit"] == str(api["digit"])
    assert got["top"] == [api["digit"]]
    assert got["values"] == [f"{v:.3f}" for v in api["outputs"]]
    want = np.round(255 * np.clip(np.array(api["input"]), 0, 1)).ravel()
    assert np.abs(np.array(got["preview"]) - want).max() <= 1
    assert np.array(got["preview"]).max() > 200  # the preview is drawn, not black
    return api


def console_errors(driver):
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_writing_digits_stroke_by_stroke_shows_the_apis_answer(page):
    driver, url, net = page
    sent, read = 0, {}
    for name, strokes, kind in (("1", ONE, "pen"), ("0", ZERO, "mouse"), ("7", SEVEN, "touch")):
        driver.find_element("id", "clear").click() if sent else None
        after = []
        for points in strokes:
            stroke(driver, points, kind)
            sent += 1
            answered(driver, sent)
            assert driver.execute_script("return window.digitnet.pointer") == kind
            after.append((last_png(driver), check_page_matches_api(driver, url)))
        read[name] = after[-1][1]["label"]
    timings = driver.execute_script("return window.digitnet.timings.map(t => t.total)")
    print(f"hand-drawn 1, 0, 7 read as {read['1']}, {read['0']}, {read['7']}; "
          f"stroke to answer {', '.join(f'{t:.0f}' for t in timings)} ms")
    # A sanity bound, 6x the target, not a speed target (benchmarks/
    # serve_latency.py measures that): it catches the second's lag that
    # canvas.toBlob added to many strokes (its callback waits for an idle
    # moment, or a 1 s timeout).
    assert len(timings) == sent and max(timings) < 1000, timings
    # Undo takes the 7 back to its first stroke, pixel for pixel.
    driver.find_element("id", "undo").click()
    sent += 1
    answered(driver, sent)
    assert last_png(driver) == after[0][0]
    assert check_page_matches_api(driver, url) == after[0][1]
    assert console_errors(driver) == []


def test_clear_empties_the_canvas_the_answer_and_the_preview(page):
    driver, url, _ = page
    sent = driver.execute_script("return window.digitnet.sent")
    stroke(driver, ONE[0])
    answered(driver, sent + 1)
    driver.find_element("id", "clear").click()
    state = driver.execute_script("""
        const pad = document.getElementById('pad');
        const ink = pad.getContext('2d').getImageData(0, 0, pad.width, pad.height).data
            .filter((v, i) => i % 4 === 0 && v < 250).length;
        const s = document.getElementById('input').getContext('2d').getImageData(0, 0, 28, 28)
            .data.filter((v, i) => i % 4 === 0 && v > 0).length;
        return {ink, preview: s, png: window.digitnet.lastPng,
                winner: document.getElementById('winner').textContent,
                top: document.querySelectorAll('#bars li.top').length,
                undo: document.getElementById('undo').disabled};""")
    assert state == {"ink": 0, "preview": 0, "png": None, "winner": "?", "top": 0, "undo": True}


def test_a_photo_through_the_file_picker(page, mnist, tmp_path):
    from PIL import Image
    driver, url, _ = page
    _, _, test = mnist
    grey = (test.images[:, 11].reshape(28, 28) * 255).round().astype(np.uint8)
    path = tmp_path / "scan.jpg"
    Image.fromarray(255 - grey).resize((140, 140)).save(path, "JPEG")
    api = post(url, path.read_bytes(), "image/jpeg")
    driver.find_element("id", "file").send_keys(str(path))
    wait_for(driver, f"document.getElementById('source').textContent === 'from {path.name}'")
    got = shown(driver)
    assert got["winner"] == api["label"] and got["values"] == [f"{v:.3f}" for v in api["outputs"]]


def test_the_test_set_button_shows_a_wrong_and_a_right_digit(page):
    driver, _, _ = page
    driver.find_element("id", "sample").click()
    wait_for(driver, "!document.getElementById('sample-wrong').hidden")
    wrong = driver.find_element("id", "sample-wrong").text
    right = driver.find_element("id", "sample-right").text
    assert "it read" in wrong and "it read" in right
    it_is = re.search(r"it is (.+)", wrong).group(1)
    it_read = re.search(r"it read (.+) \(", wrong).group(1)
    assert it_is != it_read
    driver.find_element("id", "sample-wrong").click()
    assert driver.find_element("id", "winner").text == it_read
    assert console_errors(driver) == []


@pytest.mark.parametrize("width,height", [(390, 844), (800, 1000)])
def test_on_small_screens_the_answer_is_in_view_with_the_pad(page, width, height):
    """Phone: the digit and its ten bars above the pad, all in view while
    drawing.  Tablet: the pad and the answer side by side, above the fold."""
    driver, _, _ = page
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})
    try:
        driver.refresh()
        wait_for(driver, "document.getElementById('model').dataset.ready === '1'")
        stroke(driver, SEVEN[0], "touch")
        wait_for(driver, "window.digitnet.shown === 1")
        box = driver.execute_script("""
            const r = (id) => document.getElementById(id).getBoundingClientRect();
            return {pad: r('pad'), winner: r('winner'), bars: r('bars'),
                    page: document.documentElement.scrollWidth};""")
        for name in ("pad", "winner", "bars"):  # whole, in the first screen
            assert 0 <= box[name]["top"] and box[name]["bottom"] <= height, (name, box)
            assert 0 <= box[name]["left"] and box[name]["right"] <= width, (name, box)
        assert box["page"] <= width  # no sideways scrolling
        assert box["pad"]["width"] >= min(width - 60, 360)  # a pad to write on, not a stamp
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.refresh()
        wait_for(driver, "document.getElementById('model').dataset.ready === '1'")


def test_screenshot(page):
    """A digit written and read, with the test set shown, for the README
    (saved only when DIGITNET_SCREENSHOT names a file)."""
    driver, url, _ = page
    target = os.environ.get("DIGITNET_SCREENSHOT")
    driver.find_element("id", "clear").click()
    sent = driver.execute_script("return window.digitnet.sent")
    for i, points in enumerate(SEVEN):
        stroke(driver, points)
        answered(driver, sent + i + 1)
    check_page_matches_api(driver, url)
    if not target:
        return  # not a skip: CI fails on any skipped browser test
    driver.find_element("id", "sample").click()
    wait_for(driver, "!document.getElementById('sample-right').hidden")
    height = driver.execute_script("return Math.ceil(document.querySelector('footer')"
                                   ".getBoundingClientRect().bottom) + 16")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": 1240, "height": height, "deviceScaleFactor": 1, "mobile": False})
    driver.save_screenshot(target)


def test_ci_fails_when_the_browser_test_skips(tmp_path, mnist_dir):
    """The guard in the root conftest: without chromium on the PATH the
    browser test skips, and DIGITNET_REQUIRE_BROWSER=1 fails the run."""
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PATH=str(Path(sys.executable).parent), DIGITNET_DATA=str(mnist_dir),
               DIGITNET_REQUIRE_BROWSER="1", DIGITNET_REQUIRE_REAL_DATA="0")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/test_browser.py", "-k", "clear_empties"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0, done.stdout
    assert "Chromium or its driver is missing" in done.stdout  # the skip says why
    assert "browser tests: 0 passed, 1 skipped" in done.stdout
