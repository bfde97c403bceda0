#!/usr/bin/env python3
"""Drives the portal in headless Chromium (Selenium) and checks what only a browser shows.

    portal_browser.py SCENARIO --base URL --shots DIR [--username U --password P]

Run by PortalBrowserTests (Tests/BrokerServerTests/PortalBrowserTests.swift) with the tests'
venv Python (scripts/test.sh installs selenium==4.51.0 there) against a broker it starts. Exits
0 when every check holds; otherwise prints what failed (the assertion, the page's URL and title
and the first 2,000 characters of its source) and exits 1.

Scenarios:
  cookie_and_csp  sign in; the session cookie's flags; the security headers of /account as the
                  browser received them; no Content Security Policy violation in the console;
                  sign out: the cookie is gone and /account sends the browser to /signin.
  signup_and_request  sign up as carol at /signup, land on /account, ask to join org1 there.
  refusals        a non-member's 403 page at /orgs/org1, a forged CSRF token refused, a hostile
                  User-Agent shown as text. Screenshots of the 403, sign-out and CSRF pages.
  github_signin   sign in with GitHub: the code, approved at the fake GitHub's device page in a
                  second tab; the portal page refreshes itself onto /account.
  whole_flow      carol signs up and asks; the owner and admin (U) approves her on /orgs/org1;
                  with her page's snippet she gets a token (PyJWT verifies it); U disables her at
                  /admin; her browser and tokens are refused. Screenshots of /orgs and /admin.
  pages           at 360 and 1280 px: /signup, /signin and /account as DIR/<page>@<width>.png, neither
                  scrolls sideways, every field has a label; on /signin, TAB walks the skip link,
                  the username, the password and the submit button, each with a visible focus.

Nothing is downloaded: chromedriver and chromium are named explicitly and Selenium Manager is
kept offline (SE_OFFLINE). The chromedriver is $BROKER_TEST_CHROMEDRIVER, or /usr/bin/chromedriver.
"""

import argparse
import base64
import json
import math
import os
import re
import signal
import sys
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or a driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("BROKER_TEST_CHROMEDRIVER") or "/usr/bin/chromedriver"
HEIGHT = 800
WAIT = 15  # seconds for a navigation to land
SESSION_COOKIE = "__Host-broker_session"

# What every portal answer carries (docs/plans/issue-14-portal.md §3), names in lower case.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

# Every driver started, so that any way out (a failure, SIGTERM from the test's timeout) quits them.
DRIVERS = []


class Failure(Exception):
    """A check that did not hold, with the driver whose page it was about."""

    def __init__(self, driver, what):
        super().__init__(what)
        self.driver = driver
        self.what = what


def expect(driver, condition, what):
    if not condition:
        raise Failure(driver, what)


# MARK: - The browser


def driver(width):
    """A headless Chromium showing pages `width` CSS pixels wide, logging the network (for the
    response headers) and the console."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     f"--window-size={width},{HEIGHT}", "--lang=en-US"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    DRIVERS.append(browser)
    browser.set_page_load_timeout(30)
    set_width(browser, width)
    return browser


def quit_all():
    while DRIVERS:
        browser = DRIVERS.pop()
        try:
            browser.quit()
        except Exception:  # noqa: BLE001 (already gone)
            pass


def set_width(browser, width):
    """Lays the page out `width` pixels wide. Through CDP, because headless windows clamp small
    widths (a 360 px window comes out wider)."""
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})


def shot(browser, name, width, shots):
    """The whole page, `width` wide, as `shots/<name>@<width>.png`."""
    set_width(browser, width)
    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
    content = metrics.get("cssContentSize") or metrics["contentSize"]
    height = max(HEIGHT, math.ceil(content["height"]))
    image = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    path = Path(shots) / f"{name}@{width}.png"
    path.write_bytes(base64.b64decode(image["data"]))
    print(f"  shot {path} ({width}x{height})")
    return path


def path_of(browser):
    return urlparse(browser.current_url).path


def open_page(browser, base, path):
    browser.get(base + path)


def wait_for_path(browser, path):
    try:
        WebDriverWait(browser, WAIT).until(lambda b: path_of(b) == path)
    except Exception:  # noqa: BLE001 (TimeoutException: reported as a failed check)
        raise Failure(browser, f"expected to land on {path} within {WAIT} s") from None


def document_response(browser, path):
    """The status and the response headers (names in lower case) of the last main document
    received for `path`, read from the performance log (`Network.responseReceived`; a redirect
    comes as the next request's `redirectResponse`, so this is the answer that was shown).
    Reading drains the log."""
    found = None
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.responseReceived":
            continue
        params = message["params"]
        if params.get("type") == "Document" and urlparse(params["response"]["url"]).path == path:
            found = params["response"]
    expect(browser, found is not None, f"no Network.responseReceived for the document {path} in the performance log")
    return found["status"], {name.lower(): value for name, value in found["headers"].items()}


def expect_shown(browser, path):
    """The browser shows `path`, answered 200."""
    expect(browser, path_of(browser) == path, f"expected to be on {path}")
    status, _ = document_response(browser, path)
    expect(browser, status == 200, f"{path} was answered {status}, expected 200")


def console_errors_about(browser, text):
    return [entry["message"] for entry in browser.get_log("browser") if text in entry.get("message", "")]


# MARK: - The portal's pages


def sign_in(browser, base, username, password):
    """Signs in through the /signin form and lands on /account."""
    open_page(browser, base, "/signin")
    expect_shown(browser, "/signin")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "signin-submit").click()
    try:
        WebDriverWait(browser, WAIT).until(lambda b: path_of(b) != "/signin" or b.find_elements(By.CSS_SELECTOR, ".banner.error"))
    except Exception:  # noqa: BLE001
        pass
    banners = browser.find_elements(By.CSS_SELECTOR, ".banner.error")
    expect(browser, not banners, "signing in failed: " + "; ".join(b.text for b in banners))
    wait_for_path(browser, "/account")


def sign_out(browser):
    browser.find_element(By.ID, "signout-submit").click()
    wait_for_path(browser, "/signin")


NO_SIDEWAYS_SCROLLING = "return [document.documentElement.scrollWidth, window.innerWidth];"

UNLABELLED_FIELDS = """
const unlabelled = [];
for (const field of document.querySelectorAll('input, select, textarea')) {
  const type = (field.getAttribute('type') || '').toLowerCase();
  if (field.tagName === 'INPUT' && (type === 'hidden' || type === 'submit')) continue;
  const style = getComputedStyle(field), box = field.getBoundingClientRect();
  if (style.display === 'none' || style.visibility === 'hidden' || (box.width === 0 && box.height === 0)) continue;
  const label = field.id && document.querySelector('label[for="' + CSS.escape(field.id) + '"]');
  if (!label && !(field.getAttribute('aria-label') || '').trim()) unlabelled.push(field.outerHTML.slice(0, 200));
}
return unlabelled;
"""

FOCUSED = """
const el = document.activeElement, style = getComputedStyle(el);
return {is_expected: el === document.querySelector(arguments[0]), html: el.outerHTML.slice(0, 200),
        outline: style.outlineStyle, shadow: style.boxShadow};
"""

# The skip link first, the brand (the header's one link when signed out), then the form in reading order.
SIGNIN_TAB_ORDER = ["a.skip-link", "a.brand", "#username", "#password", "#signin-submit"]


def check_page(browser, name, width):
    """The checks every page passes at every width."""
    scroll_width, inner_width = browser.execute_script(NO_SIDEWAYS_SCROLLING)
    expect(browser, scroll_width <= inner_width,
           f"{name}@{width}: scrolls sideways (document.documentElement.scrollWidth {scroll_width} > innerWidth {inner_width})")
    unlabelled = browser.execute_script(UNLABELLED_FIELDS)
    expect(browser, not unlabelled, f"{name}@{width}: fields without <label for> or aria-label: {unlabelled}")
    print(f"  {name}@{width}: no sideways scrolling ({scroll_width} <= {inner_width}), every field labelled")


def check_tab_order(browser, name, width, order):
    """From the top of a freshly loaded page, TAB focuses `order` (CSS selectors) in turn, each
    with a visible focus style (an outline or a box shadow)."""
    browser.execute_script("if (document.activeElement) document.activeElement.blur(); window.scrollTo(0, 0);")
    for step, selector in enumerate(order, start=1):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        focused = browser.execute_script(FOCUSED, selector)
        expect(browser, focused["is_expected"],
               f"{name}@{width}: TAB number {step} should focus {selector}, focused {focused['html']}")
        expect(browser, focused["outline"] != "none" or focused["shadow"] != "none",
               f"{name}@{width}: {selector} has no visible focus (outline-style none, box-shadow none)")
    print(f"  {name}@{width}: TAB order {' -> '.join(order)}, each with a visible focus")


# MARK: - Scenarios


def cookie_and_csp(args):
    browser = driver(1280)
    sign_in(browser, args.base, args.username, args.password)
    print("  signed in, on /account")

    cookies = {cookie["name"]: cookie for cookie in browser.get_cookies()}
    expect(browser, SESSION_COOKIE in cookies, f"no {SESSION_COOKIE} cookie; cookies: {sorted(cookies)}")
    cookie = cookies[SESSION_COOKIE]
    flags = {key: cookie.get(key) for key in ("secure", "httpOnly", "sameSite", "path", "expiry")}
    expected = {"secure": True, "httpOnly": True, "sameSite": "Lax", "path": "/", "expiry": None}
    expect(browser, flags == expected, f"{SESSION_COOKIE} has {flags}, expected {expected}")
    print(f"  {SESSION_COOKIE}: {flags}")

    status, headers = document_response(browser, "/account")
    expect(browser, status == 200, f"/account was answered {status}, expected 200")
    for name, value in SECURITY_HEADERS.items():
        expect(browser, headers.get(name) == value,
               f"/account: header {name} is {headers.get(name)!r}, expected {value!r}")
    print(f"  /account headers: {', '.join(SECURITY_HEADERS)} as expected")

    violations = console_errors_about(browser, "Content Security Policy")
    expect(browser, not violations, f"Content Security Policy violations in the console: {violations}")
    print("  no Content Security Policy violation in the console")

    sign_out(browser)
    names = [cookie["name"] for cookie in browser.get_cookies()]
    expect(browser, SESSION_COOKIE not in names, f"{SESSION_COOKIE} is still there after signing out: {names}")
    open_page(browser, args.base, "/account")
    expect(browser, path_of(browser) == "/signin", "/account after signing out did not send the browser to /signin")
    print("  signed out: no session cookie, /account redirects to /signin")


def pages(args):
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    for width in (360, 1280):
        browser = driver(width)  # a fresh profile per width: signed out at first
        open_page(browser, args.base, "/signup")
        expect_shown(browser, "/signup")
        shot(browser, "signup", width, args.shots)
        check_page(browser, "signup", width)
        open_page(browser, args.base, "/signin")
        expect_shown(browser, "/signin")
        shot(browser, "signin", width, args.shots)
        check_page(browser, "signin", width)
        check_tab_order(browser, "signin", width, SIGNIN_TAB_ORDER)
        sign_in(browser, args.base, args.username, args.password)
        expect_shown(browser, "/account")
        shot(browser, "account", width, args.shots)
        check_page(browser, "account", width)
        browser.quit()
        DRIVERS.remove(browser)


def signup_and_request(args):
    """A newcomer creates an account at /signup, lands on /account, and asks to join org1 with
    the page's own form: the request is then listed as pending."""
    browser = driver(1280)
    open_page(browser, args.base, "/signup")
    expect_shown(browser, "/signup")
    password = "a newcomer's long password"
    browser.find_element(By.ID, "username").send_keys("carol")
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "confirm").send_keys(password)
    browser.find_element(By.ID, "signup-submit").click()
    wait_for_path(browser, "/account")
    expect(browser, "Welcome!" in browser.page_source, "no welcome notice after signing up")
    expect(browser, "carol" in browser.find_element(By.CSS_SELECTOR, ".nav-user").text, "not signed in as carol")
    print("  signed up as carol, on /account")
    Select(browser.find_element(By.ID, "join-organization")).select_by_value("org1")
    browser.find_element(By.ID, "join-submit").click()
    try:
        WebDriverWait(browser, WAIT).until(lambda b: "Your request is sent." in b.page_source)
    except Exception:  # noqa: BLE001
        pass
    pending = browser.find_elements(By.CSS_SELECTOR, "ul.actions li")
    expect(browser, any("org1" in item.text for item in pending), "the request to join org1 is not listed as pending")
    expect(browser, "Your request is sent." in browser.page_source, "no notice after asking to join")
    print("  asked to join org1: pending")


def sign_up(browser, base, username, password):
    open_page(browser, base, "/signup")
    expect_shown(browser, "/signup")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    browser.find_element(By.ID, "confirm").send_keys(password)
    browser.find_element(By.ID, "signup-submit").click()
    wait_for_path(browser, "/account")


def wait_for_text(browser, text):
    try:
        WebDriverWait(browser, WAIT).until(lambda b: text in b.page_source)
    except Exception:  # noqa: BLE001
        pass
    expect(browser, text in browser.page_source, f"the page never showed {text!r}")


def whole_flow(args):
    """The issue's flow, in two browsers: carol signs up and asks to join org1; the owner and
    admin (--username) approves her with the role member on /orgs/org1; carol's /account lists
    org1, and with the curl line of its "how to connect" block she gets a token bundle from the
    API (its access token verified with PyJWT against the JWKS alone); the admin disables carol
    at /admin/users/carol; carol's next page is /signin, and her refresh token and access token
    are refused by the API. Screenshots of /orgs/org1 and the admin pages at both widths."""
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    carol_password = "carol's long password"
    carol = driver(1280)
    sign_up(carol, args.base, "carol", carol_password)
    Select(carol.find_element(By.ID, "join-organization")).select_by_value("org1")
    carol.find_element(By.ID, "join-submit").click()
    wait_for_text(carol, "Your request is sent.")
    print("  carol signed up and asked to join org1")

    owner = driver(1280)
    sign_in(owner, args.base, args.username, args.password)
    open_page(owner, args.base, "/orgs/org1")
    expect_shown(owner, "/orgs/org1")
    for width in (360, 1280):
        set_width(owner, width)
        shot(owner, "organization", width, args.shots)
        check_page(owner, "organization", width)
    set_width(owner, 1280)
    Select(owner.find_element(By.ID, "approve-role-carol")).select_by_value("member")
    owner.find_element(By.CSS_SELECTOR, 'button[aria-label="Approve carol"]').click()
    wait_for_text(owner, "The request is approved.")
    print("  the owner approved carol as member")

    open_page(carol, args.base, "/account")
    rows = carol.find_elements(By.CSS_SELECTOR, "#organizations tbody tr")
    expect(carol, any("org1" in row.text and "member" in row.text for row in rows), "carol's /account does not list org1")
    carol.find_element(By.CSS_SELECTOR, "#connect-org1 summary").click()
    curl = carol.find_element(By.CSS_SELECTOR, "#connect-org1 code.curl").text
    body = json.loads(curl.split("-d '", 1)[1].rsplit("'", 1)[0].replace("<your password>", carol_password))
    expect(carol, body == {"username": "carol", "password": carol_password, "org_name": "org1"},
           f"the snippet's request body is {body}")
    print("  carol's account lists org1; the snippet's request:", sorted(body))
    bundle = api(args.base, "/api/org_token/", body)
    expect(carol, bundle[0] == 200, f"the snippet's request was answered {bundle[0]}: {bundle[1]}")
    claims = verify_with_pyjwt(args.base, bundle[1]["access"])
    expect(carol, claims["org_name"] == "org1" and claims["user_name"] == "carol", f"claims {claims}")
    print("  the snippet's request got a token bundle; PyJWT verified it from the JWKS:", claims["org_name"])

    admin = owner
    open_page(admin, args.base, "/admin/users")
    expect_shown(admin, "/admin/users")
    for width in (360, 1280):
        set_width(admin, width)
        for path, name in [("/admin/users", "admin-users"), ("/admin/users/carol", "admin-user"), ("/admin/orgs", "admin-orgs"),
                           ("/admin/keys", "admin-keys"), ("/admin/invites", "admin-invites"), ("/admin/audit", "admin-audit")]:
            open_page(admin, args.base, path)
            expect_shown(admin, path)
            shot(admin, name, width, args.shots)
            check_page(admin, name, width)
    set_width(admin, 1280)
    open_page(admin, args.base, "/admin/users/carol")
    admin.find_element(By.ID, "disable-submit").click()
    wait_for_text(admin, "The account is disabled")
    print("  the admin disabled carol")

    open_page(carol, args.base, "/account")
    expect(carol, path_of(carol) == "/signin", f"carol's browser is on {path_of(carol)} after being disabled")
    status, _ = api(args.base, "/api/org_token/refresh/", {"refresh": bundle[1]["refresh"]})
    expect(carol, status == 401, f"carol's refresh token was answered {status}")
    status, _ = api(args.base, "/api/membership_status/org1/", None, bearer=bundle[1]["access"])
    expect(carol, status == 401, f"carol's access token was answered {status} at membership_status")
    print("  carol's browser is at /signin; her refresh and access tokens are refused (401)")


def api(base, path, body, bearer=None):
    """(status, JSON object) of an API call, straight to the broker (not through the browser)."""
    headers = {"Content-Type": "application/json"}
    if bearer:
        headers["Authorization"] = "Bearer " + bearer
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def verify_with_pyjwt(base, token):
    """The token's claims, verified by PyJWT with the key its kid names in the JWKS alone."""
    import jwt  # PyJWT, in the tests' venv

    with urllib.request.urlopen(base + "/.well-known/jwks.json", timeout=15) as response:
        jwks = jwt.PyJWKSet.from_dict(json.loads(response.read()))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(key for key in jwks.keys if key.key_id == kid)
    return jwt.decode(token, key.key, algorithms=[key.algorithm_name], options={"verify_aud": False})


def github_signin(args):
    """Sign in with GitHub: the portal shows a code; in a second tab the fake GitHub's device
    page approves it as --github-login; the portal page, refreshing itself (no script), signs
    the browser in as that user. Screenshots of the code page at both widths."""
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    browser = driver(1280)
    open_page(browser, args.base, "/signin")
    expect_shown(browser, "/signin")
    browser.find_element(By.ID, "github-submit").click()
    wait_for_path(browser, "/signin/github/device")
    for width in (360, 1280):
        set_width(browser, width)
        shot(browser, "github-device", width, args.shots)
        check_page(browser, "github-device", width)
    set_width(browser, 1280)
    code = browser.find_element(By.ID, "user-code").text.strip()
    link = browser.find_element(By.ID, "github-verification").get_attribute("href")
    expect(browser, link.endswith("/login/device"), f"the verification link is {link}")
    portal_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    browser.get(link)
    browser.find_element(By.ID, "user_code").send_keys(code)
    browser.find_element(By.ID, "login").send_keys(args.github_login)
    browser.find_element(By.ID, "authorize").click()
    wait_for_text(browser, "Device approved.")
    print(f"  approved {code} at the fake GitHub as {args.github_login}")
    browser.close()
    browser.switch_to.window(portal_tab)
    try:
        WebDriverWait(browser, WAIT).until(lambda b: path_of(b) == "/account")
    except Exception:  # noqa: BLE001
        pass
    expect(browser, path_of(browser) == "/account", f"still on {path_of(browser)} after the approval")
    user = browser.find_element(By.CSS_SELECTOR, ".nav-user").text
    expect(browser, user == args.github_login, f"signed in as {user!r}")
    print(f"  the code page refreshed itself and signed the browser in as {user}")


HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)> & \"quoted\""


def refusals(args):
    """What a browser must refuse or neutralize: a member's visit to an organization's page it
    does not manage (the 403 page), a form whose CSRF token a script changed (the 403 page,
    nothing changes), and a hostile User-Agent shown on /account as text (no script runs, the
    title stays). Screenshots of the 403 pages and the sign-out page at both widths."""
    Path(args.shots).mkdir(parents=True, exist_ok=True)
    browser = driver(1280)
    browser.execute_cdp_cmd("Network.setUserAgentOverride", {"userAgent": HOSTILE})
    sign_up(browser, args.base, "carol", "carol's long password")
    title = browser.title
    rows = browser.find_elements(By.CSS_SELECTOR, "#sessions tbody tr")
    expect(browser, any(HOSTILE in row.text for row in rows), "the hostile User-Agent is not shown as text on /account")
    expect(browser, "pwned" not in browser.title and browser.title == title, f"a script ran: the title is {browser.title!r}")
    expect(browser, not browser.find_elements(By.CSS_SELECTOR, "#sessions img"), "markup from the User-Agent was rendered")
    print("  a hostile User-Agent is shown as text; no script ran")

    open_page(browser, args.base, "/orgs/org1")
    status, _ = document_response(browser, "/orgs/org1")
    expect(browser, status == 403, f"/orgs/org1 answered {status} to a non-member")
    expect(browser, "Not allowed" in browser.page_source, "the 403 page does not say why")
    for width in (360, 1280):
        set_width(browser, width)
        shot(browser, "forbidden", width, args.shots)
        check_page(browser, "forbidden", width)
    set_width(browser, 1280)
    print("  /orgs/org1 is the 403 page for carol")

    open_page(browser, args.base, "/orgs/no-such-org")
    status, _ = document_response(browser, "/orgs/no-such-org")
    expect(browser, status == 404, f"/orgs/no-such-org answered {status}")
    for width in (360, 1280):
        set_width(browser, width)
        shot(browser, "not-found", width, args.shots)
    set_width(browser, 1280)

    open_page(browser, args.base, "/signout")
    expect_shown(browser, "/signout")
    for width in (360, 1280):
        set_width(browser, width)
        shot(browser, "signout", width, args.shots)
        check_page(browser, "signout", width)
    set_width(browser, 1280)
    browser.execute_script("document.querySelector('main form input[name=csrf]').value = 'forged';")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    wait_for_text(browser, "This form has expired")
    status, _ = document_response(browser, "/signout")
    expect(browser, status == 403, f"the forged sign-out answered {status}")
    for width in (360, 1280):
        set_width(browser, width)
        shot(browser, "csrf-refused", width, args.shots)
    set_width(browser, 1280)
    open_page(browser, args.base, "/account")
    expect_shown(browser, "/account")
    print("  a forged CSRF token is refused (403) and the browser is still signed in")


SCENARIOS = {
    "cookie_and_csp": cookie_and_csp, "pages": pages, "signup_and_request": signup_and_request,
    "whole_flow": whole_flow, "github_signin": github_signin, "refusals": refusals,
}


# MARK: - Command line


def without_native_frames(text):
    """A traceback without chromedriver's `Stacktrace:` of unnamed native frames."""
    lines = text.rstrip().splitlines()
    return "\n".join(line for line in lines if line != "Stacktrace:" and not re.fullmatch(r"#\d+ 0x[0-9a-f]+ <unknown>", line))


def report(browser, what):
    print(f"FAILED: {what}")
    if browser is None:
        return
    try:
        print(f"url: {browser.current_url}")
        print(f"title: {browser.title!r}")
        print("page source (first 2,000 characters):")
        print(browser.page_source[:2000])
    except Exception as error:  # noqa: BLE001 (the browser itself may be what failed)
        print(f"(the page could not be read: {error})")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--base", required=True, help="the portal's origin, e.g. http://localhost:8080")
    parser.add_argument("--shots", required=True, help="where the screenshots go")
    parser.add_argument("--username", default="alice")
    parser.add_argument("--password", default="")
    parser.add_argument("--github-login", default="", help="the fake GitHub user who approves a device code")
    args = parser.parse_args(argv)
    args.base = args.base.rstrip("/")
    Path(args.shots).mkdir(parents=True, exist_ok=True)

    # The test's timeout sends SIGTERM: quit the browsers rather than leave them running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{args.scenario}: terminated"))
    print(f"{args.scenario}: {args.base}")
    try:
        SCENARIOS[args.scenario](args)
    except Failure as failure:
        report(failure.driver, failure.what)
        return 1
    except Exception:  # noqa: BLE001 (a timeout, a missing element: a failure too, with its page)
        report(DRIVERS[-1] if DRIVERS else None, without_native_frames(traceback.format_exc()))
        return 1
    finally:
        quit_all()
    print(f"{args.scenario}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
