#!/usr/bin/python3
"""End-to-end test of the tray app, as a user meets it, on the sandbox org (run by e2e.sh).

Real parts only: the app under tauri-driver + WebKitWebDriver (the status window is a real
WebKit window under Xvfb), gnome-keyring's Secret Service, dunst as the notification daemon
(its Notify calls observed with dbus-monitor), a StatusNotifierWatcher so the tray menu is read
and clicked over D-Bus as a panel would, the sandbox org as a separate process (`ema sandbox`),
and the scripted browser ($BROWSER) signing in through the app's real loopback redirect.

Checks, in order (each prints "ok: ..." or fails the run):
  1. signed out at first; "Sign in" in the window signs alice in; the window lists her
     connectors with states and expiry countdowns; the tray menu shows the same rows;
  2. a connector's authorization server rejects the grant: the window shows the message and fix
     and a notification says so, once; a server's words in markup reach dunst escaped;
  3. the IdP stops: connectors stay active until their tokens expire and say why renewal fails,
     then turn expired; the IdP comes back and they recover without a browser;
  4. "Start at login" in the window writes the autostart entry, and unticking removes it;
  5. restarting the app keeps alice signed in (tokens from the keyring) with no browser;
  6. a personal Linear token planted in Claude Code's ~/.claude.json is noticed by the file
     watcher: one notification, a tray menu row, the finding in the window; "Use the company
     connection" rewrites the entry to a headersHelper whose token works, keeping the rest of
     the file; Undo restores the file byte for byte; the token appears in no log or notification;
  7. closing the window ends its process: no browser-engine process runs beside the idle tray;
  8. "Refresh now" in the tray menu meets a refusing AS; clicking the notification opens the window;
  9. a second launch of the app hands over to the running one (its window opens) and exits.
Artifacts (screenshots, logs) go to $EMA_ARTIFACTS.
Standard library + python3-dbus is all it needs; WebDriver is spoken as plain HTTP (W3C).
"""
import json
import os
import re
import subprocess
import time

import harness
from harness import (APP, ELEMENT, EMA, SESSION, Window, app_pids, browser_sign_ins, close_window, fail, knobs,
                     menu_click, menu_labels, notifications, ok, row, tray_pids, wait_for, webkit_processes)

CONNECTOR_TTL = 75  # seconds: long enough for the checks, short enough to watch one expire

def main():
    policy_path = os.path.join(SESSION, "policy.json")
    subprocess.Popen([EMA, "sandbox", "--write-policy", policy_path, "--connector-token-ttl", str(CONNECTOR_TTL)],
                     stdout=subprocess.DEVNULL, stderr=open(os.path.join(SESSION, "sandbox.log"), "w"))
    wait_for("the sandbox policy", lambda: os.path.exists(policy_path) and os.path.getsize(policy_path) > 0)
    with open(policy_path, encoding="utf-8") as f:
        policy = json.load(f)
    harness.SANDBOX = re.match(r"(http://127\.0\.0\.1:\d+)", policy["idp"]["issuer"]).group(1)
    # Renew 10 s before expiry (the default 2 min is longer than these test tokens live).
    policy.setdefault("settings", {})["renew_before_expiry_seconds"] = 10
    with open(policy_path, "w", encoding="utf-8") as f:
        json.dump(policy, f)
    global APP_ARGS
    APP_ARGS = ["--config", policy_path]
    # This run is a user who has been through onboarding (tests/tray/onboarding.py is the first run).
    marker = os.path.join(os.environ["HOME"], ".local", "share", "ema", "onboarded.json")
    os.makedirs(os.path.dirname(marker), exist_ok=True)
    with open(marker, "w", encoding="utf-8") as f:
        json.dump({"completed_at": "2026-11-24T00:00:00Z", "organization": "Sandbox Org", "via": "window"}, f)

    # 1. First start: signed out; sign in from the window; the connectors appear.
    w = Window(APP_ARGS + ["--open"])
    wait_for("the signed-out window", lambda: "Not signed in" in w.text("#identity"))
    rows = w.rows()
    if not rows or any(r["state"] != "Sign-in needed" for r in rows):
        fail(f"before sign-in every connector should need sign-in: {rows}")
    ok(f"the window opens signed out with {len(rows)} connectors needing sign-in")
    w.screenshot("1-signed-out.png")
    w.click("#sign-in")
    wait_for("alice's connectors to turn active", lambda: (row(w.rows(), "linear") or {}).get("state") == "Active", 60)
    rows = w.rows()
    states = {r["id"]: r["state"] for r in rows}
    want = {"linear": "Active", "supabase": "Active", "figma": "Not assigned to you"}
    for cid, state in want.items():
        if states.get(cid) != state:
            fail(f"{cid} should be {state!r} for alice, the window says {states.get(cid)!r} ({rows})")
    ok(f"after sign-in the window shows alice's connectors: {states}")
    if "alice@example.com" not in w.text("#identity"):
        fail(f"the window should name alice: {w.text('#identity')!r}")
    linear = row(rows, "linear")
    if not re.match(r"in \d+ s \(\d\d:\d\d", linear["expires"]) or linear["scopes"] == "":
        fail(f"an active connector shows a countdown to its expiry and its scopes: {linear}")
    ok(f"Linear shows its expiry countdown {linear['expires']!r} and scopes {linear['scopes']!r}")
    w.screenshot("2-signed-in.png")
    if browser_sign_ins() < 1:
        fail("the scripted browser was never used for the sign-in")

    labels = wait_for("the tray menu's connector rows", lambda: (lambda l: l if any("Linear - active" in x for x in l) else None)(menu_labels()))
    for r in rows:
        word = {"Active": "active", "Not assigned to you": "not assigned to you"}.get(r["state"])
        if word and not any(lbl.startswith(f"{r['name']} - {word}") for lbl in labels):
            fail(f"the tray menu should show {r['name']} as {word}: {labels}")
    if "Signed in as alice@example.com" not in labels:
        fail(f"the tray menu should name alice: {labels}")
    ok(f"the tray menu (read over D-Bus) shows the same rows: {[x for x in labels if ' - ' in x]}")

    # 2. Linear's authorization server rejects the grant.
    knobs({"failing_connectors": {"linear": "invalid_grant"}})
    w.click("#refresh")
    # The token Linear already holds stays in use until it expires, so Linear is "expiring soon"
    # (or "error" once nothing valid is left), and the row says what the AS answered and the fix.
    wait_for("Linear's failure in the window", lambda: "invalid_grant" in (row(w.rows(), "linear") or {}).get("state", ""), 30)
    state = row(w.rows(), "linear")["state"]
    if not (state.startswith("Expiring soon") or state.startswith("Error")) or "export diagnostics" not in state:
        fail(f"the window should say Linear's grant is refused and what to do: {state!r}")
    ok(f"Linear's failure is explained in the window: {state!r}")
    w.screenshot("3-linear-failed.png")
    notes = wait_for("a notification about Linear", lambda: [n for n in notifications() if "Linear" in n[0]], 15)
    ok(f"a notification was sent over D-Bus: {notes[0]}")
    w.click("#refresh")  # the same cause again: no second notification
    time.sleep(2)
    again = [n for n in notifications() if "Linear" in n[0]]
    if len(again) != 1:
        fail(f"the same cause must be notified once, got {again}")
    ok("the same failure is not notified twice")
    knobs({"failing_connectors": {}})
    w.click("#refresh")
    wait_for("Linear to recover", lambda: (row(w.rows(), "linear") or {}).get("state") == "Active", 30)
    ok("Linear recovers once its authorization server accepts the grant again")
    # Issue 14 item 7: a hostile server's words in markup became a clickable link inside an EMA
    # notification (dunst advertises body-markup and body-hyperlinks). They must arrive escaped.
    before = len(notifications())
    knobs({"failing_connectors": {"supabase": "markup"}})
    w.click("#refresh")
    note = wait_for("a notification about Supabase's refusal",
                    lambda: [n for n in notifications()[before:] if "Supabase" in n[0] and "evil.example" in n[1]], 30)
    summary, body = note[0]
    if "<a" in body or "<b>" in body or "&lt;a href=" not in body or "&amp;" not in body:
        fail(f"server text must reach the notification daemon escaped, as text: {body!r}")
    ok(f"a hostile server's markup reaches the notification daemon escaped: {body[:120]!r}")
    knobs({"failing_connectors": {}})
    w.click("#refresh")
    wait_for("Supabase to recover", lambda: (row(w.rows(), "supabase") or {}).get("state") == "Active", 30)

    # 3. The IdP stops: connectors keep working until their tokens expire, and say why.
    knobs({"idp_down": True})
    w.click("#refresh")
    wait_for("the renewal failure in the window", lambda: "works until" in (row(w.rows(), "linear") or {}).get("state", ""), 30)
    linear = row(w.rows(), "linear")
    if not (linear["state"].startswith("Active") or linear["state"].startswith("Expiring soon")):
        fail(f"with the IdP down Linear must stay usable until expiry: {linear}")
    if "IdP unreachable" not in w.text("#idp-note"):
        fail(f"the window should say the IdP is unreachable: {w.text('#idp-note')!r}")
    ok(f"IdP down: Linear stays usable and says why: {linear['state']!r}")
    w.screenshot("4-idp-down.png")
    wait_for("Linear to expire", lambda: (row(w.rows(), "linear") or {}).get("state", "").startswith("Expired"), CONNECTOR_TTL + 15, 1)
    ok("at its expiry time Linear turns expired")
    knobs({"idp_down": False})
    w.click("#refresh")
    wait_for("recovery after the IdP returns", lambda: (row(w.rows(), "linear") or {}).get("state") == "Active", 30)
    if browser_sign_ins() != 1:
        fail(f"recovery must not need the browser (sign-ins: {browser_sign_ins()})")
    ok("the IdP is back: connectors recover without a browser")

    # 4. Start at login (tauri-plugin-autostart writes an XDG autostart entry).
    entry = os.path.join(os.environ["HOME"], ".config", "autostart", "EMA.desktop")
    w.set_checkbox("#autostart", True)
    wait_for("the autostart entry", lambda: os.path.exists(entry), 10)
    with open(entry, encoding="utf-8") as f:
        desktop = f.read()
    if APP not in desktop:
        fail(f"the autostart entry should start the app: {desktop!r}")
    ok(f"'Start at login' writes {entry}")
    wait_for("the menu's check mark", lambda: "Start at login" in menu_labels())
    w.set_checkbox("#autostart", False)
    wait_for("the autostart entry to go", lambda: not os.path.exists(entry), 10)
    ok("unticking 'Start at login' removes it")

    # 5. Restart: still signed in, no browser. Meanwhile IT's policy now sets start-at-login,
    #    which the app applies at start and the user cannot untick.
    w.quit()
    policy["settings"]["start_at_login"] = True
    with open(policy_path, "w", encoding="utf-8") as f:
        json.dump(policy, f)
    wait_for("the app to exit", lambda: not tray_pids(), 15)
    w = Window(APP_ARGS + ["--open"])
    wait_for("alice after restart", lambda: "alice@example.com" in w.text("#identity"), 30)
    wait_for("active connectors after restart", lambda: (row(w.rows(), "linear") or {}).get("state") == "Active", 30)
    if browser_sign_ins() != 1:
        fail(f"a restart must not open the browser (sign-ins: {browser_sign_ins()})")
    ok("after a restart alice is still signed in, from the keyring, without a browser")
    wait_for("the policy's autostart entry", lambda: os.path.exists(entry), 10)
    locked = wait_for("the locked checkbox", lambda: w.js("const a = document.getElementById('autostart'); return a.checked && a.disabled"))
    ok(f"a policy that sets start-at-login writes the entry at start and locks the checkbox ({locked})")
    w.screenshot("5-after-restart.png")

    # 6. A personal Linear token appears in Claude Code's settings while the app runs.
    linear_url = next(c["mcp_url"] for c in policy["connectors"] if c["id"] == "linear")
    canary = "lin_api_E2ECANARY0123456789abcdefXYZ"
    claude_json = os.path.join(os.environ["HOME"], ".claude.json")
    planted = json.dumps({
        "numStartups": 3,
        "mcpServers": {
            "my-linear": {"type": "http", "url": linear_url, "headers": {"Authorization": f"Bearer {canary}"}},
            "notes": {"command": "uvx", "args": ["notes-mcp"]},
        },
        "projects": {},
    }, indent=2) + "\n"
    before = len(notifications())
    with open(claude_json + ".tmp", "w", encoding="utf-8") as f:
        f.write(planted)
    os.replace(claude_json + ".tmp", claude_json)  # as Claude Code writes it
    note = wait_for("a notification about the personal Linear token",
                    lambda: [n for n in notifications()[before:] if n[0].startswith("Personal Linear")], 20)
    ok(f"the file watcher noticed the personal token: notification {note[0][0]!r}")
    wait_for("the tray menu row", lambda: "1 personal connection to remove..." in menu_labels(), 15)
    ok("the tray menu shows '1 personal connection to remove...'")
    item = wait_for("the finding in the window", lambda: w.js(
        "const li = document.querySelector('#personal-list li'); return li && !document.getElementById('personal').hidden"
        " ? li.textContent : ''"), 15)
    if "Linear in Claude Code" not in item or ".claude.json" not in item or "/mcpServers/my-linear" not in item:
        fail(f"the window should name the client, file and entry: {item!r}")
    labels = w.js("return [...document.querySelectorAll('#personal-list button')].map(b => b.getAttribute('aria-label'))")
    if labels != ["Replace Linear in Claude Code by the company connection", "Remove Linear from Claude Code"]:
        fail(f"the remedies should be offered with accessible names: {labels}")
    ok(f"the window shows the finding and its remedies: {labels}")
    w.screenshot("6-personal-connection.png")
    w.click("#personal-list li button[data-action='replace']")
    def replaced():
        with open(claude_json, encoding="utf-8") as f:
            doc = json.load(f)
        return doc if "headersHelper" in doc["mcpServers"]["my-linear"] else None
    doc = wait_for("the entry to be replaced", replaced, 15)
    entry = doc["mcpServers"]["my-linear"]
    if entry["url"] != linear_url or entry["type"] != "http" or not entry["headersHelper"].endswith(" headers linear"):
        fail(f"the replaced entry should be the managed connection: {entry}")
    if doc["mcpServers"]["notes"] != {"command": "uvx", "args": ["notes-mcp"]} or doc["numStartups"] != 3:
        fail(f"the rest of the file must stay: {doc}")
    helper = subprocess.run(["sh", "-c", entry["headersHelper"]], capture_output=True, text=True, timeout=10,
                            env={**os.environ, "EMA_CONFIG": policy_path})
    try:
        header = json.loads(helper.stdout).get("Authorization", "")
    except ValueError:
        header = ""
    if helper.returncode != 0 or not header.startswith("Bearer ") or len(header) < 30:
        fail(f"the helper should print a bearer token: exit {helper.returncode}, {len(helper.stdout)} bytes "
             f"starting {helper.stdout[:20]!r}, stderr {helper.stderr[-500:]!r}")
    ok(f"'Use the company connection' wrote a headersHelper that prints a token: {entry['headersHelper']!r}")
    wait_for("the menu row to go", lambda: not any("personal connection" in l for l in menu_labels()), 15)
    undo = wait_for("the undo offer", lambda: w.text("#personal-undo"), 15)
    ok(f"the finding is gone from the menu; the window offers: {undo.strip()!r}")
    w.click("#undo")
    def restored():
        with open(claude_json, encoding="utf-8") as f:
            return f.read() == planted
    wait_for("the file to be restored", restored, 15)
    ok("Undo restored ~/.claude.json byte for byte")
    logs = ""
    for name in ("notify.log", "driver.log"):
        with open(os.path.join(SESSION, name), encoding="utf-8", errors="replace") as f:
            logs += f.read()
    if canary in logs or canary in w.js("return document.body.innerText"):
        fail("the planted token appeared in a notification, the app's log or the window")
    ok("the planted token is in no notification, log or window text")
    os.remove(claude_json)
    wait_for("the finding to clear", lambda: not any("personal connection" in l for l in menu_labels()), 15)

    # 6b. Export diagnostics: the preview shows every file of the bundle before anything is saved.
    if "Export diagnostics..." not in menu_labels():
        fail(f"the tray menu should offer 'Export diagnostics...': {menu_labels()}")
    desk = w.text("#help-desk")
    if "Sandbox Help Desk" not in desk:
        fail(f"the window should name the help desk: {desk!r}")
    w.click("#export-start")
    names = wait_for("the export preview", lambda: w.js(
        "const s = document.getElementById('export-save'); return s && !s.hidden ? "
        "[...document.querySelectorAll('#export-files summary')].map(x => x.textContent) : null"), 60)
    if names != ["summary.txt", "summary.html", "diagnostics.json", "policy.json", "log.txt"]:
        fail(f"the preview should list the bundle's files: {names}")
    preview = w.js("return document.querySelector('#export-files pre').textContent")
    support_id = re.search(r"Support ID: (EMA-[0-9A-Z]{4}-[0-9A-Z]{4})", preview)
    if not support_id or "What works:" not in preview:
        fail(f"the preview's summary should carry the support ID and what works: {preview[:500]!r}")
    ok(f"'Export diagnostics...' previews {names} with support ID {support_id.group(1)}")
    w.screenshot("7-export-preview.png")
    w.click("#export-save")
    saved = wait_for("the saved bundle", lambda: re.search(r"Saved to (\S+\.zip)", w.text("#export-status")), 20)
    path = saved.group(1)
    import zipfile
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n).decode() for n in z.namelist()}
    if sorted(files) != sorted(names) or support_id.group(1) not in files["summary.txt"]:
        fail(f"the saved bundle should be what was previewed: {sorted(files)}")
    if any(canary in text for text in files.values()):
        fail("the planted token appeared in the diagnostics bundle")
    ok(f"Save wrote {path}, the previewed files, with no planted secret")

    # 7. Closing the window ends its process; the tray stays, with no browser engine.
    body = w.cmd("POST", "/element", {"using": "css selector", "value": "body"})[ELEMENT]
    if not webkit_processes():
        fail("the open window should run in WebKit processes")
    # Escape, as a user closes it.
    pid = close_window(lambda: w.cmd("POST", f"/element/{body}/value", {"text": "\ue00c"}))
    ok(f"the window closed: the tray runs on (pid {pid}) with no WebKit process")

    # 8. With the window closed: "Refresh now" from the tray menu (clicked over D-Bus) meets a
    #    refusing AS; the notification says so, and clicking it (dunst's default action) opens the window.
    knobs({"failing_connectors": {"supabase": "invalid_grant"}})
    # Notifications from before the restart may still be on screen, and their sender is gone;
    # `dunstctl action 0` must reach the one this step is about.
    subprocess.run(["dunstctl", "close-all"], check=True)
    before = len(notifications())
    menu_click("Refresh now")
    note = wait_for("a notification about Supabase", lambda: [n for n in notifications()[before:] if "Supabase" in n[0]], 30)
    ok(f"'Refresh now' clicked in the tray menu; the failure is notified: {note[0][0]!r}")
    if webkit_processes():
        fail("the window must still be closed before the notification is clicked")
    subprocess.run(["dunstctl", "action", "0"], check=True)
    wait_for("the status window to open from the notification", lambda: subprocess.run(
        ["xdotool", "search", "--name", "EMA - your connectors"], capture_output=True, text=True).stdout.strip(), 20)
    ok("clicking the notification opens the status window")

    # 9. Launching the app again, as a user does from the application menu: the running app
    #    opens its window (it owns the session bus name dev.ema.desktop and is activated through
    #    org.freedesktop.Application), and the second process exits at once.
    for pid in app_pids("window"):
        subprocess.run(["kill", pid], check=False)
    wait_for("the window to close", lambda: not webkit_processes() and not app_pids("window"), 15)
    before = app_pids("tray")
    second = subprocess.run([APP], capture_output=True, text=True, timeout=20)
    if second.returncode != 0 or "already running" not in second.stderr:
        fail(f"a second launch must hand over and exit 0, got {second.returncode}: {second.stderr[-500:]}")
    wait_for("the running app to open its window for the second launch", lambda: subprocess.run(
        ["xdotool", "search", "--name", "EMA - your connectors"], capture_output=True, text=True).stdout.strip(), 20)
    if app_pids("tray") != before or len(before) != 1:
        fail(f"one tray app must run before and after a second launch: {before} -> {app_pids('tray')}")
    ok(f"a second launch handed over ({second.stderr.strip()!r}): the running app opened its window")
    w.quit()
    print(f"tray-e2e: {harness.passed} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
