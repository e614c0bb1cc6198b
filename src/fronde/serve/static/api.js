// What every view shares: the API key (kept in sessionStorage, so it is forgotten when the tab closes), fetch
// helpers that turn the server's OpenAI-shaped errors into readable messages, the notice banner, and `el`, the one
// way this UI builds DOM (text is always set as text, never parsed as HTML, so model output cannot inject markup).

const KEY_NAME = "fronde.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
}

export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  return headers;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const AUTH_HELP = "Enter the key the server was started with (--api-key) in the API key box at the top.";

/** An ApiError for a failed response, with the server's own message when it sent one. */
export async function errorOf(res) {
  let detail = res.statusText;
  try {
    const body = await res.json();
    detail = (body.error && body.error.message) || detail;
  } catch { /* not JSON: keep the status text */ }
  if (res.status === 401) {
    const given = apiKey() ? "The server rejected this API key" : "This server needs an API key";
    return new ApiError(401, `${given} (HTTP 401: ${detail}). ${AUTH_HELP}`);
  }
  return new ApiError(res.status, `HTTP ${res.status}: ${detail}`);
}

export async function getJSON(url) {
  let res;
  try {
    res = await fetch(url, { headers: authHeaders(), cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, `Cannot reach the server (${e.message}). Is it still running?`);
  }
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

/** Show a message in the banner under the top bar; kind "error" is announced at once (role=alert). */
export function notify(text, kind = "error") {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = kind === "error" ? "notice" : "notice info";
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.hidden = !text;
}

export function clearNotice() {
  notify("");
}

/** Report an error: a 401 goes to the banner and puts the focus on the key box; returns the message. */
export function reportError(err) {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ApiError && err.status === 401) {
    notify(message);
    const input = document.getElementById("api-key");
    if (input && !input.closest("[hidden]")) input.focus();
  }
  return message;
}

/** el("div", {class: "x", onclick: f}, "text", child): an element with attributes, listeners and children. */
export function el(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "line", "polyline", "path", "rect", "circle", "text", "title"].includes(tag)
    && attrs.svg !== false;
  const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false || k === "svg") continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function formatNumber(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return "—";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e12) return v.toLocaleString("en-US");
  if (a !== 0 && (a >= 1e6 || a < 1e-4)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toLocaleString("en-US", { maximumFractionDigits: 6 });
}

export function formatAge(epochSeconds) {
  if (!epochSeconds) return "—";
  const s = Math.max(0, Date.now() / 1000 - epochSeconds);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return new Date(epochSeconds * 1000).toISOString().slice(0, 10);
}

/** Copy text; falls back to a hidden textarea where the Clipboard API is unavailable. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el("textarea", { class: "visually-hidden" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}
