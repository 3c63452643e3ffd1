// idbridge's embed script for Spotnana's iframe integration (the browser half).
//
// A dependency-free ES module served by idbridge at GET /v1/embed/spotnana.js. It
// mounts Spotnana's iframe with ?idp=token-exchange-auth&orgId=…, answers the iframe's
// TOKEN_EXCHANGE_REQUEST with Spotnana tokens from idbridge's POST /v1/token-exchange,
// and reports failures to the page. The message protocol is Spotnana's: see
// "The iframe (browser) half" in idbridge's README.
//
// Security: the user's token travels only in the Authorization header of the exchange
// call, never in a URL or a log line; messages are accepted only from the iframe's
// window and origin, and answered only to that origin, never to "*".

const FROM = "spotnana-embed";
const REQUEST = "TOKEN_EXCHANGE_REQUEST";
const RESPONSE = "TOKEN_EXCHANGE_RESPONSE";
const ERROR = "TOKEN_EXCHANGE_ERROR";

/**
 * Mounts Spotnana's iframe into options.container and signs the user in through
 * idbridge. See spotnana.d.ts for the options and the error codes.
 * @param {import("./spotnana").MountOptions} options
 * @returns {import("./spotnana").SpotnanaHandle}
 */
export function mountSpotnana(options) {
  const { container, embedUrl, orgId, exchangeUrl, getToken, onError } = options || {};
  if (!container || typeof container.appendChild !== "function") {
    throw new TypeError("mountSpotnana: container must be a DOM element");
  }
  if (typeof orgId !== "string" || orgId === "") {
    throw new TypeError("mountSpotnana: orgId must be a non-empty string");
  }
  if (typeof getToken !== "function") {
    throw new TypeError("mountSpotnana: getToken must be a function returning the user's access token");
  }
  const report = typeof onError === "function" ? onError : () => {};
  const frameUrl = new URL(embedUrl, document.baseURI);
  const exchange = new URL(exchangeUrl, document.baseURI);
  for (const u of [frameUrl, exchange]) {
    if (u.protocol !== "https:" && u.protocol !== "http:") {
      throw new TypeError("mountSpotnana: embedUrl and exchangeUrl must be http(s) URLs");
    }
  }
  // Spotnana starts the token-exchange sign-in (and drops any earlier session) on idp.
  frameUrl.searchParams.set("idp", "token-exchange-auth");
  frameUrl.searchParams.set("orgId", orgId);
  const embedOrigin = frameUrl.origin;

  const iframe = document.createElement("iframe");
  iframe.src = frameUrl.href;
  iframe.title = "Spotnana";
  iframe.referrerPolicy = "strict-origin";
  iframe.style.border = "0";
  iframe.style.width = "100%";
  iframe.style.height = "100%";
  const aborter = new AbortController();
  let destroyed = false;

  const fail = (code, status, detail) => {
    if (destroyed) return;
    try {
      report({ code, status, detail });
    } catch (e) {
      // The page's handler failed; nothing of ours to undo.
    }
  };

  async function answer() {
    let token;
    try {
      token = await getToken();
    } catch (e) {
      fail("unauthenticated", 0, "getToken failed: the user must sign in again");
      return;
    }
    if (typeof token !== "string" || token === "") {
      fail("unauthenticated", 0, "getToken returned no token: the user must sign in again");
      return;
    }
    let resp;
    try {
      resp = await fetch(exchange.href, {
        method: "POST",
        headers: { Authorization: "Bearer " + token },
        mode: "cors",
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
        signal: aborter.signal,
      });
    } catch (e) {
      if (!destroyed) fail("unavailable", 0, "idbridge could not be reached (network error or CORS refusal)");
      return;
    }
    let body = null;
    try {
      body = await resp.json();
    } catch (e) {
      body = null;
    }
    if (destroyed) return;
    if (resp.ok && body && typeof body.access_token === "string" && body.access_token !== "") {
      const payload = { accessToken: body.access_token };
      if (typeof body.refresh_token === "string") payload.refreshToken = body.refresh_token;
      const win = iframe.contentWindow;
      if (win) win.postMessage({ type: RESPONSE, payload }, embedOrigin);
      return;
    }
    const code = body && typeof body.error === "string" ? body.error : "";
    const desc = body && typeof body.error_description === "string" ? body.error_description : "";
    const detail = [code, desc].filter(Boolean).join(": ") || "HTTP " + resp.status;
    fail(classify(resp.status, code), resp.status, detail);
  }

  function onMessage(event) {
    // Only Spotnana's iframe, from its own origin, speaking Spotnana's protocol.
    if (destroyed || event.source !== iframe.contentWindow || event.origin !== embedOrigin) return;
    const data = event.data;
    if (!data || typeof data !== "object" || data.from !== FROM) return;
    if (data.type === REQUEST) {
      // Every request is answered: the iframe asks again whenever it reloads.
      answer();
    } else if (data.type === ERROR) {
      const p = data.payload && typeof data.payload === "object" ? data.payload : {};
      const errorCode = typeof p.errorCode === "string" ? p.errorCode : "UNKNOWN";
      const errorMessage = typeof p.errorMessage === "string" ? p.errorMessage : "";
      fail("spotnana_error", 0, errorMessage ? errorCode + ": " + errorMessage : errorCode);
    }
  }

  window.addEventListener("message", onMessage);
  container.appendChild(iframe);

  return {
    iframe,
    destroy() {
      if (destroyed) return;
      destroyed = true;
      window.removeEventListener("message", onMessage);
      aborter.abort();
      iframe.remove();
    },
  };
}

/**
 * Maps an idbridge answer to an onError code.
 * @param {number} status idbridge's HTTP status
 * @param {string} error the "error" field of idbridge's JSON body
 * @returns {import("./spotnana").SpotnanaErrorCode}
 */
export function classify(status, error) {
  if (status === 401) return "unauthenticated";
  if (status === 502 && error === "USER_NOT_FOUND") return "no_profile";
  if (status === 503 || status === 429 || status === 0) return "unavailable";
  if (status === 403) return "forbidden";
  return "exchange_failed";
}
