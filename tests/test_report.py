"""The HTML evidence report, opened in a real headless Chromium."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from deepscreen.cli import main
from deepscreen.model import Detector
from deepscreen.report import gradcam


def test_gradcam_gives_one_normalised_map_per_crop(tiny_weights):
    det = Detector.load(tiny_weights, device="cpu")
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    heat = gradcam(det, crops)
    assert heat.shape == (3, 64, 64) and heat.min() >= 0 and heat.max() <= 1
    assert heat.reshape(3, -1).max(1).min() > 0  # something drove each score


@pytest.fixture(scope="module")
def report(tmp_path_factory, face_clip, no_face_clip, two_face_clip, tiny_weights):
    d = tmp_path_factory.mktemp("report")
    for clip in (face_clip, no_face_clip, two_face_clip):
        shutil.copy(clip, d / clip.name)
    shutil.copy(face_clip, d / "zz-copy.mp4")  # screened once: its section shows the original's faces
    (d / "broken.mp4").write_text("junk")
    path = d / "report.html"
    # threshold 0: every video with a face is flagged, so the per-video evidence sections are all there
    res = CliRunner().invoke(main, ["scan", str(d), "-o", str(d / "out.jsonl"), "--weights", str(tiny_weights),
                                    "--frames", "4", "--threshold", "0", "--report", str(path)])
    assert res.exit_code == 0, res.output
    return path


def test_report_is_self_contained(report):
    page = report.read_text()
    assert page.count('<section id="v') == 3  # face.mp4, its copy and two.mp4 flagged
    assert "http://" not in page and "https://" not in page and "src=\"data:image/png;base64," in page
    assert page.count("<polyline") == 4  # one score line per person: 1 + 1 + 2
    assert "No face crops kept" not in page


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are needed (scripts/bootstrap.sh --test installs them)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    yield drv
    drv.quit()


def test_report_loads_sorts_and_renders_in_chromium(report, browser):
    from selenium.webdriver.common.by import By

    browser.get(report.as_uri())
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    rows = lambda: [r.find_elements(By.TAG_NAME, "td") for r in browser.find_elements(By.CSS_SELECTOR, "#videos tbody tr")]
    assert len(rows()) == 5
    score_header = browser.find_elements(By.CSS_SELECTOR, "#videos th")[2]
    score_header.click()
    ascending = [float(c[2].get_attribute("data-sort")) for c in rows()]
    assert ascending == sorted(ascending)
    score_header.click()
    descending = [float(c[2].get_attribute("data-sort")) for c in rows()]
    assert descending == sorted(ascending, reverse=True)
    browser.find_elements(By.CSS_SELECTOR, "#videos th")[0].click()
    names = [c[0].get_attribute("data-sort") for c in rows()]
    assert names == sorted(names)
    images = browser.find_elements(By.CSS_SELECTOR, "section img")
    assert len(images) == 2 * (3 + 3 + 6)  # crop + heatmap for the top 3 faces of each person, the copy's too
    assert all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", im) == 64
               for im in images)
