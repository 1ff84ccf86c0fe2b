"""A generated report.html, opened in headless Chromium: every image loads (Debian's chromium; .ci/run installs it)."""

import re
import shutil
import subprocess

import pytest

from budgetnas.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)"),
              pytest.mark.slow, pytest.mark.browser]

# Counts the page's images and those that decoded, into the title, once the page has loaded.
PROBE = """<script>window.addEventListener('load', () => { const imgs = [...document.images];
document.title = 'IMAGES ' + imgs.length + ' ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length; });
</script>"""


def images_loaded(html_file, tmp_path) -> tuple[int, int]:
    page = tmp_path / "probe.html"
    page.write_text(html_file.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000", "--dump-dom",
                          page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    total, ok = re.search(r"<title>IMAGES (\d+) (\d+)</title>", out).groups()
    return int(total), int(ok)


def test_every_image_of_a_report_loads_in_a_browser(tmp_path, tiny_budgets, capsys):
    reports = tmp_path / "reports"
    assert main(["--budgets", str(tiny_budgets), "search", "--budget", "tiny", "--name", "r", "--reports-dir",
                 str(reports), "--trials", "2", "--max-epochs", "1", "--no-retrain"]) == 0
    assert main(["report", "r", "--reports-dir", str(reports)]) == 0
    capsys.readouterr()
    html = reports / "r" / "report.html"
    total, ok = images_loaded(html, tmp_path)
    assert total == 2 and ok == total  # accuracy vs params, best so far
    # the check can fail: a corrupted image is counted as not loaded
    broken = tmp_path / "broken.html"
    text = html.read_text(encoding="utf-8")
    broken.write_text(text.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1), encoding="utf-8")
    assert images_loaded(broken, tmp_path) == (2, 1)
