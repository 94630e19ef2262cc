"""report.html in a real browser: headless Chromium loads the page (2 and 77 classes) without
console errors, every image decodes, and the screenshot is not blank. The screenshots are kept
under pytest's temporary folder (printed with -s), as artifacts to look at.

Chromium is Debian's ``chromium`` package; ``.ci/run`` installs it when missing. Without it the
tests skip locally and fail under CI (conftest ``require``).
"""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from ensemble.workflows.report import report

from tests.conftest import require
from tests.synthetic_members import make_members

# Appended to a copy of the page: once loaded, the page writes into its own title whether every
# image decoded and which script errors happened, for --dump-dom to read back.
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.target && e.target.src)), true);
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  document.title = 'PROBE images=' + imgs.length + ' undecoded=' + bad + ' errors=' + window.__errors.length;
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    require(False, "chromium (apt-get install chromium; .ci/run installs it)")


def _run(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", *args],
                          capture_output=True, text=True, timeout=120)


def _loaded(browser: str, page: str, root) -> subprocess.CompletedProcess:
    """``page`` loaded in Chromium with :data:`PROBE`: every image decoded, no script or console
    error; the DOM it holds (``stdout``)."""
    probed = root / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = _run(browser, "--dump-dom", probed.as_uri())
    title = re.search(r"<title>(PROBE[^<]*)</title>", dom.stdout)
    assert title, (dom.returncode, dom.stderr[-2000:])
    counts = dict(kv.split("=") for kv in title.group(1).split()[1:])
    assert int(counts["images"]) == page.count("<img") and counts["undecoded"] == "0" and counts["errors"] == "0"
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert console == []
    return dom


@pytest.mark.parametrize("classes", [2, 77])
def test_report_page_renders_in_chromium(classes, tmp_path_factory):
    browser = _chromium()
    root = tmp_path_factory.mktemp(f"browser-{classes}")
    members, data, cache_dir, labels = make_members(root, valid_rows=1200, test_rows=100, models=3, classes=classes,
                                                    seed=classes)
    rep = report(members, data, cache_dir=cache_dir, repeats=1)
    page = rep.to_html()
    assert page.count("<img") >= 3
    (root / "report.html").write_text(page, encoding="utf-8")
    dom = _loaded(browser, page, root)
    # read top-down, as the browser has it: the headline, then the leaderboard (its plot, every
    # method's row), then auto's decision; the details folded after them
    import html as html_lib

    text = html_lib.unescape(dom.stdout)
    from ensemble.estimates.headline import headline_line

    at = [text.find(headline_line(rep.headline)), text.find("<h2>Leaderboard</h2>"), text.find("alt=\"Scores\""),
          text.find("<b>auto</b>: " + rep.reason), text.find("<details")]
    assert -1 not in at and at == sorted(at), at
    board = text[at[1]:at[4]]
    assert all(f"<th>{m}</th>" in board for m in rep.leaderboard().index)

    shot = root / "screenshot.png"
    run = _run(browser, f"--screenshot={shot}", "--window-size=1200,2400", (root / "report.html").as_uri())
    assert shot.is_file(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1000
    dark = np.mean(pixels.mean(axis=2) < 0.5)  # text, table lines and plots on a white page
    assert 0.005 < dark < 0.6, dark
    assert pixels.reshape(-1, 3).std(axis=0).max() > 0.05  # not one flat colour
    print(f"screenshot: {shot}")


def test_the_reliability_curve_has_fewer_bins_at_small_n():
    from ensemble.tasks.classification.render import reliability_curve

    rng = np.random.default_rng(0)
    for n, bins in ((120, 4), (200, 5), (400, 10), (5000, 10)):
        p = rng.dirichlet(np.ones(3), size=n)
        y = rng.integers(0, 3, size=n)
        conf, acc, count = reliability_curve(p, y)
        assert len(count) == bins and count.sum() == n
        top = p.max(axis=1)
        idx = np.clip((top * bins).astype(int), 0, bins - 1)
        for b in np.flatnonzero(count):
            assert conf[b] == pytest.approx(top[idx == b].mean()) and acc[b] == pytest.approx(
                (p.argmax(1) == y)[idx == b].mean())


def test_uniform_has_its_interval_on_the_scores_plot(tmp_path, monkeypatch):
    """The leaderboard plot drew no interval for uniform (its gain over itself is zero): it draws
    uniform's 95% Wilson interval, the one its headline gives."""
    import matplotlib.axes

    from tests.synthetic_members import make_members

    members, data, cache_dir, _ = make_members(tmp_path, valid_rows=300, test_rows=50, models=3, classes=3)
    rep = report(members, data, cache_dir=cache_dir, methods=["acc"], adjust="none", check_shift=False)
    drawn = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, x, y, **kw: drawn.append((x, kw)) or real(self, x, y, **kw))
    rep.to_html()
    green = [(x, kw["xerr"]) for x, kw in drawn if kw.get("color") == "tab:green"]
    assert len(green) == 1
    x, ((below,), (above,)) = green[0]
    assert x == pytest.approx(rep.table.loc["uniform", "cv_accuracy"])
    from ensemble.estimates.resampling import wilson

    assert (x - below, x + above) == pytest.approx(wilson(round(x * rep.rows), rep.rows), abs=1e-9)
    if rep.headline["method"] == "uniform" and rep.headline["of"] == "cross-validated":
        assert (x - below, x + above) == pytest.approx((rep.headline["low"], rep.headline["high"]), abs=1e-9)


@pytest.mark.parametrize("task", ["regression", "multi_label"])
def test_the_column_tasks_page_reads_top_down_in_chromium(task, tmp_path):
    """The regression and multi-label page has the classification page's design: styled, the
    headline, the leaderboard as a plot with intervals and as a table, auto's decision, then the
    details folded; every image decodes in Chromium."""
    import html as html_lib

    from ensemble.estimates.headline import headline_line
    from tests.synthetic_members import make_task_members

    browser = _chromium()
    members, data, cache_dir, columns, names = make_task_members(task, tmp_path, valid_rows=240)
    rep = report(members, data, cache_dir=cache_dir, columns=columns, check_shift=False)
    page = rep.to_html()
    assert "<style>" in page and page.count("<img") >= 1
    dom = _loaded(browser, page, tmp_path)
    text = html_lib.unescape(dom.stdout)
    at = [text.find(headline_line(rep.headline)), text.find("<h2>Leaderboard</h2>"), text.find("alt=\"Leaderboard\""),
          text.find("<b>auto</b>: " + rep.reason), text.find("<details")]
    assert -1 not in at and at == sorted(at), at
    assert all(f"<th>{m}</th>" in text[at[1]:at[4]] for m in rep.leaderboard().index)
