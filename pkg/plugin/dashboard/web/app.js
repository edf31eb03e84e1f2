// Sluice dashboard: renders what the server's shared watches push over
// server-sent events; it never asks the API server itself. Actions go to the
// dashboard server, which asks the API server as the user.
"use strict";

(function () {
  const token = document.querySelector('meta[name="sluice-csrf-token"]').content;
  const main = document.getElementById("main");
  const connection = document.getElementById("connection");
  const problemsBox = document.getElementById("problems");

  // What the server has told us: Rollouts by "namespace/name".
  const rollouts = new Map();
  let synced = false;
  // The last action result per Rollout, kept across redraws.
  const results = new Map();
  // The Rollout page currently drawn (its key), to keep its skeleton.
  let drawnDetail = null;

  // h builds an element; text is always set as text, never parsed as HTML.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") el.textContent = v;
      else if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  const svgNS = "http://www.w3.org/2000/svg";
  function s(tag, attrs, ...children) {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") el.textContent = v;
      else el.setAttribute(k, v);
    }
    children.flat(Infinity).forEach((c) => el.append(c));
    return el;
  }

  // age says how long ago an ISO time was, as kubectl does ("5m", "2h3m").
  function age(iso) {
    if (!iso) return "-";
    return spanText(Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000)));
  }

  // spanText writes a number of seconds as kubectl does: 45s, 4m30s, 3h5m, 2d.
  function spanText(secs) {
    if (secs < 120) return secs + "s";
    const mins = Math.floor(secs / 60);
    if (mins < 10) return mins + "m" + (secs % 60 ? (secs % 60) + "s" : "");
    if (mins < 180) return mins + "m";
    const hours = Math.floor(mins / 60);
    if (hours < 48) return hours + "h" + (mins % 60 ? (mins % 60) + "m" : "");
    return Math.floor(hours / 24) + "d";
  }

  // since is an element that keeps showing the age of an ISO time.
  function since(iso, suffix) {
    return h("time", { datetime: iso || "", "data-since": iso || "", "data-suffix": suffix || "", text: iso ? age(iso) + (suffix || "") : "-" });
  }

  // left says when the current step moves on: "checks in 39s", "ends in
  // 4m" (a timed pause), or "checks due" once the controller is to act.
  function left(iso, what) {
    const secs = Math.ceil((Date.parse(iso) - Date.now()) / 1000);
    return secs <= 0 ? what + " due" : what + " in " + spanText(secs);
  }

  function countdown(iso, what) {
    return h("time", { datetime: iso, "data-until": iso, "data-what": what, text: left(iso, what) });
  }

  function refreshAges() {
    for (const el of document.querySelectorAll("[data-since]")) {
      const iso = el.getAttribute("data-since");
      if (iso) el.textContent = age(iso) + el.getAttribute("data-suffix");
    }
    for (const el of document.querySelectorAll("[data-until]")) {
      el.textContent = left(el.getAttribute("data-until"), el.getAttribute("data-what"));
    }
  }

  function splitBar(canary) {
    const primary = 100 - canary;
    return h("div", { class: "split" },
      h("div", { class: "bar", role: "img", "aria-label": `primary ${primary}%, canary ${canary}%` },
        sized(h("span", { class: "primary" }), primary), sized(h("span", { class: "canary" }), canary)),
      h("span", { text: `${primary}% / ${canary}%` }));
  }

  // sized sets a width through the CSSOM, which the page's CSP allows
  // (style attributes it does not).
  function sized(el, pct) {
    el.style.width = pct + "%";
    return el;
  }

  function stepText(r) {
    return r.stepProgress || "-";
  }

  function rangeText(m) {
    const has = (x) => x !== undefined && x !== null;
    let r = "";
    if (has(m.min) && has(m.max)) r = `${m.min}..${m.max}`;
    else if (has(m.min)) r = `>= ${m.min}`;
    else if (has(m.max)) r = `<= ${m.max}`;
    if (m.compare) r = r ? `${r}, ${m.compare}` : m.compare;
    if (m.minRequests) r = r ? `${r}, ${m.minRequests}` : m.minRequests;
    return r || "-";
  }

  // valuesText is the last values of a metric; for a compare check, the
  // canary's median against the primary's, with the estimate and p.
  function valuesText(m) {
    const values = (m.recent && m.recent.length ? m.recent.join(", ") : m.value) || "-";
    if (!m.primaryValue && !m.estimate) return values;
    let s = `${m.value || "-"} vs primary ${m.primaryValue || "-"}`;
    if (m.estimate) s += ` (${m.estimate}, p=${m.pValue || "-"})`;
    return s;
  }

  function link(r) {
    return h("a", { href: `#/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}`, text: r.name });
  }

  // --- overview -------------------------------------------------------

  function drawOverview() {
    drawnDetail = null;
    document.title = "Sluice dashboard";
    const groups = new Map();
    for (const r of [...rollouts.values()].sort((a, b) =>
      a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))) {
      if (!groups.has(r.namespace)) groups.set(r.namespace, []);
      groups.get(r.namespace).push(r);
    }
    const needs = [...rollouts.values()].filter((r) => r.attention).length;
    const body = [h("h1", { text: "Rollouts" }),
      h("p", { class: "muted", id: "summary", text: `${rollouts.size} rollouts, ${needs} need a person` })];
    if (!rollouts.size) {
      body.push(h("p", { class: "empty", text: synced ? "No rollouts found." : "Loading…" }));
    }
    for (const [ns, list] of groups) {
      const id = "ns-" + ns;
      body.push(h("section", { "aria-labelledby": id, "data-namespace": ns },
        h("h2", { id, text: `Namespace ${ns}` }),
        h("table", {},
          h("thead", {}, h("tr", {},
            ["Rollout", "Phase", "Step", "Traffic (primary / canary)", "Failed checks", "Current step for", "Needs a person"]
              .map((t) => h("th", { scope: "col", text: t })))),
          h("tbody", {}, list.map(overviewRow)))));
    }
    replaceMain(body);
  }

  function overviewRow(r) {
    return h("tr", { class: r.attention ? "attention" : "", "data-rollout": `${r.namespace}/${r.name}` },
      h("th", { scope: "row" }, link(r)),
      h("td", {}, h("span", { class: `phase phase-${r.phase}`, text: r.phase }), r.paused ? h("span", { class: "muted", text: " (paused)" }) : null),
      h("td", { class: "num step", text: stepText(r) }),
      h("td", {}, splitBar(r.canaryWeight)),
      h("td", { class: "num failed", text: `${r.failedChecks} of ${r.threshold}` }),
      h("td", { class: "num" }, r.stepStartedAt ? since(r.stepStartedAt) : "-"),
      h("td", { class: "attention-cell" }, r.attention ? h("span", { class: "badge", text: "⚠ " + r.attention }) : ""));
  }

  // replaceMain swaps the page body, keeping focus on the same link or
  // button when it is drawn again.
  function replaceMain(children) {
    const active = document.activeElement;
    const focusKey = active && main.contains(active) ? focusKeyOf(active) : null;
    main.replaceChildren(...children);
    if (focusKey) {
      const again = [...main.querySelectorAll("a, button")].find((el) => focusKeyOf(el) === focusKey);
      if (again) again.focus();
    }
  }

  function focusKeyOf(el) {
    return el.tagName + "|" + (el.getAttribute("href") || el.getAttribute("data-action") || el.textContent);
  }

  // --- one Rollout ----------------------------------------------------

  const actionButtons = [
    { action: "promote", label: "Promote", help: "end the current step, pause or closed gate now" },
    { action: "promote-full", label: "Promote --full", help: "skip every remaining step and gate and promote", confirm: true, danger: true },
    { action: "abort", label: "Abort", help: "roll the current release back now", confirm: true, danger: true },
    { action: "retry", label: "Retry", help: "release the failed revision again" },
    { action: "pause", label: "Pause", help: "hold the Rollout where it is" },
    { action: "resume", label: "Resume", help: "end a pause" },
  ];

  function drawDetail(ns, name) {
    const k = `${ns}/${name}`;
    const r = rollouts.get(k);
    document.title = `${k} · Sluice dashboard`;
    if (drawnDetail !== k || !document.getElementById("detail-data")) {
      drawnDetail = k;
      const resultBox = h("div", { id: "action-result", "aria-live": "polite" });
      main.replaceChildren(
        h("p", {}, h("a", { href: "#/", text: "← All rollouts" })),
        h("h1", { text: `Rollout ${k}` }),
        h("section", { "aria-labelledby": "actions-title" },
          h("h2", { id: "actions-title", text: "Actions" }),
          h("ul", { class: "actions" }, actionButtons.map((b) => h("li", {},
            h("button", {
              type: "button", "data-action": b.action, class: b.danger ? "danger" : "",
              title: b.help, "aria-describedby": "actions-help",
              onclick: () => act(ns, name, b),
            }, b.label)))),
          h("p", { id: "actions-help", class: "muted", text: "Actions are asked for with the sluice.dev/action annotation, as you, through the API server; the controller carries them out." }),
          resultBox),
        h("div", { id: "detail-data" }));
      main.focus();
    }
    drawResult(k);
    const data = document.getElementById("detail-data");
    if (!r) {
      data.replaceChildren(h("p", { class: "empty", text: synced ? `Rollout ${k} is not in view (deleted, or outside this dashboard's scope).` : "Loading…" }));
      return;
    }
    data.replaceChildren(...detailSections(r));
  }

  function drawResult(k) {
    const box = document.getElementById("action-result");
    const res = results.get(k);
    if (!box) return;
    if (!res) { box.replaceChildren(); return; }
    box.replaceChildren(h("p", { class: "result " + (res.ok ? "ok" : "error"), role: res.ok ? "status" : "alert", text: res.text }));
  }

  async function act(ns, name, b) {
    const k = `${ns}/${name}`;
    if (b.confirm && !window.confirm(`${b.label} ${k}: ${b.help}?`)) return;
    const buttons = main.querySelectorAll("button[data-action]");
    buttons.forEach((x) => (x.disabled = true));
    try {
      const resp = await fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/actions/${b.action}`, {
        method: "POST", headers: { "X-Sluice-CSRF": token }, credentials: "same-origin",
      });
      let body = {};
      try { body = await resp.json(); } catch (e) { body = { error: `${resp.status} ${resp.statusText}` }; }
      results.set(k, resp.ok ? { ok: true, text: body.message } : { ok: false, text: body.error || `${resp.status} ${resp.statusText}` });
    } catch (e) {
      results.set(k, { ok: false, text: "the dashboard server did not answer: " + e.message });
    } finally {
      buttons.forEach((x) => (x.disabled = false));
    }
    drawResult(k);
  }

  function detailSections(r) {
    const facts = [
      ["Phase", h("span", { class: `phase phase-${r.phase}`, id: "phase", text: r.phase })],
      ["Step", stepText(r)],
      ["Needs a person", r.attention ? h("span", { class: "badge", text: "⚠ " + r.attention }) : "no"],
      ["Message", r.message || "-"],
      ["Target", r.target],
      ["Strategy", r.strategy],
      ["Traffic", splitBar(r.canaryWeight)],
      ["Revisions", `primary ${r.stableRevision || "-"}, canary ${r.canaryRevision || "-"}` + (r.failedRevision ? `, failed ${r.failedRevision}` : "")],
      ["Failed checks", `${r.failedChecks} of ${r.threshold} allowed`],
      ["Current step for", r.stepStartedAt ? since(r.stepStartedAt) : "-"],
    ];
    if (r.holdEndsAt) facts.push(["Step moves on", h("span", { id: "hold-ends" }, countdown(r.holdEndsAt, r.holdChecks ? "checks" : "ends"))]);
    if (r.pendingAction) facts.push(["Pending action", h("span", { id: "pending-action", text: `${r.pendingAction} (asked by ${r.pendingBy || "-"})` })]);
    if (r.paused) facts.push(["Paused", "yes, by an action"]);
    if (r.suspended) facts.push(["Suspended", "yes, by the spec"]);
    return [
      h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", { text: k }), h("dd", {}, v)])),
      section("Steps", r.plan.length ? h("ol", { class: "plan" }, r.plan.map((p, i) =>
        h("li", { class: "state-" + p.state, "aria-current": p.state === "current" ? "step" : null },
          h("span", { class: "mark", text: `${i + 1}. ${stepLabel(p.state)}` }), p.text)))
        : h("p", { class: "muted", text: "None: skipAnalysis promotes as soon as the canary is ready." })),
      section("Traffic over time", h("div", { id: "history" }, history(r))),
      section("Metrics", r.metrics.length ? table(["Metric", "Last values", "Range", "Verdict", "Checked", "Message"], r.metrics.map((m) => [
        m.name, h("span", { class: "num", text: valuesText(m) }), rangeText(m),
        h("span", { class: "verdict-" + (m.verdict || ""), text: m.verdict || "not checked yet" }),
        m.checkedAt ? since(m.checkedAt, " ago") : "-", m.message || ""]))
        : h("p", { class: "muted", text: "No metric checks." })),
      section("Webhooks and gates", [
        r.webhooks.length ? table(["Name", "Type", "URL"], r.webhooks.map((w) => [w.name, w.type + (w.gate ? " (gate)" : ""), w.url])) : h("p", { class: "muted", text: "No webhooks." }),
        r.gateClosed ? h("p", { class: "gate-closed", text: "Gate closed: " + r.gateClosed })
          : r.webhooks.some((w) => w.gate) ? h("p", { class: "gate-open", text: "Gates open." }) : null]),
      section("Conditions", r.conditions.length ? table(["Type", "Status", "Reason", "Since", "Message"], r.conditions.map((c) =>
        [c.type, c.status, c.reason || "", since(c.since), c.message || ""])) : h("p", { class: "muted", text: "None yet." })),
      section("Events of the current release", r.events.length ? table(["When", "Type", "Reason", "Message"], r.events.map((e) =>
        [since(e.time, " ago"), e.type, e.reason, e.note])) : h("p", { class: "muted", text: "None." })),
    ];
  }

  function stepLabel(state) {
    return { done: "done", current: "current", failed: "failed", pending: "" }[state] || "";
  }

  function section(title, content) {
    const id = "s-" + title.toLowerCase().replace(/[^a-z]+/g, "-");
    return h("section", { "aria-labelledby": id }, h("h2", { id, text: title }), content);
  }

  function table(headers, rows) {
    return h("table", {},
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col", text: t })))),
      h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
  }

  // history draws the traffic split since the dashboard started: canary
  // from the bottom, primary above it.
  function history(r) {
    const pts = r.history;
    if (!pts.length) return [h("p", { class: "muted", text: "No changes seen yet." })];
    const W = 720, H = 140, top = 10, bottom = 20, left = 34;
    const t0 = Date.parse(pts[0].t), t1 = Math.max(Date.now(), t0 + 1000);
    const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - 4);
    const y = (pct) => top + (1 - pct / 100) * (H - top - bottom);
    const shapes = [];
    pts.forEach((p, i) => {
      const a = x(Date.parse(p.t)), b = i + 1 < pts.length ? x(Date.parse(pts[i + 1].t)) : x(t1);
      const w = Math.max(b - a, 1);
      shapes.push(s("rect", { class: "primary", x: a, y: y(100), width: w, height: y(p.canary) - y(100) }));
      shapes.push(s("rect", { class: "canary", x: a, y: y(p.canary), width: w, height: y(0) - y(p.canary) },
        s("title", { text: `${new Date(p.t).toLocaleTimeString()}: canary ${p.canary}%, ${p.phase}` })));
    });
    const label = pts.map((p) => `${new Date(p.t).toLocaleTimeString()} canary ${p.canary}% (${p.phase})`).join("; ");
    return [
      s("svg", { class: "history", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Canary weight over time: " + label },
        s("text", { x: 2, y: y(100) + 8, text: "100%" }), s("text", { x: 2, y: y(0), text: "0%" }),
        s("text", { x: left, y: H - 4, text: new Date(t0).toLocaleTimeString() }),
        s("text", { x: W - 30, y: H - 4, text: "now" }), shapes),
      h("p", { class: "muted", text: "Canary (bottom) and primary share since this dashboard started; kept in memory, not in the cluster." }),
    ];
  }

  // --- routing and the stream ------------------------------------------

  function route() {
    const m = location.hash.match(/^#\/([^/]+)\/([^/]+)$/);
    if (m) drawDetail(decodeURIComponent(m[1]), decodeURIComponent(m[2]));
    else drawOverview();
  }

  function showProblems(problems) {
    const entries = Object.entries(problems || {});
    problemsBox.hidden = !entries.length;
    problemsBox.replaceChildren(...entries.map(([src, msg]) => h("p", { text: `Watching ${src} fails: ${msg}` })));
  }

  function connect() {
    const es = new EventSource("/api/stream");
    es.addEventListener("open", () => { connection.textContent = "live"; connection.classList.remove("down"); });
    es.addEventListener("error", () => { connection.textContent = "disconnected, reconnecting…"; connection.classList.add("down"); });
    es.addEventListener("snapshot", (ev) => {
      const snap = JSON.parse(ev.data);
      rollouts.clear();
      for (const r of snap.rollouts) rollouts.set(`${r.namespace}/${r.name}`, r);
      synced = snap.synced;
      showProblems(snap.problems);
      route();
    });
    es.addEventListener("rollout", (ev) => {
      const r = JSON.parse(ev.data);
      rollouts.set(`${r.namespace}/${r.name}`, r);
      route();
    });
    es.addEventListener("deleted", (ev) => {
      const r = JSON.parse(ev.data);
      rollouts.delete(`${r.namespace}/${r.name}`);
      route();
    });
    es.addEventListener("problems", (ev) => showProblems(JSON.parse(ev.data)));
    es.addEventListener("synced", () => { synced = true; route(); });
  }

  // redrawHistory moves the traffic chart's "now" on: time passes between
  // changes too.
  function redrawHistory() {
    const box = document.getElementById("history");
    const r = drawnDetail && rollouts.get(drawnDetail);
    if (box && r) box.replaceChildren(...history(r));
  }

  window.addEventListener("hashchange", route);
  setInterval(refreshAges, 1000);
  setInterval(redrawHistory, 2000);
  route();
  connect();
})();
