"""The language-model experiments as a reader sees them in Chromium: the text a run wrote,
its special tokens, its attention maps and its text parameters, each compared with the
run's JSON. The live server trains the tiny model when it starts; a page that asks before
it is ready follows the model's training on the stream, then shows the run."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.test_journey import shot, watch_errors


def _unexpected(errors: list[str]) -> list[str]:
    """Console errors other than the 503 a run gets while the model still trains (the panel
    then follows the training on the stream)."""
    return [e for e in errors if "status of 503" not in e]


def _result(page: Any, query: str) -> dict[str, Any]:
    """The run's JSON (the page's own cached run by then), once the model is ready."""
    page.wait_for_function(
        "(q) => fetch('/api/demo?' + q).then((r) => r.status === 200)", arg=query
    )
    response = page.request.get(f"/api/demo?{query}")
    assert response.status == 200, response.text()
    body: dict[str, Any] = response.json()
    return body


def test_chat_template_shows_the_text_and_its_special_tokens(
    new_page: Callable[..., Any], output_dir: Path
) -> None:
    page = new_page(viewport={"width": 1280, "height": 1000})
    errors = watch_errors(page)
    page.goto("/terms/chat-template")
    page.locator("#demo").scroll_into_view_if_needed()
    expect(page.locator("#demo-experiment")).to_have_value("chat-template")
    samples = page.locator("#demo .sample")
    expect(samples.first).to_be_visible()
    result = _result(page, "preset=chat-template")
    assert result["samples"], result
    expect(samples).to_have_count(len(result["samples"]))
    for i, sample in enumerate(result["samples"]):
        item = samples.nth(i)
        expect(item.locator(".sample__label")).to_have_text(sample["label"])
        expect(item.locator(".sample__text")).to_have_text(sample["prompt"] + sample["text"])
        specials = [t for t in sample["tokens"] or [] if t.startswith("<|") and t.endswith("|>")]
        expect(item.locator(".token--special")).to_have_text(specials)
    templated = next(s for s in result["samples"] if s["variant"] == "with-template")
    assert any(t == "<|assistant|>" for t in templated["tokens"]), templated
    # the system prompt is a text field, with its length limit from the catalog
    system = page.locator("#demo-system")
    expect(system).to_have_value(result["config"]["system"])
    assert int(system.get_attribute("maxlength") or 0) == 200
    shot(page, output_dir, "demo-chat-template")
    assert not _unexpected(errors), errors


def test_attention_maps_are_drawn_from_the_run(
    new_page: Callable[..., Any], output_dir: Path
) -> None:
    page = new_page(viewport={"width": 390, "height": 844}, color_scheme="dark")
    errors = watch_errors(page)
    page.goto("/terms/self-attention")
    page.locator("#demo").scroll_into_view_if_needed()
    maps = page.locator("#demo table.heatmap")
    expect(maps.first).to_be_visible()
    result = _result(page, "preset=attention-maps")
    heatmaps = [c for c in result["charts"] if c["kind"] == "heatmap"]
    assert len(heatmaps) >= 2, [c["id"] for c in result["charts"]]
    expect(maps).to_have_count(len(heatmaps))
    first = heatmaps[0]
    table = page.locator(f'#demo table[data-heatmap="{first["id"]}"]')
    rows = first["grid"]["z"]
    assert rows and rows[0], first
    expect(table.locator("tbody tr")).to_have_count(len(rows))
    expect(table.locator("tbody tr").last.locator("td")).to_have_count(len(rows[-1]))
    # each cell shows its weight from the JSON: the first row (causal) sees only itself
    assert rows[0][0] == 1.0 and not any(rows[0][1:]), rows[0]
    first_row = table.locator("tbody tr").first.locator("td")
    expect(first_row.nth(0)).to_have_attribute("title", "1")
    expect(first_row.nth(1)).to_have_attribute("title", "0")
    second = rows[1][0]
    expect(table.locator("tbody tr").nth(1).locator("td").first).to_have_attribute(
        "title", f"{second:.3g}"
    )
    shot(page, output_dir, "demo-attention-phone-dark")
    assert not _unexpected(errors), errors
