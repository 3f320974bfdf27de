#!/usr/bin/python3
"""Shared parts of the tray's end-to-end tests (e2e.py, onboarding.py), run inside e2e.sh's session:
reporting (ok/fail), waiting, W3C WebDriver over tauri-driver (the app's real WebKit window), the
tray menu over D-Bus as a panel reads and clicks it, the notifications seen on the bus, and the
sandbox org's knobs. Standard library + python3-dbus only."""
import base64
import http.client as http_client
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SESSION = os.environ["EMA_TEST_SESSION_DIR"]
ARTIFACTS = os.environ["EMA_ARTIFACTS"]
APP = os.path.join(ROOT, "target", "debug", "ema-tray")
EMA = os.path.join(ROOT, "target", "debug", "ema")
DRIVER = "http://127.0.0.1:4444"
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
passed = 0
WINDOW = None  # the open window, described when a check fails
SANDBOX = None  # the sandbox org's origin, set by the test


def ok(msg):
    global passed
    passed += 1
    print(f"ok: {msg}", flush=True)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    if WINDOW:
        try:
            print(f"window: identity={WINDOW.text('#identity')!r} error={WINDOW.text('#error')!r} "
                  f"note={WINDOW.text('#idp-note')!r} rows={WINDOW.rows()}", flush=True)
            WINDOW.screenshot("failure.png", check=False)
        except Exception as e:
            print(f"(cannot read the window: {e})", flush=True)
    for name in ("tray.log", "driver.log", "browser.log", "sandbox.log"):
        path = os.path.join(SESSION, name)
        if os.path.exists(path):
            print(f"--- {name} (last 40 lines)", flush=True)
            with open(path, encoding="utf-8", errors="replace") as f:
                print("".join(f.readlines()[-40:]), flush=True)
    sys.exit(1)


def wait_for(what, probe, timeout=30, every=0.25):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = probe()
        except Exception as e:  # a probe may race the window; keep trying until the deadline
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(every)
    fail(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


def http(method, url, body=None, timeout=60, retries=2):
    """One W3C WebDriver (or sandbox) call. A dropped connection is retried: tauri-driver proxies
    to WebKitWebDriver over pooled keep-alive connections and does not retry when the driver has
    just closed an idle one (seen once in CI as RemoteDisconnected between two commands)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        body_text = e.read()[:500]
        if e.code >= 500 and b"connection" in body_text.lower() and retries > 0:
            time.sleep(0.3)
            return http(method, url, body, timeout, retries - 1)
        raise RuntimeError(f"{method} {url}: {e.code} {body_text!r}") from None
    except (ConnectionError, http_client.RemoteDisconnected, urllib.error.URLError) as e:
        if retries > 0:
            print(f"(retrying {method} {url} after a dropped connection: {e})", flush=True)
            time.sleep(0.3)
            return http(method, url, body, timeout, retries - 1)
        raise


# ---- WebDriver (W3C, over tauri-driver) ------------------------------------------------------

class Window:
    def __init__(self, args):
        caps = {"capabilities": {"alwaysMatch": {"browserName": "wry",
                                                 "tauri:options": {"application": APP, "args": args}}}}
        self.sid = http("POST", f"{DRIVER}/session", caps)["value"]["sessionId"]
        global WINDOW
        WINDOW = self

    def cmd(self, method, path, body=None):
        return http(method, f"{DRIVER}/session/{self.sid}{path}", body)["value"]

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def click(self, css):
        el = self.cmd("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
        self.cmd("POST", f"/element/{el}/click", {})

    def set_checkbox(self, css, checked):
        """Clicks a checkbox until it shows `checked`: a click can miss while the rows above are
        re-rendered and the layout shifts under the pointer."""
        for _ in range(3):
            if self.js("return document.querySelector(arguments[0]).checked", css) == checked:
                return
            self.click(css)
            time.sleep(0.5)
        fail(f"{css} did not become {'checked' if checked else 'unchecked'}")

    def rows(self):
        return self.js("""return [...document.querySelectorAll('#connectors tr')].map(tr => ({
            id: tr.dataset.connector, name: tr.cells[0].textContent, state: tr.cells[1].textContent,
            expires: tr.cells[2].textContent, scopes: tr.cells[3].textContent}))""")

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e && !e.hidden ? e.textContent : ''", css)

    def screenshot(self, name, check=True):
        time.sleep(0.3)  # let WebKit paint the last change before the snapshot
        png = base64.b64decode(self.cmd("GET", "/screenshot"))
        path = os.path.join(ARTIFACTS, name)
        with open(path, "wb") as f:
            f.write(png)
        if not check:
            return
        if not png.startswith(b"\x89PNG") or len(png) < 2000:
            fail(f"screenshot {name} is not a real PNG of the window ({len(png)} bytes)")
        ok(f"saved a screenshot of the window: {path} ({len(png)} bytes)")

    def quit(self):
        try:
            http("DELETE", f"{DRIVER}/session/{self.sid}")
        except Exception:
            pass


def row(rows, connector_id):
    return next((r for r in rows if r["id"] == connector_id), None)


# ---- The tray menu over D-Bus (dbusmenu), as a panel reads and clicks it --------------------

def menu_layout():
    items = [line.split() for line in open(os.path.join(SESSION, "items"), encoding="utf-8") if line.strip()]
    sender, item = items[-1]
    path = item
    if not item.startswith("/"):
        tree = subprocess.run(["gdbus", "introspect", "--session", "--dest", sender, "--object-path", "/", "--recurse"],
                              capture_output=True, text=True).stdout
        path = re.search(r"/org/ayatana/NotificationItem/\S+", tree).group(0)
    out = subprocess.run(["gdbus", "call", "--session", "--dest", sender, "--object-path", f"{path}/Menu",
                          "--method", "com.canonical.dbusmenu.GetLayout", "--", "0", "-1", '["label"]'],
                         capture_output=True, text=True)
    return out.stdout


def menu_click(label):
    """Clicks a menu item as a panel does (dbusmenu Event "clicked").

    The app rebuilds its menu on every status change (a renewal, a retry), which gives the items
    new ids: a click on an id read just before a rebuild is refused, as a panel's would be. Like
    a user clicking again, the layout is read again and the click retried, a few times."""
    items = [line.split() for line in open(os.path.join(SESSION, "items"), encoding="utf-8") if line.strip()]
    sender = items[-1][0]
    path = re.search(r"/org/ayatana/NotificationItem/\S+", subprocess.run(
        ["gdbus", "introspect", "--session", "--dest", sender, "--object-path", "/", "--recurse"],
        capture_output=True, text=True).stdout)
    path = path.group(0) if path else items[-1][1]
    for attempt in range(5):
        layout = menu_layout()
        found = re.search(r"\((\d+), \{[^}]*'label': <'" + re.escape(label) + "'>", layout)
        if not found:
            fail(f"the tray menu has no item {label!r}: {layout}")
        click = subprocess.run(["gdbus", "call", "--session", "--dest", sender, "--object-path", f"{path}/Menu",
                                "--method", "com.canonical.dbusmenu.Event", "--", found.group(1), "clicked", '<"">',
                                "0"], capture_output=True, text=True)
        if click.returncode == 0:
            return
        time.sleep(0.5)
    fail(f"clicking {label!r} in the tray menu failed 5 times: {click.stderr.strip()}")


def menu_labels():
    return re.findall(r"'label': <'([^']*)'>", menu_layout())


# ---- Notifications observed on the bus ------------------------------------------------------

def notifications():
    """(summary, body) of every Notify call dbus-monitor saw so far."""
    with open(os.path.join(SESSION, "notify.log"), encoding="utf-8", errors="replace") as f:
        text = f.read()
    calls = []
    for block in text.split("method call")[1:]:
        if "member=Notify" not in block:
            continue
        strings = re.findall(r'^\s+string "(.*)"$', block, re.M)
        # Notify(app_name, replaces_id, app_icon, summary, body, actions[], hints{}, timeout)
        if len(strings) >= 4:
            calls.append((strings[2], strings[3]))
    return calls


# ---- The sandbox org ------------------------------------------------------------------------

def knobs(patch):
    return http("POST", f"{SANDBOX}/_sandbox/knobs", patch)


def browser_sign_ins():
    path = os.path.join(SESSION, "browser.log")
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.startswith("login-page"))


def tray_pids():
    """The running app's processes: the tray app under test and its window process, if open."""
    return subprocess.run(["pgrep", "-f", APP], capture_output=True, text=True).stdout.split()


def app_pids(kind):
    """Of those, the tray app itself ("tray") or its window process ("window")."""
    out = subprocess.run(["pgrep", "-af", APP], capture_output=True, text=True).stdout.splitlines()
    return [line.split()[0] for line in out if ("--window" in line) == (kind == "window")]


def close_window(close):
    """Runs `close` (a key or click that closes the window), then waits for the window's
    browser-engine processes to exit and checks the tray runs on; returns its pid."""
    try:
        close()
    except RuntimeError:
        pass  # the window (and the driver's view of it) went away while the input was delivered
    wait_for("the window's browser-engine processes to exit", lambda: not webkit_processes(), 15)
    tray = tray_pids()
    if not tray:
        fail("closing the window must leave the tray app running")
    return tray[0]


def webkit_processes():
    out = subprocess.run(["ps", "-eo", "pid,ppid,comm,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "WebKit" in line and "WebDriver" not in line]


