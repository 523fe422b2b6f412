"""Browser test of the built book: headless Chromium from Debian, driven by Playwright."""
import os
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
BUILD = BOOK / "_build" / "html"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def _toc_files() -> list[str]:
    """Every page of the table of contents (book/_toc.yml), in order."""
    import yaml

    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


#: the chapter pages the table of contents lists (the notebooks' executed copies)
CHAPTERS = [BUILD / f"{f}.html" for f in _toc_files() if f.startswith("chapters/0")]
pytestmark = [
    pytest.mark.book,
    pytest.mark.skipif(not BUILD.is_dir(), reason="book not built (make book)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="no Chromium (apt-get install -y chromium)"),
]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def test_every_page_of_the_table_of_contents_is_built_and_every_notebook_is_listed():
    notebooks = sorted(p.stem for p in (BOOK.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert [c.stem for c in CHAPTERS] == notebooks  # claims.html and seeds.html are checked below
    missing = [f for f in _toc_files() if not (BUILD / f"{f}.html").is_file()]
    assert not missing, missing


@pytest.mark.parametrize("page", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_renders_figure_table_and_no_error(browser, page):
    shots = Path(__file__).parent / "screenshots"
    shots.mkdir(exist_ok=True)
    tab = browser.new_page(viewport={"width": 1300, "height": 900})
    errors = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(page.as_uri())
    tab.wait_for_load_state("load")
    assert tab.locator("main img, article img").count() >= 1, "no figure"
    assert tab.locator("main table, article table").count() >= 1, "no results table"
    body = tab.inner_text("main")
    for bad in ("Traceback (most recent call last)", "Error:", "Exception:"):
        assert bad not in body, f"error output in {page.name}: {bad}"
    assert tab.locator(".output.stderr:has-text('Error')").count() == 0
    # internal links resolve to files of the build
    hrefs = tab.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
    for h in hrefs:
        if h.startswith(("http", "mailto", "#", "javascript")):
            continue
        target = (page.parent / h.split("#")[0]).resolve()
        assert target.exists(), f"{page.name}: broken link {h}"
    # code lines fit the text column at a laptop's width (book/_static/mammossl.css wraps them)
    wide = tab.eval_on_selector_all("div.cell_input pre", """els => els.filter(e => e.scrollWidth > e.clientWidth + 1
        && e.offsetParent !== null).map(e => e.textContent.slice(0, 60))""")
    assert not wide, f"{page.name}: code wider than the column: {wide}"
    tab.screenshot(path=str(shots / f"{page.stem}.png"), full_page=False)
    # sphinx-book-theme and sphinx-thebe both declare THEBE_JS_URL: a theme quirk, not our content
    errors = [e for e in errors if "THEBE_JS_URL" not in e]
    assert not errors, errors
    tab.close()


def _fits(tab, selector: str) -> list[str]:
    """The elements matching ``selector`` that reach past the right edge of the window (a reader would have to
    scroll sideways to see them)."""
    return tab.eval_on_selector_all(selector, """els => els.filter(e => e.getBoundingClientRect().right >
        window.innerWidth + 1).map(e => e.textContent.slice(0, 60))""")


def test_claims_page_shows_every_verdict_at_a_laptops_width(browser):
    page = BUILD / "chapters" / "claims.html"
    assert page.is_file()
    tab = browser.new_page(viewport={"width": 1300, "height": 900})
    tab.goto(page.as_uri())
    body = tab.inner_text("main")
    assert tab.locator("main table").count() == 3 and "Claim checks" in body
    assert any(v in body for v in ("holds", "not shown at this size", "contradicted"))
    # every verdict, interval and detail on screen without scrolling sideways, neither the window nor a table
    assert not _fits(tab, "main table td"), _fits(tab, "main table td")
    scrolls = tab.eval_on_selector_all("main table", """els => els.filter(e => e.scrollWidth > e.clientWidth + 1
        || e.parentElement.scrollWidth > e.parentElement.clientWidth + 1).map(e => e.textContent.slice(0, 60))""")
    assert not scrolls, scrolls
    tab.screenshot(path=str(Path(__file__).parent / "screenshots" / "claims.png"), full_page=True)
    tab.close()


def test_chapter_4_formula_renders_and_code_fits(browser):
    page = BUILD / "chapters" / "04_whole_image.html"
    tab = browser.new_page(viewport={"width": 1300, "height": 900})
    tab.goto(page.as_uri())
    tab.wait_for_load_state("load")
    body = tab.inner_text("main")
    assert "Vert" not in body, "a formula shows as TeX source"
    assert tab.locator("mjx-container").count() >= 1, "MathJax rendered nothing"
    tab.screenshot(path=str(Path(__file__).parent / "screenshots" / "04_formula.png"), full_page=False)
    tab.close()


def test_seeds_page_has_the_book_seed_column(browser):
    page = BUILD / "chapters" / "seeds.html"
    assert page.is_file()
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.goto(page.as_uri())
    body = tab.inner_text("main")
    assert "Across dataset seeds" in body and "seed 0 (the book)" in body
    assert tab.locator("main table").count() == 1
    tab.close()
