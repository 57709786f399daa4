"""`modelpress report`: Markdown and HTML with plots, checked in a real headless Chromium."""

from __future__ import annotations

import json
import shutil

import pytest

ROWS = [
    {"variant": "example", "profile": "keras (source)", "format": "keras", "quantization": "none", "bytes": 502000,
     "gzip_bytes": 430000, "accuracy": 0.986, "agreement": 1.0, "p50_ms": 6.1},
    {"variant": "example", "profile": "raspberry-pi-4", "format": "tflite", "quantization": "int8", "bytes": 46500,
     "gzip_bytes": 40700, "accuracy": 0.983, "agreement": 0.997, "p50_ms": 0.022},
]
LAYERS = {"name": "prune-80", "recipe": "prune-80", "layers": [
    {"name": "conv1", "type": "Conv2D", "params_before": 144, "params_after": 144, "sparsity": 0.8},
    {"name": "fc1", "type": "Dense", "params_before": 32832, "params_after": 32832, "sparsity": 0.81}]}


@pytest.fixture
def run_dir(tmp_path):
    folder = tmp_path / "run"
    (folder / "compress").mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"kind": "trip", "rows": ROWS, "info": {"seed": 0}}))
    (folder / "compress" / "report.json").write_text(json.dumps(LAYERS))
    return folder


def test_report_writes_markdown_html_and_plots(runner, cli, run_dir):
    result = runner.invoke(cli, ["report", str(run_dir)])
    assert result.exit_code == 0, result.output
    out = run_dir / "report"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["latency_vs_accuracy.png", "report.html", "report.md", "size_vs_accuracy.png",
                     "sparsity_0_prune-80_prune-80.png"]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    md = (out / "report.md").read_text()
    assert "| raspberry-pi-4 |" in md and "98.30%" in md and "![Size vs accuracy](size_vs_accuracy.png)" in md
    assert "| fc1 | Dense | 32,832 | 32,832 | 81.0% |" in md


def test_report_of_a_folder_without_results_is_a_clear_error(runner, cli, tmp_path):
    result = runner.invoke(cli, ["report", str(tmp_path)])
    assert result.exit_code == 4
    assert "holds no modelpress results" in result.output and "Traceback" not in result.output


def _chromium_driver():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("chromium and chromium-driver are not installed (`make test` installs them with apt-get)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,1600"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver), options=options)


def test_html_renders_its_table_and_images_in_headless_chromium(runner, cli, run_dir):
    assert runner.invoke(cli, ["report", str(run_dir)]).exit_code == 0
    browser = _chromium_driver()
    try:
        browser.get((run_dir / "report" / "report.html").as_uri())
        from selenium.webdriver.common.by import By

        tables = browser.find_elements(By.CSS_SELECTOR, "table.results")
        assert len(tables) == 2 and tables[0].is_displayed()
        cells = [td.text for td in tables[0].find_elements(By.TAG_NAME, "td")]
        assert "raspberry-pi-4" in cells and "98.30%" in cells
        images = browser.find_elements(By.CSS_SELECTOR, "img.plot")
        assert len(images) == 3
        for image in images:  # loaded and decoded, not a broken-image icon
            width = browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
            assert width and width > 300
    finally:
        browser.quit()
