// Type declarations for idbridge's embed script, GET /v1/embed/spotnana.js.

/** Why signing the user in to Spotnana failed. */
export type SpotnanaErrorCode =
  /** idbridge answered 401, or getToken gave no token: the user must sign in again. */
  | "unauthenticated"
  /** idbridge answered 502 USER_NOT_FOUND: Spotnana has no profile for this user. */
  | "no_profile"
  /** idbridge answered 503 or 429, or could not be reached (network, CORS refusal): try later. */
  | "unavailable"
  /** idbridge answered 403: the user may not use Spotnana (no email, domain, scope, client). */
  | "forbidden"
  /** Spotnana's iframe posted TOKEN_EXCHANGE_ERROR; detail holds its errorCode and errorMessage. */
  | "spotnana_error"
  /** Anything else (400, another 502 code, a 200 without access_token): a set-up problem. */
  | "exchange_failed";

export interface SpotnanaError {
  code: SpotnanaErrorCode;
  /** idbridge's HTTP status; 0 when there was none (network, getToken, the iframe). */
  status: number;
  /** A short text for logs and support: idbridge's "error: error_description", or the
   * iframe's "errorCode: errorMessage". Never a token. */
  detail: string;
}

export interface MountOptions {
  /** The element the iframe goes into; the iframe fills it. */
  container: Element;
  /** Spotnana's embed URL: https://sboxmeta-embed-app.partners.spotnana.com/… (sandbox),
   * https://embed.spotnana.com/… (production), or `idbridge sandbox`'s /embed. */
  embedUrl: string | URL;
  /** The company's Spotnana org id. */
  orgId: string;
  /** idbridge's POST /v1/token-exchange, e.g. https://idbridge.example.com/v1/token-exchange. */
  exchangeUrl: string | URL;
  /** Resolves to the signed-in user's own access token; called for each request of the iframe. */
  getToken: () => Promise<string> | string;
  /** Called on each failure. */
  onError?: (error: SpotnanaError) => void;
}

export interface SpotnanaHandle {
  /** The iframe element that was mounted. */
  readonly iframe: HTMLIFrameElement;
  /** Removes the iframe and its message listener, and aborts an exchange in flight. */
  destroy(): void;
}

/** Mounts Spotnana's iframe and answers its TOKEN_EXCHANGE_REQUEST through idbridge. */
export function mountSpotnana(options: MountOptions): SpotnanaHandle;

/** Maps idbridge's HTTP status and "error" code to a SpotnanaErrorCode. */
export function classify(status: number, error: string): SpotnanaErrorCode;
