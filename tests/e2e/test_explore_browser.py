"""The explorer page in a real browser: headless Chromium, driven by Selenium through chromedriver.

Skipped with the reason where Chromium, chromedriver or selenium is missing (CI installs them:
Debian's `chromium` and `chromium-driver`, and `selenium` from the dev extra). MINITRANSFORMER_SCREENSHOTS
names a folder to keep the screenshots in (default: the test's temporary folder).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO

from minitransformer import TransformerConfig, TransformerWithLMHead
from minitransformer.explore import write_page
from minitransformer.tokenization import Tokenizer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401

    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM),
        reason="needs headless Chromium, chromedriver and selenium "
        "(Debian: apt-get install chromium chromium-driver; pip install selenium)",
    ),
]

TEXTS = ["The cat sat on the mat.", "A dog."]


@pytest.fixture
def model() -> TransformerWithLMHead:
    torch.manual_seed(0)
    config = TransformerConfig(embed_dim=24, hidden_dim=40, num_heads=3, num_layers=2, vocab_size=600,
                               num_max_positions=16, norm_placement="pre", final_layer_norm=True)  # fmt: skip
    return TransformerWithLMHead(config).eval()


@pytest.fixture
def tokenizer() -> Tokenizer:
    return Tokenizer.from_file(REPO / "tests" / "data" / "tokenizer.json")


@pytest.fixture
def page(tmp_path, model, tokenizer) -> Path:
    """The page of a tiny causal model for two texts (the second one padded)."""
    return write_page(model, tokenizer, TEXTS, tmp_path / "explore.html")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def requested_urls(driver) -> list[str]:
    """Every URL the page asked the network stack for (from Chromium's DevTools performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver, tmp_path: Path, name: str) -> Path:
    folder = Path(os.environ.get("MINITRANSFORMER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, height + 40)
    path = folder / name
    assert driver.save_screenshot(str(path))
    return path


def test_page_renders_and_answers_to_head_choice_and_hover(page, browser, tmp_path, model, tokenizer):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    find = browser.find_element
    find_all = browser.find_elements
    browser.get(page.as_uri())
    assert find(By.TAG_NAME, "body").get_attribute("data-ready") == "1", "the page's script did not finish"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors

    # tokens and an SVG attention view of layer 0, head 0, the causal mask drawn as such
    tokens = find_all(By.CSS_SELECTOR, "#tokens .token")
    assert [t.text for t in find_all(By.CSS_SELECTOR, "#tokens .token .word")][:3] == ["The", "c", "##at"]
    n = len(tokens)
    view = find(By.ID, "attention-view")
    assert (view.get_attribute("data-layer"), view.get_attribute("data-head")) == ("0", "0")
    cells = find_all(By.CSS_SELECTOR, "#attention-matrix > rect")
    assert len(cells) == n * n
    assert sum(c.get_attribute("fill") == "url(#masked)" for c in cells) == n * (n - 1) // 2

    # layers and heads are numbered from 0 everywhere, as the tutorials print them
    assert [b.text for b in find_all(By.CSS_SELECTOR, "#layer-buttons button")] == ["0", "1"]
    assert [b.text for b in find_all(By.CSS_SELECTOR, "#head-buttons button")] == ["0", "1", "2", "all heads"]
    assert [c.text for c in find_all(By.CSS_SELECTOR, "#heads-table th")] == ["", "head 0", "head 1", "head 2",
                                                                               "layer 0", "layer 1"]  # fmt: skip
    # every head summary beside the uniform head's value on the same text
    uniform = find_all(By.CSS_SELECTOR, "#heads-table td .uniform")
    # the previous-token share of a uniform causal head: mean over t = 1..n-1 of 1/(t + 1)
    baseline = sum(1 / (t + 1) for t in range(1, n)) / (n - 1)
    assert len(uniform) == 6 and {u.text for u in uniform} == {f"({baseline:.2f})"}

    # choose layer 1, head 2: the view and the drawn weights change
    before = [
        line.get_attribute("stroke-opacity")
        for line in find_all(By.CSS_SELECTOR, "#attention-lines line.attn")
    ]
    find(By.CSS_SELECTOR, '#layer-buttons button[data-value="1"]').click()
    find(By.CSS_SELECTOR, '#head-buttons button[data-value="2"]').click()
    view = find(By.ID, "attention-view")
    assert (view.get_attribute("data-layer"), view.get_attribute("data-head")) == ("1", "2")
    after = [
        line.get_attribute("stroke-opacity")
        for line in find_all(By.CSS_SELECTOR, "#attention-lines line.attn")
    ]
    assert after != before
    assert find(By.CSS_SELECTOR, "#heads-table td.current").get_attribute("data-head") == "2"
    # the weight the page shows for a cell is the model's (to the byte it is stored in)
    with torch.no_grad():
        x = torch.tensor([tokenizer.encode(TEXTS[0])])
        expected = model.transformer(x, output_attentions=True).attentions[1][
            0, 2
        ]  # (T, T) of layer 1, head 2
    cells = find_all(By.CSS_SELECTOR, "#attention-matrix > rect")
    for i, j in [(3, 1), (5, 5), (n - 1, 0)]:
        shown = cells[i * n + j].find_element(By.TAG_NAME, "title").get_attribute("textContent")
        assert abs(float(shown.rsplit(": ", 1)[1]) - float(expected[i, j])) <= 0.5 / 255 + 1e-3, (i, j, shown)

    # hover token 3: where it attends (earlier tokens only: a causal model) and what attends to it
    assert not find_all(By.CSS_SELECTOR, "#tokens .token.attended")
    ActionChains(browser).move_to_element(find(By.CSS_SELECTOR, '#tokens .token[data-pos="3"]')).perform()
    attended = [
        int(t.get_attribute("data-pos")) for t in find_all(By.CSS_SELECTOR, "#tokens .token.attended")
    ]
    assert attended and max(attended) <= 3
    attending = [
        int(t.get_attribute("data-pos")) for t in find_all(By.CSS_SELECTOR, "#tokens .token.attending")
    ]
    assert attending and min(attending) > 3
    assert find_all(By.CSS_SELECTOR, "#attention-lines line.focus-out")
    assert {int(line.get_attribute("data-from")) for line in find_all(By.CSS_SELECTOR, "line.focus-out")} == {
        3
    }
    assert find_all(By.CSS_SELECTOR, "#attention-matrix rect.focus-row")
    assert "position 3" in find(By.ID, "predictions-title").text
    assert len(find_all(By.CSS_SELECTOR, "#predictions-table tr")) == 5  # the top 5 predictions
    assert 'Token "s" (position 3)' in find(By.ID, "residual-hint").text
    screenshot(browser, tmp_path, "explore-hover.png")

    # all heads as small multiples; clicking one opens it
    find(By.CSS_SELECTOR, '#head-buttons button[data-value="all"]').click()
    multiples = find_all(By.CSS_SELECTOR, "#attention-view .multiple canvas")
    assert len(multiples) == 3
    find(By.CSS_SELECTOR, '#attention-view .multiple[data-head="1"]').click()
    assert find(By.ID, "attention-view").get_attribute("data-head") == "1"

    # the second text is padded: padding tokens and masked padding columns are shown as such
    from selenium.webdriver.support.ui import Select

    Select(find(By.ID, "text-select")).select_by_value("1")
    pads = find_all(By.CSS_SELECTOR, "#tokens .token.pad")
    assert len(pads) == n - len(
        [t for t in find_all(By.CSS_SELECTOR, "#tokens .token") if "pad" not in t.get_attribute("class")]
    )
    assert pads and {p.find_element(By.CLASS_NAME, "word").text for p in pads} == {"[PAD]"}
    assert any(
        c.get_attribute("fill") == "url(#padding)"
        for c in find_all(By.CSS_SELECTOR, "#attention-matrix > rect")
    )

    # nothing was fetched from any host (the browser's own chrome:// pages aside): only the file itself
    urls = requested_urls(browser)
    assert page.as_uri() in urls
    assert not [u for u in urls if u.startswith(("http:", "https:", "ws:", "wss:", "ftp:"))], urls
    assert [u for u in urls if u.startswith("file:")] == [page.as_uri()]


def test_jupyter_display_runs_the_page_inside_its_iframe(page, browser, tmp_path):
    """What a notebook shows (`_repr_html_`) is an iframe whose page runs its script like the file does."""
    from selenium.webdriver.common.by import By

    from minitransformer.explore import Explorer

    data = json.loads(_embedded_json(page.read_text(encoding="utf-8")))
    notebook_cell = tmp_path / "cell.html"
    notebook_cell.write_text(f"<html><body>{Explorer(data)._repr_html_()}</body></html>", encoding="utf-8")
    browser.get(notebook_cell.as_uri())
    browser.switch_to.frame(browser.find_element(By.TAG_NAME, "iframe"))
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#attention-matrix > rect")) > 0


def _embedded_json(page: str) -> str:
    start = page.index('<script id="explorer-data" type="application/json">') + len(
        '<script id="explorer-data" type="application/json">'
    )
    return page[start : page.index("</script>", start)]
