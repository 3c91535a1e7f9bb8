"""Opens a report page in a real headless Chromium (Debian's, through its chromedriver) and
prints, as JSON, what a reader would get: console messages, every network request the page
made, each chart's drawn marks, the KPI figures shown, and the page title. Saves a screenshot.

Usage: python3 tests/report_in_browser.py REPORT.html SCREENSHOT.png
"""

import json
import pathlib
import sys
import tempfile

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

page, screenshot = pathlib.Path(sys.argv[1]).resolve(), sys.argv[2]
url = page.as_uri()
profile = tempfile.mkdtemp(prefix="chromium-profile-")
options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for flag in [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium calls home at start, and this machine's closed network refuses it.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
    f"--user-data-dir={profile}",
]:
    options.add_argument(flag)
options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
try:
    driver.get(url)
    console = [
        {"level": e["level"], "message": e["message"]}
        for e in driver.get_log("browser")
        if e["level"] in ("SEVERE", "WARNING")
    ]
    # Every request from the report's own load on, but Chromium's internal pages: its start page
    # loads before the report, and a late part of it (chrome-untrusted://) may come after.
    requests, loading = [], False
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested = message["params"]["request"]["url"]
            if requested == url:
                loading = True
            elif loading and not requested.startswith(("chrome:", "chrome-untrusted:", "chrome-search:")):
                requests.append(requested)
    charts = driver.execute_script(
        """return Array.from(document.querySelectorAll('svg.chart')).map(svg => ({
            id: svg.id,
            label: svg.getAttribute('aria-label'),
            marks: Array.from(svg.querySelectorAll('.mark')).filter(m => {
                const box = m.getBBox(); return box.width > 0 || box.height > 0;
            }).length,
        }))"""
    )
    kpis = driver.execute_script(
        """return Object.fromEntries(Array.from(document.querySelectorAll('[data-kpi]')).map(
            e => [e.dataset.kpi, {text: e.textContent, value: e.dataset.value}]))"""
    )
    sections = driver.execute_script(
        "return Array.from(document.querySelectorAll('section')).map(s => s.id + ': ' + s.innerText.slice(0, 20000))"
    )
    # The whole page in one picture: the window made as tall as the document.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, height + 120)
    driver.save_screenshot(screenshot)
    print(json.dumps({
        "title": driver.title,
        "console": console,
        "requests": requests,
        "charts": charts,
        "kpis": kpis,
        "sections": sections,
    }))
finally:
    driver.quit()
