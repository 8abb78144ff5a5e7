// The web inbox in the browser: live refresh from the API's SSE streams, ticking ages and
// deadlines, and decisions sent to the JSON API.
//
// Cards are keyed by thread and tool call (never by position), a decision carries the card's
// args_hash (it binds to what the reviewer saw), and a card the reviewer is using (pointer or
// focus in it, a form open, a request in flight, a result shown) is never replaced or removed
// under them: it is marked instead, and goes once they leave it.
"use strict";

(() => {
  const main = document.getElementById("main");
  if (!main) return;
  const CSRF_HEADER = document.body.dataset.csrfHeader || "X-Hitl-CSRF";
  const URGENT_SECONDS = 5 * 60;
  const DONE = {
    approve: ["Approved", "running"],
    edit: ["Edited", "running with your arguments"],
    reject: ["Rejected", "the agent is told"],
    respond: ["Answered", "the agent reads your answer"],
    retry: ["Settled: run again", "running"],
    mark_done: ["Settled: marked done", "continuing"],
    skip: ["Settled: skipped", "continuing"],
  };
  const PAST = { approve: "approved", reject: "rejected", edit: "edited", respond: "answered" };

  // --- time -------------------------------------------------------------------------------

  const seconds = (iso) => new Date(iso).getTime() / 1000;

  function ago(iso, now) {
    if (!iso) return "—";
    const s = Math.max(0, Math.floor(now - seconds(iso)));
    if (s < 60) return "just now";
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    const days = Math.floor(s / 86400);
    return `${days} day${days > 1 ? "s" : ""} ago`;
  }

  function countdown(iso, now) {
    if (!iso) return ["no deadline", "none"];
    const left = Math.floor(seconds(iso) - now);
    if (left <= 0) return ["overdue", "overdue"];
    const h = Math.floor(left / 3600);
    const m = Math.floor((left % 3600) / 60);
    const s = left % 60;
    const pad = (n) => String(n).padStart(2, "0");
    let text;
    if (h >= 24) text = `${Math.floor(h / 24)} d ${h % 24} h left`;
    else if (h) text = `${h}:${pad(m)}:${pad(s)} left`;
    else text = `${m}:${pad(s)} left`;
    return [text, left < URGENT_SECONDS ? "urgent" : "ok"];
  }

  function tick() {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll("[data-ago]")) {
      el.textContent = ago(el.getAttribute("datetime"), now);
    }
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const [text, state] = countdown(el.dataset.deadline, now);
      if (el.textContent !== text) el.textContent = text;
      el.className = `deadline deadline--${state}`;
    }
  }

  function localize(root) {
    const format = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" };
    for (const el of root.querySelectorAll("time[data-local]")) {
      el.textContent = new Date(el.getAttribute("datetime")).toLocaleString(undefined, format);
      el.title = el.getAttribute("datetime");
    }
  }

  // --- live refresh -----------------------------------------------------------------------

  let refreshing = null;
  let refreshAgain = false;
  let signature = main.querySelector("[data-signature]")?.dataset.signature;

  function scheduleRefresh() {
    if (refreshing) {
      refreshAgain = true;
      return;
    }
    refreshing = refresh()
      .catch(() => {}) // the next event or reconnect tries again
      .finally(() => {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          scheduleRefresh();
        }
      });
  }

  async function refresh() {
    const response = await fetch(main.dataset.refresh, { cache: "no-store", credentials: "same-origin" });
    if (response.status === 401) return toLogin();
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of fresh.body.querySelectorAll("[data-region]")) {
      const current = main.querySelector(`[data-region="${CSS.escape(region.dataset.region)}"]`);
      if (!current) continue;
      if (region.hasAttribute("data-cards")) {
        mergeCards(current, region);
        if (region.dataset.signature !== undefined) {
          signature = current.dataset.signature = region.dataset.signature;
        }
      } else {
        // in place, not replaced: a screen reader announces a live region's new text only
        // when it is the same element
        for (const { name } of [...current.attributes]) {
          if (!region.hasAttribute(name)) current.removeAttribute(name);
        }
        for (const { name, value } of [...region.attributes]) current.setAttribute(name, value);
        current.replaceChildren(...[...region.childNodes].map((node) => document.adoptNode(node)));
        localize(current);
      }
    }
    const titled = main.querySelector("[data-title]");
    if (titled) document.title = titled.dataset.title;
    tick();
  }

  function mergeCards(list, fresh) {
    const old = new Map();
    for (const card of list.querySelectorAll(":scope > [data-card]")) old.set(card.dataset.key, card);
    let previous = null;
    for (const incoming of [...fresh.querySelectorAll(":scope > [data-card]")]) {
      let card = old.get(incoming.dataset.key);
      old.delete(incoming.dataset.key);
      if (!card) {
        card = document.adoptNode(incoming);
        if (previous) previous.after(card);
        else list.prepend(card);
      } else if (card.dataset.version !== incoming.dataset.version && !("settled" in card.dataset)) {
        if (inUse(card) && !("voted" in card.dataset)) {
          card.dataset.outdated = "";
          say(card, "This call changed since you opened it; close it to see what it asks now.", "warn");
        } else {
          const replacement = document.adoptNode(incoming);
          card.replaceWith(replacement);
          card = replacement;
        }
      } else if ("stale" in card.dataset) {
        delete card.dataset.stale; // back in the inbox (asked again)
        say(card, "");
      }
      if (card !== incoming && card.dataset.triage !== incoming.dataset.triage && !("settled" in card.dataset)) {
        // assigned or snoozed: not a change of what is decided, so swapped in place, in use or not
        for (const part of [".card__triage", ".actions--triage"]) {
          const now = card.querySelector(part);
          const fresh = incoming.querySelector(part);
          if (now && fresh) now.replaceWith(document.adoptNode(fresh));
          else if (now) now.remove();
          else if (fresh) card.querySelector(".card__meta")?.after(document.adoptNode(fresh));
        }
        card.dataset.triage = incoming.dataset.triage;
        localize(card);
      }
      previous = card;
    }
    for (const card of old.values()) {
      if ("settled" in card.dataset || "stale" in card.dataset) continue;
      if (inUse(card)) {
        card.dataset.stale = "";
        if (!("busy" in card.dataset)) {
          say(card, "No longer waiting here: decided or settled elsewhere.", "warn");
        }
      } else {
        card.remove();
      }
    }
  }

  function inUse(card) {
    const active = document.activeElement;
    return (
      "busy" in card.dataset ||
      "settled" in card.dataset ||
      (active !== document.body && card.contains(active)) ||
      card.matches(":hover") ||
      card.querySelector("form.decide:not([hidden]):not(.decide--shown)") !== null ||
      [...card.querySelectorAll("input, textarea, select")].some(changed)
    );
  }

  const changed = (el) =>
    el.type === "checkbox"
      ? el.checked !== el.defaultChecked
      : el.tagName === "SELECT"
        ? [...el.options].some((o) => o.selected !== o.defaultSelected)
        : el.value !== el.defaultValue;

  // Cards kept only because they were in use go once the reviewer has left them.
  let sweepQueued = false;
  function sweepSoon() {
    if (sweepQueued) return;
    sweepQueued = true;
    requestAnimationFrame(() => {
      sweepQueued = false;
      let outdated = false;
      for (const card of main.querySelectorAll("[data-card][data-stale], [data-card][data-outdated]")) {
        if ("settled" in card.dataset || inUse(card)) continue;
        if ("stale" in card.dataset) card.remove();
        else outdated = true;
      }
      if (outdated) scheduleRefresh();
    });
  }

  function inboxSignature(page) {
    const rows = page.pending.map((p) =>
      [
        p.thread_id, p.tool_call_id, p.args_hash, p.status, p.assignee || "", p.snoozed_until || "",
        p.escalated_at || "", (p.approvals || []).length,
      ].join(" "),
    );
    return [...rows, String(page.total)].join("\n");
  }

  function connect() {
    if (!main.dataset.stream) return;
    const live = main.querySelector("[data-live]");
    const show = (text, state) => {
      if (!live) return;
      live.textContent = text;
      live.dataset.state = state;
    };
    const stream = new EventSource(main.dataset.stream);
    stream.onopen = () => show("live", "on");
    const onEvent = (event) => {
      if (event.type === "inbox") {
        let page = null;
        try {
          page = JSON.parse(event.data);
        } catch {}
        if (page && inboxSignature(page) === signature) return; // what is shown already
      }
      scheduleRefresh();
    };
    for (const name of (main.dataset.streamEvents || "").split(" ").filter(Boolean)) {
      stream.addEventListener(name, onEvent);
    }
    stream.onerror = async () => {
      show("reconnecting…", "off");
      if (stream.readyState !== EventSource.CLOSED) return; // the browser retries by itself
      stream.close();
      const me = await fetch("/me", { cache: "no-store", credentials: "same-origin" }).catch(() => null);
      if (me && me.status === 401) return toLogin();
      setTimeout(connect, 3000);
    };
  }

  function toLogin() {
    location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  }

  // --- deciding ---------------------------------------------------------------------------

  function say(card, text, tone = "info", link = null) {
    const box = card.querySelector("[data-result]");
    if (!box) return;
    box.replaceChildren();
    if (!text) return;
    const p = document.createElement("p");
    p.className = `result result--${tone}`;
    if (text instanceof Node) p.append(text);
    else p.textContent = text;
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = "see the thread";
      p.append(" ", a);
    }
    box.append(p);
    if ("settled" in card.dataset) {
      const dismiss = document.createElement("button");
      dismiss.type = "button";
      dismiss.className = "btn btn--quiet btn--small";
      dismiss.dataset.dismiss = "";
      dismiss.textContent = "Dismiss";
      box.append(dismiss);
    }
  }

  function setEnabled(card, enabled) {
    for (const el of card.querySelectorAll("button, input, textarea, select")) el.disabled = !enabled;
  }

  function settle(card, text, tone, link) {
    card.dataset.settled = "";
    delete card.dataset.stale;
    delete card.dataset.outdated;
    card.classList.add("card--settled", `card--${tone}`);
    for (const el of card.querySelectorAll(".actions, form.decide, .note")) el.remove();
    say(card, text, tone, link);
    card.querySelector("[data-dismiss]")?.focus({ preventScroll: true });
  }

  function alreadyDecided(recorded) {
    const type = String(recorded.decision || "").split(":")[0].trim();
    const verb = PAST[type] || String(recorded.status || "decided").replaceAll("_", " ");
    const text = document.createDocumentFragment();
    text.append(`Already ${verb} by ${recorded.decided_by} `);
    const when = document.createElement("time");
    when.dateTime = recorded.decided_at;
    when.dataset.ago = "";
    when.textContent = ago(recorded.decided_at, Date.now() / 1000);
    text.append(when, "; nothing else was recorded.");
    return text;
  }

  async function send(card, kind, body) {
    const thread = card.dataset.thread;
    const payload = { call: card.dataset.call, ...body };
    if (kind !== "reconcile") payload.args_hash = card.dataset.argsHash; // bind to what was seen
    const [done, next] = DONE[kind === "reconcile" ? body.action : kind];
    const threadLink = main.dataset.stream === "/approvals/stream" ? `/threads/${encodeURIComponent(thread)}` : null;
    card.dataset.busy = "";
    setEnabled(card, false);
    say(card, "Sending…");
    let response;
    let data = null;
    try {
      response = await fetch(`/threads/${encodeURIComponent(thread)}/${kind}`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
        body: JSON.stringify(payload),
      });
      data = await response.json().catch(() => null);
    } catch {
      delete card.dataset.busy;
      setEnabled(card, true);
      say(card, "Could not reach the service; nothing was recorded. Try again.", "error");
      return;
    }
    delete card.dataset.busy;
    if (response.ok && data && data.run === null) {
      // a vote on a quorum call: counted, and the call still waits for the others
      setEnabled(card, true);
      say(card, "Your approval is counted; the call waits for the other approvers.", "ok");
      card.dataset.voted = ""; // the refresh replaces it, with the votes so far
      scheduleRefresh();
      return;
    }
    if (response.ok) {
      settle(card, `${done} — ${next}`, "ok", threadLink);
      follow(card, data?.run?.run_id, done, threadLink);
      return;
    }
    if (response.status === 401) return toLogin();
    const error = data?.error || {};
    if (error.recorded) {
      settle(card, alreadyDecided(error.recorded), "conflict", threadLink);
      return;
    }
    setEnabled(card, true);
    say(card, error.message || `The service answered ${response.status}; nothing was recorded.`, "error");
    if (error.type === "ArgsChanged") card.dataset.outdated = "";
  }

  // A decision link for one person (the API checks they may approve), shown and copied.
  async function copyLink(card, form) {
    const name = form.elements.namedItem("for").value.trim();
    const path = `/approvals/${encodeURIComponent(card.dataset.thread)}/${encodeURIComponent(card.dataset.call)}/links`;
    say(card, "Making the link…");
    let response;
    let data = null;
    try {
      response = await fetch(path, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
        body: JSON.stringify({ for: name }),
      });
      data = await response.json().catch(() => null);
    } catch {
      say(card, "Could not reach the service; no link was made. Try again.", "error");
      return;
    }
    if (response.status === 401) return toLogin();
    if (!response.ok) {
      say(card, data?.error?.message || `The service answered ${response.status}; no link was made.`, "error");
      return;
    }
    const out = form.querySelector("[data-link-url]");
    out.value = data.url;
    out.closest("[data-link-out]").hidden = false;
    out.select();
    const copied = await navigator.clipboard?.writeText(data.url).then(() => true, () => false);
    const what = `Link for ${data.for}: it decides once, as them.`;
    say(card, copied ? `Copied. ${what}` : `${what} Copy it from the box.`, "ok");
  }

  // Short polls, not `?wait=`: a held request per card would use up the browser's few
  // connections to this host, and the next decision would wait behind them.
  async function follow(card, runId, done, link) {
    for (const delay of [300, 700, 1000, 2000, 3000, 5000, 5000, 10000, 10000, 20000]) {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (!runId || !card.isConnected) return;
      const response = await fetch(`/runs/${encodeURIComponent(runId)}`, {
        cache: "no-store",
        credentials: "same-origin",
      }).catch(() => null);
      if (!response || !response.ok) return;
      const run = await response.json();
      if (run.status === "done") return say(card, `${done} — the run finished.`, "ok", link);
      if (run.status === "failed") {
        return say(card, `${done}, but the run failed: ${run.error?.message || "see the thread"}`, "error", link);
      }
    }
  }

  // --- forms ------------------------------------------------------------------------------

  function open(card, name, toggle) {
    const form = card.querySelector(`form[data-form="${name}"]`);
    const opening = form.hidden;
    for (const other of card.querySelectorAll("form.decide:not(.decide--shown)")) other.hidden = true;
    for (const button of card.querySelectorAll("[data-open]")) button.setAttribute("aria-expanded", "false");
    form.hidden = !opening;
    toggle.setAttribute("aria-expanded", String(opening));
    if (opening) form.querySelector("input, textarea, select")?.focus();
  }

  function close(form, card) {
    form.hidden = true;
    const toggle = card.querySelector(`[data-open="${form.dataset.form}"]`);
    toggle?.setAttribute("aria-expanded", "false");
    toggle?.focus();
    say(card, "");
  }

  function problemOf(el) {
    el.setCustomValidity("");
    const value = el.value;
    if (el.dataset.pattern && value !== "") {
      try {
        if (!new RegExp(el.dataset.pattern, "u").test(value)) {
          el.setCustomValidity(`Must match the pattern ${el.dataset.pattern}`);
        }
      } catch {} // a pattern JavaScript cannot compile: the service still checks it
    }
    if (el.dataset.kind === "json" && value.trim() !== "") {
      try {
        JSON.parse(value);
      } catch (error) {
        el.setCustomValidity(`Not valid JSON: ${error.message}`);
      }
    }
    if (el.required && el.tagName === "TEXTAREA" && value.trim() === "") {
      el.setCustomValidity("Please fill out this field.");
    }
    return el.checkValidity() ? "" : el.validationMessage;
  }

  function showProblem(el, problem) {
    const box = document.getElementById(`${el.id}-err`);
    if (box) {
      box.textContent = problem;
      box.hidden = !problem;
    }
    if (problem) el.setAttribute("aria-invalid", "true");
    else el.removeAttribute("aria-invalid");
  }

  function valid(form) {
    let first = null;
    for (const el of form.querySelectorAll("input:not([type=hidden]), textarea, select")) {
      const problem = problemOf(el);
      showProblem(el, problem);
      if (problem && !first) first = el;
    }
    first?.focus();
    return !first;
  }

  function argsOf(form) {
    const args = {};
    for (const el of form.querySelectorAll("[data-arg]")) {
      const { arg: name, kind } = el.dataset;
      const raw = el.value;
      let value;
      if (kind === "boolean") value = el.checked;
      else if (kind === "string" || kind === "text") {
        if (raw === "" && !el.required && el.defaultValue === "") continue; // left unset
        value = raw;
      } else if (raw.trim() === "") continue; // an optional number, choice or JSON left empty
      else if (kind === "integer" || kind === "number") value = Number(raw);
      else value = JSON.parse(raw); // a choice (its JSON) or a JSON box
      if (name === "") return value; // the one JSON box of a tool that declares no properties
      args[name] = value;
    }
    return args;
  }

  // --- triage: assign, snooze, and decide every call shown at once -------------------------

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", [CSRF_HEADER]: "1" },
      body: JSON.stringify(body),
    });
    if (response.status === 401) toLogin();
    return [response, await response.json().catch(() => null)];
  }

  const TRIAGE = {
    assign: ["assign", { assignee: "me" }, "Assigned to you."],
    snooze: ["snooze", { until: "1h" }, "Snoozed for an hour: hidden until then; it still expires."],
    unsnooze: ["snooze", { until: null }, "Shown in the inbox again."],
  };

  async function triage(card, what) {
    const [action, body, done] = TRIAGE[what];
    const path = `/approvals/${encodeURIComponent(card.dataset.thread)}/${encodeURIComponent(card.dataset.call)}/${action}`;
    const [response, data] = await post(path, body).catch(() => [null, null]);
    if (!response) return say(card, "Could not reach the service; nothing was recorded.", "error");
    if (!response.ok) return say(card, data?.error?.message || `The service answered ${response.status}.`, "error");
    if (what === "snooze" && !main.dataset.refresh.includes("snoozed=show")) settle(card, done, "ok");
    else say(card, done, "ok");
    scheduleRefresh();
  }

  const OUTCOME = {
    decided: "decided",
    voted: "vote counted, waits for more",
    already_decided: "already decided",
    expired: "expired",
    not_permitted: "not permitted",
    args_changed: "changed since shown",
    not_found: "not found",
    refused: "refused",
  };

  async function bulk(kind) {
    const buttonOf = kind === "approve" ? "[data-act=approve]" : "[data-open=reject]";
    const cards = [...main.querySelectorAll("[data-card]")].filter(
      (card) => !("settled" in card.dataset) && card.querySelector(buttonOf),
    );
    const box = main.querySelector("[data-bulk-result]");
    if (!cards.length) return;
    const verb = kind === "approve" ? "Approve" : "Reject";
    if (!window.confirm(`${verb} these ${cards.length} calls? Each is still checked on its own.`)) return;
    const calls = cards.map((c) => ({ thread_id: c.dataset.thread, call: c.dataset.call, args_hash: c.dataset.argsHash }));
    for (const card of cards) card.dataset.busy = "";
    const [response, report] = await post("/approvals/bulk", { decision: kind, calls }).catch(() => [null, null]);
    for (const card of cards) delete card.dataset.busy;
    if (!response || !response.ok) {
      box.textContent = report?.error?.message || "Could not reach the service; nothing was recorded.";
      return;
    }
    const byKey = new Map(cards.map((c) => [`${c.dataset.thread} ${c.dataset.call}`, c]));
    for (const item of report.items) {
      const card = byKey.get(`${item.thread_id} ${item.tool_call_id}`);
      if (!card) continue;
      if (item.outcome === "decided") settle(card, `${DONE[kind][0]} (bulk) — ${DONE[kind][1]}`, "ok");
      else if (item.outcome === "voted") {
        // a quorum call: the vote counts and the call still waits; the refresh shows its votes
        say(card, `Your vote is counted (bulk): ${item.message}.`, "ok");
        card.dataset.voted = "";
      }
      else settle(card, `Not ${PAST[kind]}: ${OUTCOME[item.outcome] || item.outcome}. ${item.message || ""}`, "conflict");
    }
    const counts = Object.entries(report.counts).map(([k, n]) => `${n} ${OUTCOME[k] || k}`);
    box.textContent = `${verb} all shown: ${counts.join(", ")}.`;
    if (report.counts.voted) scheduleRefresh();
  }

  main.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (button?.dataset.bulk) return void bulk(button.dataset.bulk);
    const card = button?.closest("[data-card]");
    if (!card || button.type === "submit") return;
    if (button.dataset.triage) triage(card, button.dataset.triage);
    else if (button.dataset.act === "approve") send(card, "approve", {});
    else if (button.dataset.open) open(card, button.dataset.open, button);
    else if ("close" in button.dataset) close(button.closest("form"), card);
    else if ("dismiss" in button.dataset) {
      card.remove();
      main.querySelector("[data-card] button, h1")?.focus?.();
    }
  });

  main.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-form]");
    const card = form?.closest("[data-card]");
    if (!card) return;
    event.preventDefault();
    if (!valid(form)) {
      say(card, "Fix the marked field first: nothing was sent.", "error");
      return;
    }
    const kind = form.dataset.form;
    if (kind === "link") return copyLink(card, form);
    const text = (name) => form.elements.namedItem(name)?.value.trim() || "";
    const body = text("comment") ? { comment: text("comment") } : {};
    if (kind === "reject" && text("reason")) body.reason = text("reason");
    if (kind === "respond") body.message = form.elements.namedItem("message").value;
    if (kind === "edit") body.args = argsOf(form);
    if (kind === "remember") {
      const ticked = (name) => form.elements.namedItem(name)?.checked || false;
      body.remember = {
        expires_in: form.elements.namedItem("expires_in").value,
        args: ticked("scope_args"),
        requester: ticked("scope_requester"),
        thread: ticked("scope_thread"),
      };
      send(card, "approve", body);
      return;
    }
    if (kind === "reconcile") {
      body.action = event.submitter?.dataset.action || "retry";
      if (body.action === "mark_done" && text("result")) body.result = text("result");
    }
    send(card, kind, body);
  });

  main.addEventListener("input", (event) => {
    const el = event.target;
    if (el.getAttribute("aria-invalid") === "true") showProblem(el, problemOf(el));
  });

  main.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const form = event.target.closest?.("form.decide:not(.decide--shown)");
    if (form) close(form, form.closest("[data-card]"));
  });

  // the standing approvals page: revoke one, then show the list as it now is
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-revoke]");
    if (!button) return;
    button.disabled = true;
    const response = await fetch(`/standing/${encodeURIComponent(button.dataset.revoke)}`, {
      method: "DELETE",
      credentials: "same-origin",
      headers: { [CSRF_HEADER]: "1" },
    }).catch(() => null);
    if (response?.status === 401) return toLogin();
    if (response?.ok) return location.reload();
    const data = await response?.json().catch(() => null);
    button.disabled = false;
    const status = button.closest("tr")?.querySelector("[data-revoke-status]");
    if (status) status.textContent = data?.error?.message || "Could not reach the service; nothing changed.";
  });

  for (const type of ["focusin", "focusout", "pointerout"]) document.addEventListener(type, sweepSoon);

  localize(document);
  tick();
  setInterval(tick, 1000);
  connect();
})();
