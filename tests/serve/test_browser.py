"""The chat page in headless Chromium (Playwright driving Debian's /usr/bin/chromium): it loads, sends a message,
streams the thinking live and then the answer, collapses the thinking, stops a generation, and leaves screenshots
in artifacts/serve/ (or $QWQ_ARTIFACTS_DIR).

Skipped, with the reason, where Playwright or Chromium is missing; CI installs both (apt-get install chromium,
pip install playwright; never `playwright install`)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from pathlib import Path

import pytest

from chat_model import ADD_QUESTION, LONG_QUESTION
from serve_helpers import live_server, wait_idle

CHROMIUM = os.environ.get("QWQ_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
TOKEN_DELAY_S = 0.015  # the tiny model is too fast to watch: pace its events like a real model's

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

pytestmark = [
    pytest.mark.skipif(sync_playwright is None, reason="Python package 'playwright' is not installed "
                                                       "(pip install playwright)"),
    pytest.mark.skipif(not (Path(CHROMIUM).is_file() or shutil.which("chromium")),
                       reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"),
]


class PacedEngine:
    """An AsyncEngine stand-in that hands out the real engine's events at a human-visible pace."""

    def __init__(self, inner, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def generate(self, *args, **kwargs):
        async for event in self.inner.generate(*args, **kwargs):
            await asyncio.sleep(self.delay_s)
            yield event


@pytest.fixture(scope="module")
def page_url(serve_ctx):
    from qwq.serve.app import create_app

    paced = dataclasses.replace(serve_ctx, aengine=PacedEngine(serve_ctx.aengine, TOKEN_DELAY_S),
                                metrics=type(serve_ctx.metrics)())
    with live_server(create_app(paced), lifespan="off") as url:
        yield url, paced


@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("QWQ_ARTIFACTS_DIR", REPO / "artifacts")) / "serve"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def page(page_url):
    executable = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 760})
            errors = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            # record what the assistant message looked like after every DOM change: proof of streaming
            page.add_init_script("""
                window.__frames = [];
                new MutationObserver(() => {
                  const m = document.querySelector('.message.assistant:last-of-type');
                  if (!m) return;
                  window.__frames.push({thinking: m.querySelector('.thinking-text').textContent.length,
                                        answer: m.querySelector('.answer').textContent.length,
                                        live: m.querySelector('.thinking').classList.contains('live')});
                }).observe(document, {subtree: true, childList: true, characterData: true, attributes: true});
            """)
            page.goto(page_url[0])
            yield page
            assert not errors, errors
        finally:
            browser.close()


def send(page, text: str) -> None:
    page.fill("#input", text)
    page.click("#send")


def test_chat_page_streams_thinking_then_answer_and_collapses(page, artifacts):
    expect(page.locator("#status")).to_have_text("ready", timeout=15000)
    expect(page.locator("#model")).to_have_text("tiny-chat")
    send(page, LONG_QUESTION)
    thinking = page.locator(".message.assistant .thinking")
    expect(thinking).to_be_visible(timeout=15000)
    expect(page.locator(".message.assistant .thinking-text")).to_contain_text("Still thinking")
    expect(page.locator("#stop")).to_be_enabled()
    page.screenshot(path=str(artifacts / "chat_streaming.png"))
    expect(page.locator(".message.assistant")).to_have_attribute("data-done", "yes", timeout=30000)

    answer = page.locator(".message.assistant .answer")
    expect(answer).to_have_text("Done.")
    frames = page.evaluate("window.__frames")
    thinking_lengths = sorted({f["thinking"] for f in frames if f["answer"] == 0 and f["thinking"] > 0})
    assert len(thinking_lengths) >= 10, "the thinking did not arrive in pieces"
    assert any(f["live"] and f["answer"] == 0 for f in frames), "thinking never shown live before the answer"
    assert len({f["answer"] for f in frames}) >= 2
    stats = page.locator(".message.assistant .stats").inner_text()
    assert "tokens" in stats and "thinking" in stats and "tok/s" in stats, stats
    expect(page.locator("#stop")).to_be_disabled()

    thinking_text = page.locator(".message.assistant .thinking-text")
    expect(thinking_text).to_be_visible()
    page.click(".message.assistant .thinking summary")
    assert page.eval_on_selector(".message.assistant .thinking", "el => el.open") is False
    expect(thinking_text).to_be_hidden()
    expect(answer).to_be_visible()

    # a second turn: the conversation stays in the page and goes back to the server
    send(page, ADD_QUESTION)
    expect(page.locator(".message.assistant").nth(1)).to_have_attribute("data-done", "yes", timeout=30000)
    expect(page.locator(".message.assistant").nth(1).locator(".answer")).to_have_text("The answer is 5.")
    assert page.locator(".message.user").count() == 2
    page.click(".message.assistant >> nth=1 >> .thinking summary")
    page.screenshot(path=str(artifacts / "chat_collapsed.png"))
    assert (artifacts / "chat_collapsed.png").stat().st_size > 10_000


def test_stop_button_aborts_the_generation(page, page_url, artifacts):
    url, ctx = page_url
    expect(page.locator("#status")).to_have_text("ready", timeout=15000)
    page.click("#toggle-settings")
    page.fill("#max_tokens", "400")
    # ban the end-of-turn tokens so the answer would run 400 tokens (several seconds at the paced rate)
    eos = {str(t): -100 for t in ctx.engine.eos_token_ids}

    def add_bias(route):
        import json

        body = json.loads(route.request.post_data)
        body["logit_bias"] = eos
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/chat/completions", add_bias)
    send(page, "Tell me a long story.")
    expect(page.locator(".message.assistant .thinking-text")).not_to_be_empty(timeout=15000)
    page.click("#stop")
    expect(page.locator(".message.assistant")).to_have_attribute("data-done", "stopped", timeout=10000)
    assert "stopped" in page.locator(".message.assistant .stats").inner_text()
    expect(page.locator("#send")).to_be_enabled()
    wait_idle(ctx.engine)
    assert _aborted_soon(ctx), "the server did not abort the stopped generation"
    page.screenshot(path=str(artifacts / "chat_stopped.png"))


def _aborted_soon(ctx, timeout_s: float = 10.0) -> bool:
    import time

    for _ in range(int(timeout_s / 0.05)):
        if ctx.metrics.aborted >= 1 and ctx.metrics.in_flight == 0:
            return True
        time.sleep(0.05)
    return False
