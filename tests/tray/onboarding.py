#!/usr/bin/python3
"""End-to-end test of the first run, as a new hire meets it (run by e2e.sh with
EMA_E2E_SCRIPT=tests/tray/onboarding.py, in a fresh desktop session: no policy, no marker).

Real parts only, as in e2e.py: the app's WebKit window under tauri-driver, gnome-keyring, dunst,
the sandbox org as a separate process, the scripted browser through the real loopback redirect.

Checks, in order (each prints "ok: ..." or fails the run):
  1. with no policy anywhere the app starts "not set up" and opens the setup screen by itself; a
     wrong path is refused with the reason; the file IT sent loads and the welcome screen follows
     (organisation and IdP by name), in the same window, without a restart;
  2. Enter on the focused "Sign in with Sandbox IdP" signs alice in; her connectors appear live,
     each ready or "not assigned to you", then "3 connectors ready";
  3. the old Claude Code entries (a personal Linear token, a Supabase token) are offered; Linear is
     migrated (the entry becomes the company connection, the file is backed up), Supabase skipped;
  4. Space on "Start EMA when I log in" opts in (the autostart entry is written); Finish shows the
     "EMA lives in your tray" hint (also as a notification); closing leaves the tray running;
  5. the end state: tokens in the keyring (`ema status`, no browser), the migrated file and its
     backup, the autostart entry, the onboarding marker;
  6. a second start skips onboarding; deleting the stored state (marker and tokens) brings it back.
On every screen: each control has an accessible name, Tab reaches each one, and the focus starts
on the screen's first control or heading. Screenshots of each step go to $EMA_ARTIFACTS.
"""
import json
import os
import re
import subprocess
import time

import harness
from harness import (EMA, ELEMENT, SESSION, Window, close_window, fail, menu_click, notifications, ok, wait_for,
                     tray_pids)

HOME = os.environ["HOME"]
CANARY = "lin_api_ONBOARDCANARY0123456789abcdef"
SUPABASE_CANARY = "sbp_ONBOARDCANARY0123456789abcdef012345"
TAB, ENTER, SPACE = "\ue004", "\ue007", " "


def step(w):
    return w.js("const s = [...document.querySelectorAll('#onboarding .step')].find(s => !s.hidden);"
                " return s && !document.getElementById('onboarding').hidden ? s.id : null")


def press(w, key):
    """A key press on the focused element, as the keyboard sends it."""
    active = w.cmd("GET", "/element/active")[ELEMENT]
    w.cmd("POST", f"/element/{active}/value", {"text": key})


def focused(w):
    return w.js("const a = document.activeElement; return a ? (a.id || a.getAttribute('aria-label') || a.tagName) : null")


CONTROLS = """
const visible = (el) => el.getClientRects().length > 0 && !el.closest('[hidden]');
const name = (el) => {
  if (el.getAttribute('aria-label')) return el.getAttribute('aria-label');
  const by = el.getAttribute('aria-labelledby');
  if (by) return by.split(' ').map((id) => (document.getElementById(id) || {}).textContent || '').join(' ');
  if (el.labels && el.labels.length) return [...el.labels].map((l) => l.textContent).join(' ');
  if (['BUTTON', 'A'].includes(el.tagName)) return el.textContent;
  return el.getAttribute('title') || '';
};
return [...document.querySelectorAll('#onboarding button, #onboarding input, #onboarding a[href], #export button')]
  .filter(visible).map((el) => ({ id: el.id || el.getAttribute('aria-label'), name: name(el).trim(), disabled: el.disabled }));
"""


def accessible(w, screen):
    """Every control of the screen has an accessible name and Tab reaches each enabled one."""
    controls = w.js(CONTROLS)
    unnamed = [c for c in controls if not c["name"]]
    if not controls or unnamed:
        fail(f"{screen}: every control needs an accessible name: {unnamed or 'no controls'}")
    heading = w.js("const s = [...document.querySelectorAll('#onboarding .step')].find(s => !s.hidden);"
                   " const h = s && s.querySelector('h1'); return h ? h.textContent : ''")
    if not heading:
        fail(f"{screen}: the screen needs a heading")
    want = [c["id"] for c in controls if not c["disabled"]]
    seen = []
    for _ in range(len(want) * 2 + 2):
        seen.append(focused(w))
        if all(x in seen for x in want):
            break
        press(w, TAB)
    missing = [x for x in want if x not in seen]
    if missing:
        fail(f"{screen}: Tab never reaches {missing} (order seen: {seen})")
    ok(f"{screen}: heading {heading.strip()!r}; {len(controls)} controls named and reached by Tab: "
       f"{[c['name'] for c in controls]}")


def main():
    it_sent = os.path.join(SESSION, "it-sent")
    os.makedirs(it_sent)
    policy_path = os.path.join(it_sent, "ema-policy.json")
    subprocess.Popen([EMA, "sandbox", "--write-policy", policy_path], stdout=subprocess.DEVNULL,
                     stderr=open(os.path.join(SESSION, "sandbox.log"), "w"))
    wait_for("the sandbox policy", lambda: os.path.exists(policy_path) and os.path.getsize(policy_path) > 0)
    time.sleep(0.2)
    with open(policy_path, encoding="utf-8") as f:
        policy = json.load(f)
    harness.SANDBOX = re.match(r"(http://127\.0\.0\.1:\d+)", policy["idp"]["issuer"]).group(1)
    url = {c["id"]: c["mcp_url"] for c in policy["connectors"]}
    # The new hire's Claude Code has two old personal connections.
    claude_json = os.path.join(HOME, ".claude.json")
    planted = json.dumps({
        "numStartups": 41,
        "mcpServers": {
            "linear": {"type": "http", "url": url["linear"], "headers": {"Authorization": f"Bearer {CANARY}"}},
            "supabase": {"type": "stdio", "command": "npx",
                         "args": ["-y", "@supabase/mcp-server-supabase@latest", "--access-token", SUPABASE_CANARY]},
            "notes": {"command": "uvx", "args": ["notes-mcp"]},
        },
    }, indent=2) + "\n"
    with open(claude_json, "w", encoding="utf-8") as f:
        f.write(planted)
    marker = os.path.join(HOME, ".local", "share", "ema", "onboarded.json")
    if os.path.exists(marker) or os.environ.get("EMA_CONFIG"):
        fail("the first run needs a fresh account: no onboarding marker, no EMA_CONFIG")

    # 1. No policy anywhere: the setup screen opens by itself.
    w = Window([])
    wait_for("the setup screen", lambda: step(w) == "step-setup", 30)
    if focused(w) != "policy-source":
        fail(f"the setup screen should start in its input, focus is on {focused(w)!r}")
    text = w.text("#step-setup")
    if "/etc/ema/policy.json" not in text or "always wins" not in text:
        fail(f"the setup screen should say where IT installs the policy and that it wins: {text!r}")
    ok("with no policy the app opens the setup screen by itself, saying where IT installs it and that it wins")
    accessible(w, "setup screen")
    w.screenshot("onboarding-1-setup.png")
    field = w.cmd("POST", "/element", {"using": "css selector", "value": "#policy-source"})[ELEMENT]
    w.cmd("POST", f"/element/{field}/value", {"text": os.path.join(it_sent, "nope.json") + ENTER})
    error = wait_for("the refusal", lambda: w.text("#ob-error"), 15)
    if "nope.json" not in error or "policy-unreadable" not in error:
        fail(f"a wrong path should be refused with the reason: {error!r}")
    ok(f"a wrong path is refused: {error!r}")
    w.cmd("POST", f"/element/{field}/clear", {})
    w.cmd("POST", f"/element/{field}/value", {"text": policy_path + ENTER})
    wait_for("the welcome screen", lambda: step(w) == "step-welcome", 30)
    heading = w.text("#step-welcome h1")
    button = w.text("#onboarding-sign-in")
    if heading != "Welcome to EMA for Sandbox Org" or button != "Sign in with Sandbox IdP":
        fail(f"the welcome screen should name the organisation and the IdP: {heading!r} / {button!r}")
    saved = os.path.join(HOME, ".config", "ema", "policy.json")
    if not os.path.exists(saved):
        fail("the loaded configuration should be saved as the user's policy")
    ok(f"the file IT sent loads in the same window: {heading!r}, button {button!r}, saved to {saved}")

    # 2. Sign in with the keyboard; the connectors appear. Atlassian's authorization server refuses
    #    the grant, so one connector fails and offers help.
    harness.knobs({"failing_connectors": {"atlassian": "invalid_grant"}})
    if focused(w) != "onboarding-sign-in":
        fail(f"the welcome screen should start on its sign-in button, focus is on {focused(w)!r}")
    accessible(w, "welcome screen")
    w.screenshot("onboarding-2-welcome.png")
    w.js("document.getElementById('onboarding-sign-in').focus()")
    press(w, ENTER)
    wait_for("the connecting screen", lambda: step(w) == "step-connecting", 15)
    seen_phases = set()

    def settled():
        # Rows and button read in one call: the list may re-render between two calls.
        done, rows = w.js("return [!document.getElementById('ob-continue').disabled,"
                          " [...document.querySelectorAll('#ob-connectors li')].map(li => [li.dataset.connector, li.dataset.phase])]")
        seen_phases.update(p for _, p in rows or [])
        return rows if done else None
    rows = dict(wait_for("the connectors to settle", settled, 60))
    want = {"linear": "ready", "supabase": "ready", "atlassian": "failed", "figma": "not-entitled"}
    for cid, phase in want.items():
        if rows.get(cid) != phase:
            fail(f"{cid} should be {phase!r} for alice: {rows}")
    summary = w.text("#ob-summary")
    if summary != "2 connectors ready, 1 needs help":
        fail(f"the summary should count the ready and the failed connectors: {summary!r}")
    ok(f"after the sign-in the connectors appear ({rows}); summary {summary!r}")
    why = w.text("#ob-connectors li[data-connector='atlassian'] .reason")
    if why != "Atlassian's authorization server refused access (invalid_grant).":
        fail(f"the failed connector should say why in plain words: {why!r}")
    accessible(w, "connectors screen")
    w.screenshot("onboarding-3-connectors.png")
    w.click("#ob-connectors li[data-connector='atlassian'] button")
    files = wait_for("the diagnostics preview", lambda: w.js(
        "const s = document.getElementById('export-save'); return s && !s.hidden ? "
        "[...document.querySelectorAll('#export-files summary')].map(x => x.textContent) : null"), 60)
    if "summary.txt" not in files:
        fail(f"'Get help' should prepare the diagnostics file: {files}")
    ok(f"Atlassian failed: {why!r}; 'Get help' prepares the diagnostics file for the help desk ({files})")
    w.click("#export-cancel")
    harness.knobs({"failing_connectors": {}})

    # 3. The old connections: migrate Linear, skip Supabase.
    w.click("#ob-continue")
    wait_for("the migration screen", lambda: step(w) == "step-migrate", 15)
    offers = wait_for("the offers", lambda: w.js("return [...document.querySelectorAll('#ob-offers li button')].map(b => b.getAttribute('aria-label'))"), 15)
    linear_offer = "Replace your personal token for Linear in Claude Code by the company connection"
    supabase_offer = "Replace your personal token for Supabase in Claude Code by the company connection"
    if sorted(offers) != sorted([linear_offer, supabase_offer]):
        fail(f"both old entries should be offered with what will happen: {offers}")
    ok(f"the old Claude Code entries are offered: {offers}")
    accessible(w, "migration screen")
    w.screenshot("onboarding-4-migrate.png")
    w.click(f"#ob-offers button[aria-label='{linear_offer}']")
    done = wait_for("the migration", lambda: w.text("#ob-migrated"), 15)
    with open(claude_json, encoding="utf-8") as f:
        doc = json.load(f)
    entry = doc["mcpServers"]["linear"]
    if "headersHelper" not in entry or not entry["headersHelper"].endswith(" headers linear") or "headers" in entry:
        fail(f"the Linear entry should now be the company connection: {entry}")
    if doc["mcpServers"]["supabase"]["args"][-1] != SUPABASE_CANARY or doc["numStartups"] != 41:
        fail(f"the rest of the file must stay as it was: {doc}")
    backups = os.path.join(HOME, ".local", "share", "ema", "remediation", "backups")
    kept = [n for n in os.listdir(backups) if open(os.path.join(backups, n), encoding="utf-8").read() == planted]
    if len(kept) != 1:
        fail(f"the file before the migration should be backed up once: {os.listdir(backups)}")
    left = wait_for("Linear to leave the offers", lambda: (lambda o: o if o == [supabase_offer] else None)(
        w.js("return [...document.querySelectorAll('#ob-offers li button')].map(b => b.getAttribute('aria-label'))")), 15)
    ok(f"Linear migrated ({done!r}), backup {kept[0]}; still offered: {left}")
    w.screenshot("onboarding-5-migrated.png")
    w.click("#ob-migrate-next")

    # 4. Opt in to start at login (keyboard), finish.
    wait_for("the last choices", lambda: step(w) == "step-finish", 15)
    if focused(w) != "ob-autostart":
        fail(f"the choices screen should start on its first checkbox, focus is on {focused(w)!r}")
    accessible(w, "choices screen")
    w.js("document.getElementById('ob-autostart').focus()")
    press(w, SPACE)
    autostart = os.path.join(HOME, ".config", "autostart", "EMA.desktop")
    wait_for("the autostart entry", lambda: os.path.exists(autostart), 10)
    if not w.js("return document.getElementById('ob-notifications').checked"):
        fail("notifications should be on by default (the policy's default)")
    ok(f"Space on 'Start EMA when I log in' writes {autostart}")
    w.screenshot("onboarding-6-choices.png")
    before = len(notifications())
    w.click("#ob-finish")
    wait_for("the hint", lambda: step(w) == "step-done", 15)
    hint = w.text("#step-done")
    if "lives in your tray" not in hint or "Signed in as alice@example.com: 2 connectors ready, 1 needs help" not in hint:
        fail(f"the last screen should say where EMA lives and what is ready: {hint!r}")
    accessible(w, "hint screen")
    w.screenshot("onboarding-7-done.png")
    note = wait_for("the hint notification", lambda: [n for n in notifications()[before:] if "lives in your tray" in n[0]], 15)
    ok(f"Finish shows where EMA lives, in the window and as a notification: {note[0]}")
    pid = close_window(lambda: w.click("#ob-close"))
    ok(f"'Got it' closes the window; the tray runs on (pid {pid})")

    # 5. The end state.
    status = subprocess.run([EMA, "status", "--json"], capture_output=True, text=True, timeout=60,
                            env={k: v for k, v in os.environ.items() if k != "EMA_CONFIG"})
    try:
        s = json.loads(status.stdout)
    except ValueError:
        fail(f"ema status --json failed: {status.stdout[:300]!r} {status.stderr[-500:]!r}")
    states = {c["id"]: c["state"] for c in s["connectors"]}
    if s["idp"]["state"] != "active" or states.get("linear") != "active":
        fail(f"the tokens should be in the keyring for the next program: {s['idp']['state']} {states}")
    if not os.path.exists(marker) or not os.path.exists(autostart):
        fail("onboarding should be recorded and the autostart entry kept")
    ok(f"end state: signed in from the keyring ({states}), ~/.claude.json migrated with a backup, "
       f"autostart entry and onboarding marker written")
    logs = ""
    for name in ("notify.log", "driver.log", "browser.log"):
        path = os.path.join(SESSION, name)
        if os.path.exists(path):
            logs += open(path, encoding="utf-8", errors="replace").read()
    if CANARY in logs or SUPABASE_CANARY in logs:
        fail("a planted token appeared in a log or notification")
    ok("no planted token in any log or notification")

    # 6. The second start skips onboarding; deleting the stored state brings it back.
    menu_click("Quit EMA")  # as the user quits it, from the tray menu (over D-Bus)
    w.quit()
    wait_for("the app to exit", lambda: not tray_pids(), 15)
    w = Window(["--open"])
    wait_for("the status window", lambda: "alice@example.com" in w.text("#identity"), 30)
    if step(w) is not None:
        fail(f"a second start must not show onboarding (screen {step(w)!r})")
    ok("a second start opens the plain status window: alice is signed in, no onboarding")
    w.screenshot("onboarding-8-second-run.png")
    w.quit()
    wait_for("the app to exit", lambda: not tray_pids(), 15)
    os.remove(marker)
    logout = subprocess.run([EMA, "logout"], capture_output=True, text=True, timeout=60)
    if logout.returncode != 0:
        fail(f"ema logout failed: {logout.stderr[-300:]!r}")
    w = Window([])
    wait_for("the welcome screen again", lambda: step(w) == "step-welcome", 30)
    ok("with the stored state deleted (marker and tokens), the welcome screen opens by itself again")
    w.quit()
    print(f"tray-onboarding: {harness.passed} passed, 0 failed", flush=True)


if __name__ == "__main__":
    main()
