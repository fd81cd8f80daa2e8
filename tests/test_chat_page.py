"""The chat page in a real browser: Debian's headless Chromium (Selenium through Debian's
chromium-driver, see tests/browser.py) against a real server with an API key and a small
indexed notes folder. The page asks for the key, streams an answer with its sources and
plan, stops a long answer (and one still waiting for its turn), shows the server's errors
and its loading state, keeps conversations across a reload, and fits a phone.

The tests share one browser and run in file order. Screenshots go to the test's temporary
folder; ``ASSISTANT_SCREENSHOTS=docs`` also writes them where the README shows them."""
from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.browser import Browser, require_browser
from tests.helpers import REPO_ROOT, ServerProcess, indexed_server

pytestmark = pytest.mark.slow

KEY = "page-test-key"
NOTES = {
    "dentist.md": "# Dentist\n\nMy dentist is Dr. Raman at the Lindenhof clinic.\nAppointments on Tuesdays.\n",
    "bike.md": "# Bike\n\n## Parking\nThe blue bike is parked in rack 14 in the basement.\n",
    "garden.md": "# Garden\n\nThe tomatoes grow in the south bed and need water every evening.\n",
}
# SmolLM2's <|endoftext|> (0) and <|im_end|> (2) banned: the answer cannot end by itself
ENDLESS = {"max_tokens": 900, "temperature": 1.0, "logit_bias": {"0": -100, "2": -100}}
SHORT = {"max_tokens": 40, "temperature": 0.0}
LAST_ANSWER = "return [...document.querySelectorAll('.message.assistant')].pop() || null"


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    require_browser()  # before the server and the index: a skip costs nothing
    with indexed_server(tmp_path_factory, "page", "--api-key", KEY, "--queue-size", "2", "--n-ctx", "2048",
                        notes=NOTES) as served:
        yield served


@pytest.fixture(scope="module")
def browser(page_server):
    browser = Browser()
    browser.viewport(1280, 800)
    try:
        yield browser
    finally:
        browser.quit()


def page_url(server: ServerProcess, debug: bool = True) -> str:
    # / as a person opens it (a browser asks for text/html); ?debug shows the "request
    # extras" box the Stop tests use to ask for an endless answer
    return f"{server.base_url}/" + ("?debug" if debug else "")


def health(server: ServerProcess) -> dict:
    return httpx.get(f"{server.base_url}/health", timeout=10).json()


def wait_for(driver, script: str, *args, timeout: float = 60):
    """Poll a JavaScript expression until it is truthy; returns its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script, *args))


def wait_health(server: ServerProcess, ok, timeout: float) -> tuple[dict, float]:
    """Poll /health until ``ok(body)``; returns the body and the seconds it took."""
    started = time.monotonic()
    body = health(server)
    while not ok(body) and time.monotonic() - started < timeout:
        time.sleep(0.05)
        body = health(server)
    return body, time.monotonic() - started


def set_extras(driver, extras: dict) -> None:
    driver.execute_script("document.getElementById('debug-extras').value = arguments[0]", json.dumps(extras))


def pick(driver, select_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", select_id)).select_by_value(value)


def ask(driver, text: str) -> None:
    driver.find_element("id", "prompt").send_keys(text)
    driver.find_element("id", "send").click()


def wait_answer_done(driver, timeout: float = 120):
    return wait_for(driver, f"const m = (() => {{ {LAST_ANSWER} }})(); return m && !m.classList.contains('pending') && m",
                    timeout=timeout)


def test_asks_for_the_key_and_streams_an_answer_with_sources_and_plan(page_server, browser):
    server, notes = page_server
    driver = browser.driver
    driver.get(page_url(server))
    # /v1/models answered 401: the page asks for the key, then keeps it
    wait_for(driver, "return document.getElementById('key-dialog').open")
    driver.find_element("id", "key-input").send_keys(KEY + "\n")
    wait_for(driver, "return document.getElementById('server-status').dataset.state === 'ready'")
    wait_for(driver, "return document.querySelector('#model-picker option[value=\"smollm2-135m-instruct\"]')")
    assert driver.execute_script("return localStorage.getItem('assistant.apiKey')") == KEY
    pick(driver, "strategy-picker", "rag")
    set_extras(driver, SHORT)
    ask(driver, "Who is my dentist?")
    answer = wait_answer_done(driver)
    assert answer.find_element("css selector", ".content").text.strip()
    sources = answer.find_element("css selector", "details.sources")
    plan = answer.find_element("css selector", "details.plan")
    assert sources.get_attribute("open") is None and plan.get_attribute("open") is None  # folded
    sources.find_element("tag name", "summary").click()
    first = sources.find_element("css selector", ".source-link")
    assert first.text.startswith(str(notes / "dentist.md")) and "Dentist" in first.text and "lines 1" in first.text
    first.click()  # the passage, read back from the index
    passage = wait_for(driver, "return document.querySelector('details.sources .passage:not(:empty)')")
    wait_for(driver, "return !arguments[0].textContent.startsWith('loading')", passage)
    assert "Dr. Raman at the Lindenhof clinic" in passage.text
    plan.find_element("tag name", "summary").click()
    assert "strategy\nrag" in plan.text and "model\nsmollm2-135m-instruct" in plan.text
    assert "backend\ncpu" in plan.text and "difficulty" in plan.text and "adapter" in plan.text


def test_stop_ends_a_long_answer_on_the_server(page_server, browser):
    server, _ = page_server
    driver = browser.driver
    before = health(server)["cancelled_generations"]
    set_extras(driver, ENDLESS)
    ask(driver, "Count from one to one thousand in words.")
    content = wait_for(driver, f"const m = (() => {{ {LAST_ANSWER} }})(); "
                               "return m.classList.contains('pending') && m.querySelector('.content').textContent && m")
    shown = len(content.text)
    # token by token: the text grows while the answer is still being written
    wait_for(driver, "return arguments[0].classList.contains('pending') && "
                     "arguments[0].querySelector('.content').textContent.length > arguments[1]", content, shown + 5)
    driver.find_element("id", "stop").click()
    body, seconds = wait_health(server, lambda b: b["requests_in_progress"] == 0
                                and b["cancelled_generations"] == before + 1, timeout=5)
    assert body["requests_in_progress"] == 0 and body["cancelled_generations"] == before + 1, body
    assert seconds < 2.0, f"the server stopped generating {seconds:.1f} s after Stop"
    wait_for(driver, "return !arguments[0].classList.contains('pending')", content)
    assert content.find_element("css selector", ".message-state").text == "stopped"
    assert driver.find_element("id", "send").is_displayed() and not driver.find_element("id", "stop").is_displayed()


def test_stop_before_the_first_token_leaves_the_queue(page_server, browser):
    server, _ = page_server
    driver = browser.driver
    release = threading.Event()

    def hold_the_model():  # another client generating: the page's request has to wait
        body = {"messages": [{"role": "user", "content": "Count to one thousand."}], "stream": True, **ENDLESS}
        with httpx.stream("POST", f"{server.base_url}/v1/chat/completions", json=body, timeout=120,
                          headers={"Authorization": f"Bearer {KEY}"}) as response:
            for _ in response.iter_lines():
                if release.is_set():
                    return

    holder = threading.Thread(target=hold_the_model, daemon=True)
    holder.start()
    try:
        wait_health(server, lambda b: b["requests_in_progress"] == 1, timeout=30)
        before = health(server)["abandoned_in_queue"]
        set_extras(driver, SHORT)
        ask(driver, "Where is the blue bike parked?")
        waiting, _ = wait_health(server, lambda b: b["requests_waiting"] == 1, timeout=10)
        assert waiting["requests_waiting"] == 1
        assert driver.execute_script(LAST_ANSWER).find_element("css selector", ".message-state").text == \
            "waiting for the model…"
        driver.find_element("id", "stop").click()
        body, seconds = wait_health(server, lambda b: b["requests_waiting"] == 0
                                    and b["abandoned_in_queue"] == before + 1, timeout=5)
        assert body["abandoned_in_queue"] == before + 1 and seconds < 2.0, body
    finally:
        release.set()
        holder.join(timeout=30)
    answer = driver.execute_script(LAST_ANSWER)
    assert answer.find_element("css selector", ".message-state").text == "stopped"
    assert answer.find_element("css selector", ".content").text == ""
    body, _ = wait_health(server, lambda b: b["requests_in_progress"] == 0, timeout=10)
    assert body["requests_in_progress"] == 0


def test_errors_are_shown_as_the_server_gave_them(page_server, browser):
    server, _ = page_server
    driver = browser.driver
    request = {"messages": [{"role": "user", "content": "Hello"}], "strategy": "adapter", "max_tokens": 4}
    expected = httpx.post(f"{server.base_url}/v1/chat/completions", json=request, timeout=60,
                          headers={"Authorization": f"Bearer {KEY}"}).json()["error"]["message"]
    pick(driver, "strategy-picker", "adapter")
    ask(driver, "Hello")
    notice = wait_for(driver, "const n = document.getElementById('notice'); return !n.hidden && n")
    assert notice.text == expected
    answer = wait_answer_done(driver)
    assert answer.find_element("css selector", ".message-error").text == expected
    pick(driver, "strategy-picker", "rag")


def test_the_loading_state_is_visible(page_server, browser):
    server, _ = page_server
    driver = browser.driver
    # /health answering 503 as it does while the model loads (loading is too quick to catch)
    fake = driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": """
        const realFetch = window.fetch;
        window.fetch = (url, options) => String(url).endsWith('/health')
          ? Promise.resolve(new Response('{"status": "loading", "error": null}', {status: 503}))
          : realFetch(url, options);"""})
    try:
        driver.get(page_url(server))
        status = wait_for(driver, "const s = document.getElementById('server-status'); "
                                  "return s.dataset.state === 'loading' && s")
        assert status.text == "model loading…"
        assert not driver.find_element("id", "send").is_enabled()
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": fake["identifier"]})


def test_a_reload_finds_the_conversation(page_server, browser):
    server, notes = page_server
    driver = browser.driver
    driver.get(page_url(server))
    wait_for(driver, "return document.getElementById('server-status').dataset.state === 'ready'")
    assert not driver.execute_script("return document.getElementById('key-dialog').open")  # the key was kept
    titles = [item.text for item in driver.find_elements("css selector", ".conversation-link")]
    assert titles == ["Who is my dentist?"]
    texts = [m.find_element("css selector", ".content").text for m in driver.find_elements("css selector", ".message")]
    assert texts[0] == "Who is my dentist?" and texts[1].strip()
    assert "Count from one to one thousand in words." in texts
    states = [m.text for m in driver.find_elements("css selector", ".message-state")]
    assert states.count("stopped") == 2
    first_answer = driver.find_elements("css selector", ".message.assistant")[0]
    assert str(notes / "dentist.md") in first_answer.find_element("css selector", "details.sources").get_attribute(
        "textContent")


def test_conversations_are_renamed_imported_and_deleted(page_server, browser, tmp_path):
    driver = browser.driver
    driver.find_element("id", "rename-conversation").click()
    prompt = driver.switch_to.alert
    prompt.send_keys("Dentist and bike")
    prompt.accept()
    wait_for(driver, "return document.getElementById('conversation-title').textContent === 'Dentist and bike'")
    exported = json.loads(driver.execute_script(
        "return localStorage.getItem('assistant.conversations.v1')"))["conversations"]
    imported = {**exported[0], "title": "Imported chat"}
    (tmp_path / "export.json").write_text(json.dumps({"format": "assistant-conversations", "version": 1,
                                                       "conversations": [imported]}))
    driver.find_element("id", "import-conversations").send_keys(str(tmp_path / "export.json"))
    wait_for(driver, "return document.getElementById('conversation-title').textContent === 'Imported chat'")
    assert len(driver.find_elements("css selector", ".conversation-link")) == 2
    driver.find_element("id", "delete-conversation").click()
    driver.switch_to.alert.accept()
    wait_for(driver, "return document.querySelectorAll('.conversation-link').length === 1")
    assert driver.find_element("id", "conversation-title").text == "Dentist and bike"


def test_the_notes_panel_lists_and_searches_the_notes(page_server, browser):
    server, notes = page_server
    driver = browser.driver
    driver.find_element("id", "toggle-notes").click()
    summary = wait_for(driver, "const s = document.getElementById('notes-summary'); "
                               "return s.textContent.includes('documents') && s")
    assert summary.text.startswith("3 documents, 3 passages; last indexed ")
    assert driver.find_element("css selector", "#notes-sources .path").text == str(notes)
    driver.find_element("id", "notes-query").send_keys("blue bike rack\n")
    hit = wait_for(driver, "return document.querySelector('#notes-results details')")
    assert hit.find_element("tag name", "summary").text.startswith(str(notes / "bike.md"))
    hit.find_element("tag name", "summary").click()
    assert "rack 14" in hit.find_element("css selector", ".passage").text
    driver.find_element("id", "close-notes").click()


def screenshot(browser: Browser, name: str, folder: Path) -> Path:
    path = folder / name
    browser.driver.save_screenshot(str(path))
    wanted = os.environ.get("ASSISTANT_SCREENSHOTS")
    if wanted:
        target = Path(wanted) if Path(wanted).is_absolute() else REPO_ROOT / wanted
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def show_sources_of_the_last_answer(driver) -> None:
    answer = wait_answer_done(driver)
    answer.find_element("css selector", "details.sources summary").click()
    answer.find_element("css selector", ".source-link").click()
    wait_for(driver, "const p = document.querySelector('.passage'); return p && !p.textContent.startsWith('loading')")


def test_a_conversation_with_sources_on_a_desktop_and_a_phone(page_server, browser, tmp_path):
    server, _ = page_server
    driver = browser.driver
    driver.find_element("id", "new-conversation").click()
    set_extras(driver, SHORT)
    ask(driver, "Which rack is the blue bike in?")
    wait_answer_done(driver)
    driver.get(page_url(server, debug=False))  # as a person sees it: no request extras box
    wait_for(driver, "return document.getElementById('server-status').dataset.state === 'ready'")
    show_sources_of_the_last_answer(driver)
    desktop = screenshot(browser, "chat-page-desktop.png", tmp_path)
    browser.viewport(390, 844, mobile=True)
    driver.get(page_url(server, debug=False))
    wait_for(driver, "return document.getElementById('server-status').dataset.state === 'ready'")
    # the conversation list folds away behind ☰ and nothing is wider than the phone
    assert not driver.find_element("id", "conversations").is_displayed()
    assert driver.execute_script("return document.documentElement.scrollWidth") <= 390
    assert driver.find_element("id", "send").is_displayed()
    show_sources_of_the_last_answer(driver)
    phone = screenshot(browser, "chat-page-phone.png", tmp_path)
    browser.viewport(1280, 800)
    assert desktop.stat().st_size < 400_000 and phone.stat().st_size < 400_000
    violations = [m for m in browser.console_errors() if "Content Security Policy" in m]
    assert not violations, violations
