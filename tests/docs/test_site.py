"""The built site, opened from the file system in headless Chromium (Debian's chromium and chromium-driver,
driven by Selenium, as the HTML report's test does): no console errors on any page, and search works
offline. Skipped, saying why, where MkDocs (the docs extra) or Chromium is missing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import headless_chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("MkDocs is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("--window-size=1400,1000")


def _errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]


def test_every_page_opens_from_the_file_system_without_console_errors(site, browser):
    # 404.html is a web server's error page, linked from the server's root: not one to browse from files
    pages = sorted(p for p in site.rglob("*.html") if p.name != "404.html")
    assert len(pages) >= 30
    for page in pages:
        browser.get(page.as_uri())
        assert not _errors(browser), page.relative_to(site)


def test_the_methods_reference_lists_every_method(site, browser):
    from selenium.webdriver.common.by import By

    import tunelab.methods as methods

    browser.get((site / "reference" / "methods.html").as_uri())
    headings = {h.get_attribute("id") for h in browser.find_elements(By.CSS_SELECTOR, "article h2")}
    assert set(methods.available()) <= headings


def test_search_works_offline(site, browser):
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    browser.execute_script("const t = document.querySelector('#__search'); t.checked = true;"
                           "t.dispatchEvent(new Event('change'))")
    box = browser.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.send_keys("pissa")
    deadline = time.monotonic() + 20
    results = []
    while time.monotonic() < deadline and not results:
        time.sleep(0.25)
        results = browser.find_elements(By.CSS_SELECTOR, ".md-search-result__item")
    assert results, browser.find_element(By.CSS_SELECTOR, ".md-search-result__meta").text
    links = [r.find_element(By.TAG_NAME, "a").get_attribute("href") for r in results]
    assert any("reference/methods.html" in link for link in links), links
    assert not _errors(browser)
