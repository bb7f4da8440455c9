"""The console in a real headless browser (Debian's chromium + chromium-driver, via Selenium).

The app is served on 127.0.0.1 by a werkzeug server thread; calls are driven through the same
app by ivr.telephony.simulator, exactly as Twilio would. Screenshots of each page go to
build/console-screenshots/ (emptied when this module starts): look at them after a run.
Off CI a machine without chromium skips these tests; on CI (CI=true) it fails them.
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from console_helpers import PASSWORD, add_users, console_config, queued_call, transferred_call

ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "build" / "console-screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage"]

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        pytest.fail("chromium and chromium-driver are required on CI (.ci/run installs them)", pytrace=False)
    pytest.skip("chromium/chromium-driver not installed (apt-get install chromium chromium-driver)",
                allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,  # noqa: E402
                                        WebDriverException)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def screenshots():
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    yield SHOTS


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,900")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def app_config(app_config, tmp_path):
    return console_config(app_config, tmp_path)


@pytest.fixture
def server(app):
    add_users(app)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


@pytest.fixture
def page(browser, server):
    browser.delete_all_cookies()
    browser.set_window_size(1280, 900)
    return Page(browser, server)


class Page:
    """The browser on the console: sign in, go to a path, read, screenshot."""

    def __init__(self, driver, base: str) -> None:
        self.driver, self.base = driver, base

    def go(self, path: str) -> None:
        self.driver.get(self.base + path)

    def login(self, username: str, password: str = PASSWORD) -> None:
        self.go("/console/login")
        self.driver.find_element(By.NAME, "username").send_keys(username)
        self.driver.find_element(By.NAME, "password").send_keys(password)
        self.driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        self.wait_for(lambda d: "/console/login" not in d.current_url or "Wrong" in self.text())

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def wait_for(self, condition, timeout: float = 30):
        # A generous limit: a shared CI machine can be slow. Elements of the page being replaced
        # (a form was posted) go stale while we look: look again. Chromium reports an element
        # found just before the new page replaced the old one either as stale or, under load, as
        # an "unhandled inspector error" (a plain WebDriverException): both mean look again.
        def settled(driver):
            try:
                return condition(driver)
            except WebDriverException as exc:
                if "does not belong to the document" in str(exc) or "No node with given id" in str(exc):
                    raise StaleElementReferenceException(str(exc)) from exc
                raise

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                             ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(settled)

    def shot(self, name: str) -> Path:
        path = SHOTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def set_value(self, element, value: str) -> None:
        # Typing a 40 kB file key by key takes minutes; a person pastes it.
        self.driver.execute_script("arguments[0].value = arguments[1];", element, value)

    def fits_width(self) -> bool:
        wide = self.driver.execute_script(
            "var w = window.innerWidth; return Array.from(document.querySelectorAll('body *'))"
            ".filter(function (e) { var r = e.getBoundingClientRect(); return r.right > w + 1 && !e.closest('.table-wrap'); })"
            ".map(function (e) { return e.tagName + '.' + e.className + '#' + e.id; }).slice(0, 5);")
        assert not wide, f"wider than the screen: {wide}"
        return True


def test_login_by_keyboard_and_roles(page, client):
    for sentence in ("I want to report a pothole on Main Street", "there is a broken water main flooding my street",
                     "the streetlight on my corner is out"):
        transferred_call(client, sentence).dial_ends("completed", duration=60)
    waited = queued_call(client)
    waited.queue_ends("bridged", queue_time=45)
    page.go("/console/login")
    page.shot("login")
    focused = page.driver.switch_to.active_element      # the form starts in the username box
    assert focused.get_attribute("name") == "username"
    outline = page.driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle;")
    assert outline != "none"              # visible focus
    focused.send_keys("alice", Keys.TAB)
    page.driver.switch_to.active_element.send_keys(PASSWORD, Keys.ENTER)
    page.wait_for(lambda d: d.current_url.endswith("/console/queue"))
    page.driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    assert page.driver.switch_to.active_element.get_attribute("class") == "skip"   # "Skip to content" first
    nav = page.driver.find_element(By.CSS_SELECTOR, "header nav").text
    assert "Queue" in nav and "Reports" not in nav and "Rules" not in nav
    page.go("/console/reports")
    assert "Not allowed" in page.text()
    page.shot("agent-refused-reports")
    page.driver.find_element(By.CSS_SELECTOR, "form.logout button").click()
    page.wait_for(lambda d: "/console/login" in d.current_url)
    page.login("sam")
    page.go("/console/reports")
    assert "Containment" in page.text() and "4 calls" in page.text()
    assert page.driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.bar")
    page.shot("reports")
    page.go("/console/rules")
    assert "Not allowed" in page.text()


def test_wrong_password_is_refused(page):
    page.login("alice", "not the password")
    assert "Wrong username or password" in page.text() and "/console/login" in page.driver.current_url


def test_queue_updates_without_reload_and_screen_pop(page, client):
    page.login("alice")                   # alice's line is +1 312 555 0101 (roads)
    page.go("/console/queue")
    assert "No one is waiting" in page.text()
    page.driver.execute_script("window.notReloaded = true;")
    sim = queued_call(client)
    enqueued = time.monotonic()
    page.wait_for(lambda d: "parking ticket" in d.find_element(By.ID, "queue").text)
    print(f"queue page showed the caller {time.monotonic() - enqueued:.2f} s after the <Enqueue>")
    assert page.driver.execute_script("return window.notReloaded === true;")
    row = page.driver.find_element(By.CSS_SELECTOR, f"tr[data-sid='{sim.sid}']").text
    assert "Parking Services" in row and "+1******0123" in row and "parking_ticket" in row
    page.shot("queue")
    page.driver.set_window_size(390, 844)
    assert page.fits_width()
    page.shot("queue-phone")
    page.driver.set_window_size(1280, 900)
    # A pothole call is transferred to the roads line; alice answers: her screen pops.
    pothole = transferred_call(client)
    pothole.whisper()
    pop = page.wait_for(lambda d: d.find_element(By.ID, "pop") if d.find_element(By.ID, "pop").is_displayed() else False)
    assert "pothole" in pop.text and "Streets and Roads" in pop.text and "+1******0123" in pop.text
    assert page.driver.switch_to.active_element.get_attribute("id") == "pop-link"
    page.shot("screen-pop")
    sim.queue_ends("hangup", queue_time=30)
    page.wait_for(lambda d: "No one is waiting" in d.find_element(By.ID, "queue").text)
    assert page.driver.execute_script("return window.notReloaded === true;")


def test_call_story_and_feedback(page, client):
    sim = transferred_call(client)
    sim.dial_ends("completed", duration=42)
    page.login("alice")
    page.go("/console/calls?q=pothole")
    page.shot("calls")
    page.driver.find_element(By.LINK_TEXT, page.driver.find_element(By.CSS_SELECTOR, "tbody tr td a").text).click()
    page.wait_for(lambda d: "/console/calls/" in d.current_url)
    story = page.driver.find_element(By.ID, "story").text
    assert "Briefly, what are you calling about?" in story
    assert "I want to report a pothole on Main Street" in story and "speech confidence 92 %" in story
    assert "Decided: transfer" in story
    assert "transferred" in page.driver.find_element(By.ID, "outcome").text
    assert "+13125550123" not in page.text()
    page.shot("call-story")
    Select(page.driver.find_element(By.ID, "correct_department")).select_by_visible_text("Water and Sewer")
    page.driver.find_element(By.ID, "note").send_keys("caller meant a sewer cave-in")
    page.driver.find_element(By.CSS_SELECTOR, "button[value=wrong]").click()
    page.wait_for(lambda d: "Saved: wrong department" in d.find_element(By.TAG_NAME, "body").text)
    assert "wrong department → Water and Sewer" in page.text()
    page.shot("call-feedback")
    page.driver.set_window_size(390, 844)
    assert page.fits_width()
    page.shot("call-story-phone")


def test_csrf_refusal_in_the_browser(page, client, app):
    sim = transferred_call(client)
    page.login("alice")
    page.go(f"/console/calls/{sim.sid}")
    # A form whose token is gone (a forged cross-site post looks like this) is refused.
    page.driver.execute_script(
        "document.querySelectorAll('input[name=csrf_token]').forEach(function (e) { e.value = 'forged'; });")
    Select(page.driver.find_element(By.ID, "correct_department")).select_by_visible_text("Water and Sewer")
    page.driver.find_element(By.CSS_SELECTOR, "button[value=wrong]").click()
    page.wait_for(lambda d: "Form refused" in d.find_element(By.TAG_NAME, "body").text)
    assert "Nothing was changed" in page.text()
    page.shot("csrf-refused")
    from ivr.store import db
    from ivr.store.console import Feedback
    with app.app_context():
        assert db.session().query(Feedback).count() == 0


def test_rules_editor_refuses_broken_applies_good_and_rolls_back(page, client, app):
    rules_file = Path(app.config["IVR_RULES_PATH"])
    original = rules_file.read_text()
    page.login("ada")
    page.go("/console/rules")
    page.shot("rules")
    textarea = page.driver.find_element(By.NAME, "rules")
    broken = original.replace('line: "+1 312 555 0101"', 'line: "call roads"', 1)
    page.set_value(textarea, broken)
    page.driver.find_element(By.CSS_SELECTOR, "form.editor button[type=submit]").click()
    problems = page.wait_for(lambda d: d.find_element(By.ID, "problems"))
    line = original.splitlines().index('    line: "+1 312 555 0101"') + 1
    assert f"routing_rules.yaml:{line}:" in problems.text
    assert rules_file.read_text() == original
    page.shot("rules-refused")
    problems.find_element(By.TAG_NAME, "a").click()   # selects the offending line in the text
    selected = page.driver.execute_script(
        "var e = document.getElementById('editor'); return e.value.substring(e.selectionStart, e.selectionEnd);")
    assert "call roads" in selected
    good = original.replace('line: "+1 312 555 0101"', 'line: "+1 312 555 0177"', 1)
    page.set_value(page.driver.find_element(By.NAME, "rules"), good)
    page.driver.find_element(By.ID, "note").send_keys("roads desk moved")
    page.driver.find_element(By.CSS_SELECTOR, "form.editor button[type=submit]").click()
    page.wait_for(lambda d: "Saved as version" in d.find_element(By.TAG_NAME, "body").text)
    assert transferred_call(client).find("Dial/Number").text == "+13125550177"   # the next call
    versions = page.driver.find_element(By.ID, "versions").text
    assert "ada" in versions and "roads desk moved" in versions and "(file)" in versions
    page.shot("rules-saved")
    # Try it: what the line would do now.
    page.driver.find_element(By.ID, "try-sentence").send_keys("my trash was not picked up")
    page.driver.find_element(By.CSS_SELECTOR, "#try button[type=submit]").click()
    result = page.wait_for(lambda d: d.find_element(By.ID, "try-result"))
    assert "Sanitation" in result.text
    page.shot("rules-try-it")
    # Roll back to what was served before the first edit.
    page.driver.find_element(By.CSS_SELECTOR, "#versions li:last-child button").click()
    page.wait_for(lambda d: "Rolled back" in d.find_element(By.TAG_NAME, "body").text)
    assert rules_file.read_text() == original
    assert transferred_call(client).find("Dial/Number").text == "+13125550101"
    page.shot("rules-rolled-back")


def test_other_pages_render_for_screenshots(page, client, app):
    sim = queued_call(client)
    sim.queue_ends("leave")
    sim.record(duration=11)
    page.login("ada")
    for name, path in (("work", "/console/work"), ("prompts", "/console/prompts/en"), ("users", "/console/users")):
        page.go(path)
        assert "Not allowed" not in page.text() and page.fits_width()
        page.shot(name)
    page.go("/console/work")
    page.driver.find_element(By.LINK_TEXT, "Open").click()
    page.wait_for(lambda d: "/console/work/" in d.current_url)
    page.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()   # Claim
    page.wait_for(lambda d: "Claimed" in d.find_element(By.TAG_NAME, "body").text)
    assert page.driver.find_element(By.ID, "number").text == "+13125550123"
    page.shot("work-item-claimed")


def test_service_request_list_and_page_close_with_a_note(page, app):
    from ivr import rules_source
    from ivr.routing.services import service_for_intent
    from ivr.store import db, service_requests

    with app.app_context():
        s = db.session()
        made = service_requests.create(
            s, source_key="sms:SMbrowser", channel="sms", service=service_for_intent(rules_source.current_rules(), "pothole"),
            description="a deep pothole by the school", address="12 Elm Street", lat=None, long=None, language="en",
            contact_phone="+13125550177", contact_email=None, text_consent=False)
        s.commit()
    page.login("alice")
    page.go("/console/requests")
    assert "12 Elm Street" in page.text() and "+13125550177" not in page.text()
    page.shot("requests")
    page.driver.find_element(By.LINK_TEXT, made.case_number).click()
    page.wait_for(lambda d: f"/console/requests/{made.case_number}" in d.current_url)
    page.driver.find_element(By.ID, "note").send_keys("filled this morning")
    page.driver.find_element(By.XPATH, "//button[@name='status' and @value='closed']").click()
    page.wait_for(lambda d: "closed — filled this morning" in d.find_element(By.ID, "status").text)
    page.driver.set_window_size(390, 844)           # a phone
    assert page.fits_width()
    page.shot("request-closed-phone")
