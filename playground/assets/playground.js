// The playground's only script. It keeps nothing: no cookie, no storage, no URL state.
// Every value from the document or the server is written with textContent, never as HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const input = $("input"), rules = $("rules");
  let seq = 0, timer = null;

  async function post(path, body) {
    const resp = await fetch("/playground/api/" + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
    });
    return { status: resp.status, body: await resp.json() };
  }

  function show(el, text) {
    el.textContent = text || "";
    el.hidden = !text;
  }

  function list(el, items) {
    el.replaceChildren();
    for (const it of items || []) {
      const li = document.createElement("li");
      li.textContent = it;
      el.appendChild(li);
    }
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    const code = document.createElement(cls === "rule" ? "pre" : "code");
    code.textContent = text;
    td.appendChild(code);
    tr.appendChild(td);
  }

  function render(r) {
    $("unverified").hidden = !r.from_jwt;
    show($("input-error"), r.input_error);
    list($("rule-errors"), r.rule_errors);
    list($("warnings"), r.warnings);
    const email = $("email");
    email.textContent = r.email || "-";
    email.className = r.email ? "ok" : "none";
    show($("refusal"), r.refusal);
    $("trace").textContent = r.trace || "";
    $("document-box").hidden = !r.document;
    $("document").textContent = r.document ? JSON.stringify(r.document, null, 2) : "";
    const tbody = $("suggestions").tBodies[0];
    tbody.replaceChildren();
    for (const s of r.suggestions || []) {
      const tr = document.createElement("tr");
      cell(tr, s.Path);
      cell(tr, s.Value);
      cell(tr, s.Rule, "rule");
      const td = document.createElement("td");
      td.className = "traps";
      td.textContent = (s.Traps || []).join("; ") || "none known";
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
  }

  async function update() {
    const mine = ++seq;
    try {
      const { body } = await post("map", { input: input.value, rules: rules.value });
      if (mine === seq) render(body);
    } catch (e) {
      if (mine === seq) show($("refusal"), "the bridge did not answer: " + e);
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(update, 120);
  }

  async function resolve() {
    const box = $("resolution"), ol = $("verdicts");
    box.hidden = false;
    ol.replaceChildren();
    show($("resolve-refusal"), "resolving…");
    try {
      const { body } = await post("resolve", { token: input.value });
      show($("resolve-refusal"), body.error || body.refusal);
      for (const v of body.verdicts || []) {
        const li = document.createElement("li");
        li.className = v.outcome;
        li.textContent = v.provider + ": " + v.outcome;
        ol.appendChild(li);
      }
      if (body.document) {
        // The verified document replaces the pasted token, so the rules run on what
        // the bridge really sees (enrichment included).
        input.value = JSON.stringify(body.document, null, 2);
        update();
      }
    } catch (e) {
      show($("resolve-refusal"), "the bridge did not answer: " + e);
    }
  }

  input.addEventListener("input", schedule);
  rules.addEventListener("input", schedule);
  $("resolve").addEventListener("click", resolve);

  fetch("/playground/api/config", { cache: "no-store", credentials: "omit" })
    .then((r) => r.json())
    .then((c) => {
      if (!rules.value) rules.value = c.rules || "email:\n  - path: email\n    when: {path: email_verified, equals: true}\n";
      $("resolve").hidden = !c.resolve;
      update();
    });
})();
