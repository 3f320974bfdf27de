// The status window: renders the engine's status snapshot (docs/status-schema.md) and the
// personal-account findings (docs/personal-connections.md), and keeps the countdowns live. All state comes from the `status` and `settings` events and the matching
// `get_*` commands (relayed from the tray process); the buttons are one-line calls to commands.
// @ts-check: tests/ui-types/run.sh checks this file with tsc against the window protocol's
// types, written from the Rust enum (tests/ui-types/protocol.d.ts).
const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

/**
 * Sends one command to the tray (`Command` in src-tauri/src/window_protocol.rs).
 * @param {Command} command
 * @returns {Promise<void>}
 */
function request(command) {
  return invoke("request", { command });
}

/** The window's buttons for a fix the engine offers (`fix_action`, docs/status-schema.md). */
const FIX_BUTTONS = { sign_in: "Sign in...", refresh: "Refresh now" };

/**
 * What to do about `problem`, naming the button above that does it.
 * @param {StatusError} problem
 */
function fixWords(problem) {
  const fix = sentence(problem.fix);
  const button = FIX_BUTTONS[problem.fix_action];
  if (!button) return fix;
  // Right after the action, before a follow-up note (as ema_core::status::word_fix).
  const at = fix.indexOf("; ");
  const control = ` (the "${button}" button above)`;
  return at < 0 ? `${fix}${control}` : `${fix.slice(0, at)}${control}${fix.slice(at)}`;
}

/**
 * Whether to offer "Sign in...": signed out, the session ended, or a fix asks for it
 * (as ema_core::status::StatusSnapshot::offers_sign_in).
 * @param {StatusSnapshot} s
 */
function offersSignIn(s) {
  const asks = (/** @type {StatusError | null} */ e) => !!e && e.fix_action === "sign_in";
  return ["signed_out", "expired", "step_up_required"].includes(s.idp.state)
    || asks(s.idp.last_error)
    || s.connectors.some((c) => asks(c.error) || asks(c.renewal_error));
}

const STATE_WORDS = {
  needs_sign_in: "Sign-in needed", connecting: "Connecting...", active: "Active", expiring_soon: "Expiring soon",
  expired: "Expired", not_entitled: "Not assigned to you", error: "Error",
  step_up_required: "Sign in again to confirm it's you",
};

/** @type {StatusSnapshot | null} */
let snapshot = null;
/** @type {PersonalView | null} */
let personal = null;

function left(iso) {
  if (!iso) return "";
  const secs = Math.round((Date.parse(iso) - Date.now()) / 1000);
  if (secs <= 0) return "expired";
  if (secs < 90) return `in ${secs} s`;
  if (secs < 5400) return `in ${Math.round(secs / 60)} min`;
  return `in ${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
}

function clock(iso) {
  return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

// Messages and fixes are sentences from the core, which writes them in lower case for the CLI.
function sentence(text) {
  if (!text || /^[a-z]+:\/\//.test(text)) return text || "";
  return text[0].toUpperCase() + text.slice(1);
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function render() {
  if (!snapshot) return;
  const s = snapshot;
  document.getElementById("org").textContent = s.organization;
  const who = s.idp.identity ? (s.idp.identity.email || s.idp.identity.sub) : null;
  const signedIn = s.idp.state !== "signed_out";
  document.getElementById("identity").textContent = signedIn ? `Signed in as ${who || "?"} at ${s.idp.issuer}` : `Not signed in (${s.idp.issuer})`;
  document.getElementById("sign-in").hidden = !offersSignIn(s);
  document.getElementById("refresh").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  const note = document.getElementById("idp-note");
  const notes = [];
  if (s.idp.state === "unreachable") notes.push("IdP unreachable: connectors keep working until their tokens expire.");
  if (s.idp.state === "expired") notes.push("Your sign-in has ended: sign in again.");
  if (s.idp.state === "step_up_required") notes.push("Your IdP asks you to sign in again.");
  if (signedIn && !s.idp.renewable) notes.push("The IdP gave no refresh token: you will have to sign in again when this sign-in ends.");
  note.textContent = notes.join(" ");
  note.hidden = notes.length === 0;
  const body = document.getElementById("connectors");
  body.replaceChildren();
  for (const c of s.connectors) {
    const tr = document.createElement("tr");
    tr.dataset.connector = c.id;
    tr.appendChild(cell(c.display_name));
    const state = cell(STATE_WORDS[c.state] || c.state, `state-${c.state}`);
    const problem = c.state === "active" ? c.renewal_error : (c.error || c.renewal_error);
    if (problem && c.state !== "not_entitled") {
      const d = document.createElement("span");
      d.className = "detail";
      let until = "";
      if (c.renewal_error && c.expires_at) {
        until = c.state === "expired" ? ` Expired at ${clock(c.expires_at)}.` : ` ${c.display_name} works until ${clock(c.expires_at)}.`;
      }
      d.textContent = `${sentence(problem.message)}.${until} ${fixWords(problem)}. [${problem.code}]`;
      state.appendChild(d);
    }
    tr.appendChild(state);
    const live = ["active", "expiring_soon"].includes(c.state);
    const exp = cell(live ? `${left(c.expires_at)} (${clock(c.expires_at)})` : "");
    exp.dataset.expires = live ? c.expires_at : "";
    tr.appendChild(exp);
    tr.appendChild(cell((c.scopes || []).join(" ")));
    tr.appendChild(cell(clock(c.last_renewal)));
    body.appendChild(tr);
  }
}

function connectorName(id) {
  const c = snapshot && snapshot.connectors.find((c) => c.id === id);
  return c ? c.display_name : (id || "An entry");
}

// The personal-account findings that need the user, each with the remedies its client allows.
function renderPersonal() {
  if (!personal) return;
  const section = document.getElementById("personal");
  const list = document.getElementById("personal-list");
  list.replaceChildren();
  for (const f of personal.findings) {
    const li = document.createElement("li");
    li.dataset.finding = f.id;
    li.className = `verdict-${f.verdict}`;
    const name = connectorName(f.connector);
    const title = document.createElement("strong");
    title.textContent = `${f.connector ? name : (f.server_name || "A file")} in ${f.client_name}`;
    li.appendChild(title);
    const where = document.createElement("code");
    where.textContent = f.key_path ? `${f.path} ${f.key_path}` : f.path;
    li.appendChild(where);
    for (const [text, cls] of [[f.why, "why"], [f.what_to_do, "todo"]]) {
      const p = document.createElement("p");
      p.className = cls;
      p.textContent = text;
      li.appendChild(p);
    }
    const actions = document.createElement("div");
    actions.className = "actions";
    const label = f.connector ? name : (f.server_name || "this entry");
    if (f.can_replace) actions.appendChild(fixButton(f, "replace", "Use the company connection", `Replace ${label} in ${f.client_name} by the company connection`));
    if (f.can_remove) actions.appendChild(fixButton(f, "remove", "Remove", `Remove ${label} from ${f.client_name}`));
    li.appendChild(actions);
    list.appendChild(li);
  }
  const undo = document.getElementById("personal-undo");
  undo.hidden = !personal.undo;
  undo.querySelector("span").textContent = personal.undo ? `${personal.undo}. A backup was kept.` : "";
  section.hidden = personal.findings.length === 0 && !personal.undo;
}

/**
 * @param {PersonalFindingView} f
 * @param {"remove" | "replace"} action
 * @param {string} text
 * @param {string} label
 */
function fixButton(f, action, text, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.dataset.action = action;
  b.addEventListener("click", () => act(b, { command: "fix-personal", id: f.id, action }));
  return b;
}

function showError(e) {
  const err = document.getElementById("error");
  err.textContent = `${e.message || e} [${e.code || "error"}]`;
  err.hidden = false;
}

/**
 * Runs `command`, marking `button` busy meanwhile and showing a failure.
 * @param {HTMLElement | null} button
 * @param {Command} command
 */
async function act(button, command) {
  document.getElementById("error").hidden = true;
  if (button) button.setAttribute("aria-busy", "true");
  try {
    await request(command);
  } catch (e) {
    showError(e);
  } finally {
    if (button) button.removeAttribute("aria-busy");
  }
}

/** @type {[string, Command][]} */
const sessionButtons = [["sign-in", { command: "sign-in" }], ["refresh", { command: "refresh" }], ["sign-out", { command: "sign-out" }]];
for (const [id, command] of sessionButtons) {
  const button = document.getElementById(id);
  button.addEventListener("click", () => act(button, command));
}
// Escape closes the window (to the tray, like its close button); its process then exits.
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") window.__TAURI__.window.getCurrentWindow().close();
});
const autostart = input("autostart");
autostart.addEventListener("change", () => act(null, { command: "set-autostart", enabled: autostart.checked }));
const notificationsBox = input("notifications");
notificationsBox.addEventListener("change", () => act(null, { command: "set-notifications", enabled: notificationsBox.checked }));
listen("status", (e) => { snapshot = e.payload; render(); renderPersonal(); });
listen("personal", (e) => { personal = e.payload; renderPersonal(); });
const undoButton = document.getElementById("undo");
undoButton.addEventListener("click", () => act(undoButton, { command: "undo-personal" }));
/** @param {AppSettings} s */
function showSettings(s) {
  autostart.checked = s.autostart;
  autostart.disabled = s.autostart_locked;
  autostart.title = s.autostart_locked ? "Set by your organisation" : "";
  notificationsBox.checked = s.notifications;
  notificationsBox.disabled = s.notifications_locked;
  notificationsBox.title = s.notifications_locked ? "Set by your organisation" : "";
  /** @type {[string, boolean, boolean][]} */
  const boxes = [["ob-autostart", s.autostart, s.autostart_locked], ["ob-notifications", s.notifications, s.notifications_locked]];
  for (const [id, on, locked] of boxes) {
    const box = input(id);
    box.checked = on;
    box.disabled = locked;
    document.getElementById(`${id}-locked`).hidden = !locked;
  }
}
listen("settings", (e) => showSettings(e.payload));
invoke("get_settings").then(showSettings, showError);
// The first run shows the welcome screens (below); an app with no policy has no status to ask for.
invoke("get_onboarding").then((view) => {
  showOnboarding(view);
  if (view && !view.configured) return;
  invoke("get_status").then((s) => { snapshot = s; render(); renderPersonal(); }, showError);
  invoke("get_personal").then((p) => { personal = p; renderPersonal(); }, showError);
}, showError);
// The countdowns tick every second; the data itself only changes on `status` events.
setInterval(() => {
  for (const td of document.querySelectorAll("td[data-expires]")) {
    if (!(td instanceof HTMLElement)) continue;
    if (td.dataset.expires) td.textContent = `${left(td.dataset.expires)} (${clock(td.dataset.expires)})`;
  }
}, 1000);

// "Export diagnostics...": the tray runs the checks and sends the bundle's files; the user sees
// exactly what will be shared before anything is written.
/** @type {HelpDeskView | null} */
let helpDesk = null;
/** @param {HelpDeskView | null} desk */
function showHelpDesk(desk) {
  helpDesk = desk;
  document.getElementById("help-desk").textContent = desk ? `Help desk: ${desk.name} (${desk.url})` : "";
  document.getElementById("help-desk-open").hidden = !desk;
}
const exportSection = document.getElementById("export");
const exportStatus = document.getElementById("export-status");
const exportFiles = document.getElementById("export-files");
const saveButton = document.getElementById("export-save");
const cancelButton = document.getElementById("export-cancel");
async function startExport() {
  exportSection.hidden = false;
  exportFiles.replaceChildren();
  saveButton.hidden = true;
  cancelButton.hidden = true;
  exportStatus.textContent = "Running the checks (each connector is tried once)...";
  exportSection.scrollIntoView();
  await act(document.getElementById("export-start"), { command: "prepare-export" });
}
function showPreview(p) {
  exportStatus.textContent = `Support ID ${p.support_id}. This is everything the file will contain; nothing is saved until you choose Save (to ${p.save_to}).`;
  exportFiles.replaceChildren();
  for (const [name, content] of p.files) {
    const d = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = name;
    const pre = document.createElement("pre");
    pre.textContent = content;
    d.append(summary, pre);
    exportFiles.appendChild(d);
  }
  saveButton.hidden = false;
  cancelButton.hidden = false;
  saveButton.focus();
}
document.getElementById("export-start").addEventListener("click", startExport);
saveButton.addEventListener("click", () => act(saveButton, { command: "save-export" }));
cancelButton.addEventListener("click", () => { exportSection.hidden = true; });
listen("help-desk", (e) => showHelpDesk(e.payload));
const helpDeskButton = document.getElementById("help-desk-open");
helpDeskButton.addEventListener("click", () => act(helpDeskButton, { command: "open-help-desk" }));
listen("start-export", () => startExport());
listen("export-preview", (e) => showPreview(e.payload));
listen("export-saved", (e) => {
  exportFiles.replaceChildren();
  saveButton.hidden = true;
  cancelButton.hidden = true;
  const to = helpDesk ? `${helpDesk.name} (${helpDesk.url})` : "your help desk";
  exportStatus.textContent = `Saved to ${e.payload}. Send this file to ${to}; it holds no token or password.`;
});
invoke("get_extras").then((x) => {
  if (x.help_desk) showHelpDesk(x.help_desk);
  if (x.start_export) startExport();
}, showError);

// ---- First-run onboarding ------------------------------------------------------------------
// The tray decides what the screens show (`onboarding` events: the core's live connector list,
// its summary and the migration offers); this only walks the user through them. Each screen's
// first control (or its heading) takes the focus, so the keyboard always starts in the right place.
/** @type {OnboardingView | null} */
let onboardingView = null;
let onboardingStep = null;
let signingIn = false;
const migrated = [];

function byId(id) { return document.getElementById(id); }

/**
 * The `<input>` of id `id`.
 * @param {string} id
 * @returns {HTMLInputElement}
 */
function input(id) { return /** @type {HTMLInputElement} */ (document.getElementById(id)); }

function showStep(step) {
  if (step === onboardingStep) return;
  onboardingStep = step;
  for (const el of document.querySelectorAll("#onboarding .step")) if (el instanceof HTMLElement) el.hidden = el.id !== `step-${step}`;
  const first = { setup: "policy-source", welcome: "onboarding-sign-in", finish: "ob-autostart", done: "ob-close" }[step];
  const target = first ? byId(first) : byId(`step-${step}`).querySelector("h1");
  target.focus();
}

function obError(e) {
  const err = byId("ob-error");
  if (!e) { err.hidden = true; return; }
  err.textContent = `${sentence(e.message || String(e))} [${e.code || "error"}]`;
  err.hidden = false;
}

/** @param {OnboardingView | null} view */
function showOnboarding(view) {
  if (!view) {
    // Not (or no longer) onboarding: the status window. A finished onboarding keeps its last
    // screen until the user closes it.
    if (onboardingStep === "done") return;
    onboardingStep = null;
    document.body.classList.remove("onboarding");
    byId("onboarding").hidden = true;
    return;
  }
  onboardingView = view;
  const v = onboardingView;
  document.body.classList.add("onboarding");
  byId("onboarding").hidden = false;
  byId("managed-path").textContent = v.places.managed_path;
  byId("user-path").textContent = v.places.user_path || "";
  if (!v.configured) return showStep("setup");
  for (const el of document.querySelectorAll(".ob-org")) el.textContent = v.organization;
  for (const el of document.querySelectorAll(".ob-idp")) el.textContent = v.idp_name;
  byId("ob-issuer").textContent = new URL(v.issuer).host;
  document.title = `Welcome to EMA - ${v.organization}`;
  renderProgress(v);
  renderOffers(v);
  if (["setup", "welcome", null].includes(onboardingStep)) showStep(v.signed_in || signingIn ? "connecting" : "welcome");
}

const PHASE_WORDS = { connecting: "Connecting...", ready: "Ready", "not-entitled": "Not assigned to you", failed: "Failed" };

/** @param {OnboardingView} v */
function renderProgress(v) {
  const list = byId("ob-connectors");
  list.replaceChildren();
  for (const r of v.progress.rows) {
    const li = document.createElement("li");
    li.dataset.connector = r.id;
    li.dataset.phase = r.phase;
    const name = document.createElement("strong");
    name.textContent = r.display_name;
    const state = document.createElement("span");
    state.className = `phase-${r.phase}`;
    state.textContent = PHASE_WORDS[r.phase] || r.phase;
    li.append(name, state);
    if (r.phase === "failed") {
      const why = document.createElement("span");
      why.className = "reason";
      why.textContent = `${sentence(r.reason || "it failed")}.`;
      why.title = r.detail || "";
      const help = document.createElement("button");
      help.type = "button";
      help.textContent = "Get help";
      const desk = v.help_desk ? v.help_desk.name : "your help desk";
      help.setAttribute("aria-label", `Get help with ${r.display_name}: prepare a diagnostics file for ${desk}`);
      help.addEventListener("click", () => startExport());
      li.append(why, help);
    }
    list.appendChild(li);
  }
  const settled = v.signed_in && v.progress.settled;
  byId("ob-summary").textContent = !v.signed_in ? "Waiting for the sign-in..." : v.progress.summary;
  byId("ob-browser").hidden = v.signed_in;
  /** @type {HTMLButtonElement} */ (byId("ob-continue")).disabled = !settled;
  byId("ob-ready").textContent = v.signed_in ? `Signed in as ${v.identity || "you"}: ${v.progress.summary}.` : "";
}

/** @param {OnboardingView} v */
function renderOffers(v) {
  const list = byId("ob-offers");
  list.replaceChildren();
  for (const o of v.offers) {
    const li = document.createElement("li");
    li.dataset.finding = o.id;
    const what = document.createElement("span");
    what.textContent = o.description;
    const where = document.createElement("code");
    where.textContent = o.key_path ? `${o.path} ${o.key_path}` : o.path;
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Migrate";
    b.setAttribute("aria-label", o.description);
    b.addEventListener("click", () => migrate([o], b));
    li.append(what, b, where);
    list.appendChild(li);
  }
  byId("ob-migrate-all").hidden = v.offers.length === 0;
  byId("ob-migrate-next").textContent = v.offers.length === 0 ? "Continue" : "Skip";
  byId("ob-migrated").textContent = migrated.length ? `Migrated, each with a backup: ${migrated.join("; ")}.` : "";
  byId("ob-undo").hidden = migrated.length === 0;
}

// One by one, in order: each fix reads the file as the previous one left it.
/**
 * @param {OfferView[]} offers
 * @param {HTMLElement | null} button
 */
async function migrate(offers, button) {
  obError(null);
  if (button) button.setAttribute("aria-busy", "true");
  try {
    for (const o of offers) {
      await request({ command: "fix-personal", id: o.id, action: o.action });
      migrated.push(`${o.connector_name} in ${o.client_name}`);
    }
  } catch (e) {
    obError(e);
  } finally {
    if (button) button.removeAttribute("aria-busy");
    renderOffers(onboardingView);
    byId("step-migrate").querySelector("h1").focus();
  }
}

async function loadPolicy() {
  obError(null);
  const button = byId("policy-load");
  button.setAttribute("aria-busy", "true");
  try {
    await request({ command: "load-policy", source: input("policy-source").value });
  } catch (err) {
    obError(err);
    byId("policy-source").focus();
  } finally {
    button.removeAttribute("aria-busy");
  }
}
byId("policy-form").addEventListener("submit", (e) => { e.preventDefault(); loadPolicy(); });
// A file dropped on the setup screen is loaded like a typed path.
window.__TAURI__.webview.getCurrentWebview().onDragDropEvent((e) => {
  if (onboardingStep !== "setup" || e.payload.type !== "drop" || !e.payload.paths.length) return;
  input("policy-source").value = e.payload.paths[0];
  loadPolicy();
});

byId("onboarding-sign-in").addEventListener("click", async () => {
  obError(null);
  signingIn = true;
  showStep("connecting");
  try {
    await request({ command: "sign-in" });
  } catch (e) {
    signingIn = false;
    showStep("welcome");
    obError(e);
  }
});

byId("ob-continue").addEventListener("click", () => showStep(onboardingView.offers.length ? "migrate" : "finish"));
byId("ob-migrate-all").addEventListener("click", () => migrate([...onboardingView.offers], byId("ob-migrate-all")));
byId("ob-migrate-next").addEventListener("click", () => showStep("finish"));
byId("ob-undo").addEventListener("click", async (e) => {
  const button = /** @type {HTMLElement} */ (e.currentTarget);
  obError(null);
  try {
    await request({ command: "undo-personal" });
    migrated.pop();
    renderOffers(onboardingView);
  } catch (err) {
    obError(err);
  }
  button.focus();
});
/** @type {[string, "set-autostart" | "set-notifications"][]} */
const onboardingSwitches = [["ob-autostart", "set-autostart"], ["ob-notifications", "set-notifications"]];
for (const [id, command] of onboardingSwitches) {
  const box = input(id);
  box.addEventListener("change", () => request({ command, enabled: box.checked }).catch(obError));
}
byId("ob-finish").addEventListener("click", async () => {
  obError(null);
  try {
    await request({ command: "finish-onboarding" });
    showStep("done");
  } catch (e) {
    obError(e);
  }
});
byId("ob-close").addEventListener("click", () => window.__TAURI__.window.getCurrentWindow().close());
listen("onboarding", (e) => showOnboarding(e.payload));
