// The idbridge sandbox's stand-in for Spotnana's iframe, behaving as Spotnana documents:
// on load it posts TOKEN_EXCHANGE_REQUEST to the parent; it accepts the answer only from
// the parent window on an allowed origin; it checks the access token with its own server
// (the sandbox's issuer) and shows the signed-in user, or posts TOKEN_EXCHANGE_ERROR
// INVALID_TOKEN. Everything else is ignored and counted (GET /stats).
(() => {
  "use strict";
  const allowed = JSON.parse(document.body.dataset.allowedOrigins || "[]");
  const params = new URLSearchParams(location.search);
  const $ = (id) => document.getElementById(id);
  const show = (title, status, cls) => {
    $("title").textContent = title;
    $("title").className = cls || "";
    $("status").textContent = status;
  };
  const count = (kind) =>
    fetch("/embed/event", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ kind }),
    }).catch(() => {});

  if (params.get("idp") !== "token-exchange-auth" || !params.get("orgId")) {
    show("Not a token-exchange sign-in", "Load this page with ?idp=token-exchange-auth&orgId=<org id>.", "bad");
    return;
  }
  if (window.parent === window) {
    show("Not embedded", "Spotnana's iframe runs inside the company's page.", "bad");
    return;
  }
  const orgId = params.get("orgId");

  window.addEventListener("message", async (event) => {
    if (event.source !== window.parent) {
      count("ignored_source");
      return;
    }
    if (!allowed.includes(event.origin)) {
      count("ignored_origin");
      show("Sign-in refused", "Ignored an answer from " + event.origin + ": not among the allowed origins (" + allowed.join(", ") + ").", "bad");
      return;
    }
    const data = event.data;
    if (!data || typeof data !== "object" || data.type !== "TOKEN_EXCHANGE_RESPONSE" ||
        !data.payload || typeof data.payload.accessToken !== "string") {
      count("ignored_malformed");
      return;
    }
    let resp, body = {};
    try {
      resp = await fetch("/embed/session", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ accessToken: data.payload.accessToken, orgId }),
      });
      body = await resp.json();
    } catch (e) {
      show("Sign-in failed", "The sandbox could not be reached.", "bad");
      return;
    }
    if (resp.ok) {
      show("Signed in as " + body.email, "Spotnana (sandbox) accepted the token-exchange sign-in.", "ok");
      $("email").textContent = body.email;
      $("org").textContent = orgId;
      $("expires").textContent = new Date(body.exp * 1000).toLocaleTimeString();
      $("details").hidden = false;
      $("trips").hidden = false;
      return;
    }
    show("Sign-in failed", body.errorMessage || "the access token did not verify", "bad");
    window.parent.postMessage({
      from: "spotnana-embed",
      type: "TOKEN_EXCHANGE_ERROR",
      payload: { errorCode: body.errorCode || "INVALID_TOKEN", errorMessage: body.errorMessage || "" },
    }, event.origin);
  });

  // The request carries nothing secret, so it may go to whatever page framed us (the
  // frame-ancestors policy already limits that to the allowed origins).
  window.parent.postMessage({ type: "TOKEN_EXCHANGE_REQUEST", from: "spotnana-embed" }, "*");
  count("request");
})();
