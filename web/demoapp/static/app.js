// The demo company's page: it signs a user in (the demo issuer stands in for the
// company's login), then mounts Spotnana's iframe with idbridge's embed script.
import { mountSpotnana } from "idbridge/spotnana";

const cfg = JSON.parse(document.querySelector('meta[name="demo-config"]').content);
const status = document.getElementById("status");
const container = document.getElementById("spotnana");
let handle = null;

const advice = {
  unauthenticated: "The user's token was refused (expired or invalid): sign in again.",
  no_profile: "Spotnana has no profile for this user: ask the travel team to create one.",
  unavailable: "idbridge or Spotnana is unavailable: try again in a moment.",
  forbidden: "This user may not use Spotnana.",
  spotnana_error: "Spotnana's iframe refused the sign-in.",
  exchange_failed: "The exchange failed: check idbridge's logs.",
};

function show(text, cls, code) {
  status.textContent = text;
  status.className = cls || "";
  status.dataset.code = code || "";
}

function signIn(user, label) {
  if (handle) handle.destroy();
  container.textContent = "";
  for (const b of document.querySelectorAll("button[data-user]")) {
    b.classList.toggle("active", b.dataset.user === user);
  }
  show("Signed in to the company as " + label + ". Spotnana's iframe asks for tokens (TOKEN_EXCHANGE_REQUEST); the page gets them from idbridge.", "ok", "");
  handle = mountSpotnana({
    container,
    embedUrl: cfg.embedUrl,
    orgId: cfg.orgId,
    exchangeUrl: cfg.exchangeUrl,
    // The company's login would hold this token; the demo asks its issuer for one.
    getToken: async () => {
      const r = await fetch("/demo/token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ user }),
      });
      if (!r.ok) throw new Error("sign-in failed");
      return (await r.json()).access_token;
    },
    onError: (e) => {
      show("onError: " + e.code + (e.status ? " (HTTP " + e.status + ")" : "") + "\n" +
        (advice[e.code] || "") + "\n" + e.detail, "error", e.code);
    },
  });
}

for (const b of document.querySelectorAll("button[data-user]")) {
  b.addEventListener("click", () => signIn(b.dataset.user, b.dataset.label));
}
