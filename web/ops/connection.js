// The connection: a snapshot over REST, then the WebSocket, resumed after a drop with
// `since` and `eventsSince`; and the token prompt when the server asks for one. At `/` on
// a server with several venues (that the token sees), the chain view instead; at
// `/venues/{id}/`, that bar's page: every read and the socket name its venue.

import { startChain } from "./chain.js";
import { $, actions, history, schedule, variance } from "./draw.js";
import { startHistory } from "./history.js";
import { startVariance } from "./variance.js";
import { FEED_MAX, applyAlertEvent, applyAlerts, applyKegEvent, applyPour, applyReport, applyTaps, dirty, state } from "./state.js";
import { setTimeZone } from "./words.js";

const TOKEN_KEY = "altair-token";
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;
const TAPS_REFRESH_MS = 60000;

class AuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** This tab's token, else the one this screen remembers (a kiosk, across restarts). */
function token() {
  return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  localStorage.removeItem(TOKEN_KEY);
  $("forget").hidden = true;
}

$("forget").hidden = localStorage.getItem(TOKEN_KEY) === null;
$("forget").addEventListener("click", () => {
  forgetToken();
  location.reload();
});

/** The bar this page shows: from its path, else the only venue the token sees. */
const place = { venue: /^\/venues\/([a-z0-9-]{1,40})\/?$/.exec(location.pathname)?.[1] ?? null };

/** `path` for this page's bar. */
function scoped(path) {
  if (!place.venue) return path;
  return `${path}${path.includes("?") ? "&" : "?"}venue=${encodeURIComponent(place.venue)}`;
}

async function api(path, method = "GET", json = undefined) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const body = json === undefined ? undefined : JSON.stringify(json);
  const response = await fetch(path, { method, headers, body, cache: "no-store" });
  const answer = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(response.status, answer.message || response.statusText);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status} ${answer.message || ""}`);
  return answer;
}

function setConnection(kind, text) {
  const el = $("connection");
  el.dataset.state = kind;
  el.textContent = text;
}

/** Which page this is: the chain's (several venues at `/`) or one bar's. */
async function loadPlace() {
  const venues = (await api("/api/venues")).venues;
  if (!place.venue && venues.length > 1) {
    // The chain's history and variance add up every bar's.
    $("history-link").href = history ? "/" : "/?view=history";
    $("variance-link").href = variance ? "/" : "/?view=variance";
    return { chain: venues };
  }
  const venue = place.venue ? venues.find((v) => v.id === place.venue) : venues[0];
  if (!venue) throw new Error(`there is no bar ${place.venue} here`);
  place.venue = venue.id;
  // Its clock from the start: the snapshot's times are drawn before the socket's hello.
  setTimeZone(venue.timezone);
  if (venues.length > 1 || !venue.default) {
    $("venue-name").textContent = venue.name;
    $("venue-name").hidden = false;
    document.title = `${venue.name} · Altair`;
  }
  // Back to the chain, for a token that sees it.
  $("chain-link").hidden = venues.length < 2;
  const link = $("view-link");
  link.href = wallHref(venue);
  $("history-link").href = `${basePath(venue)}${history ? "" : "?view=history"}`;
  $("variance-link").href = `${basePath(venue)}${variance ? "" : "?view=variance"}`;
  if (history || variance) link.hidden = true;
  return {};
}

function basePath(venue) {
  return location.pathname.startsWith("/venues/") ? `/venues/${encodeURIComponent(venue.id)}/` : "/";
}

function wallHref(venue) {
  const base = basePath(venue);
  return new URLSearchParams(location.search).get("view") === "wall" ? base : `${base}?view=wall`;
}

async function loadSnapshot() {
  const [glasses, report, taps] = await Promise.all([
    api("/api/glasses"),
    api(scoped("/api/report")),
    api(scoped("/api/taps")),
    loadAlerts(),
  ]);
  state.glasses = glasses.glasses;
  applyTaps(taps.taps);
  applyReport(report);
  // The latest pours the report counts; the socket replays everything after them.
  const since = report.lastId;
  if (since > 0) {
    const page = await api(scoped(`/api/beers?after=${Math.max(0, since - 2 * FEED_MAX)}&page_size=1000`));
    const pours = page.beers.filter((p) => p.id <= since).slice(-FEED_MAX);
    for (const pour of pours) applyPour(pour, true);
  }
  state.lastId = since;
  schedule();
}

/** The alerts open or acknowledged now (kept by the server: a reload shows them all). */
async function loadAlerts() {
  const [open, acknowledged] = await Promise.all([
    api(scoped("/api/alerts?state=open&page_size=1000")),
    api(scoped("/api/alerts?state=acknowledged&page_size=1000")),
  ]);
  applyAlerts([...open.alerts, ...acknowledged.alerts]);
}

/** Starts or stops cleaning a tap's line (an admin token's to do). */
actions.cleaning = async (tapId, on, button) => {
  button.disabled = true;
  try {
    const body = await api(scoped(`/api/taps/${tapId}/cleaning`), "POST", { cleaning: on });
    applyTaps([body.tap]);
  } catch (e) {
    const why = e instanceof AuthError ? "only an admin token may clean a line" : e.message;
    button.textContent = `Not changed: ${why}`;
  }
  button.disabled = false;
  schedule();
};

actions.acknowledge = async (id, button) => {
  button.disabled = true;
  try {
    const body = await api(`/api/alerts/${id}/ack`, "POST");
    applyAlerts([body.alert]);
  } catch (e) {
    button.disabled = false;
    const why = e instanceof AuthError ? "only an admin token may acknowledge" : e.message;
    button.textContent = `Not acknowledged: ${why}`;
  }
  schedule();
};

let attempt = 0;
let socket = null;
let tapsTimer = null;
/** Set while the page waits for a token: nothing reconnects meanwhile. */
let halted = false;

/** The socket's URL, with the page's token. */
function baseSocketUrl() {
  const url = new URL("/sockets/beers", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  if (t) url.searchParams.set("token", t);
  return url;
}

function socketUrl() {
  const url = baseSocketUrl();
  if (place.venue) url.searchParams.set("venue", place.venue);
  url.searchParams.set("since", String(state.lastId));
  const seq = Math.max(state.lastSeq, state.seqFloor);
  if (seq > 0) url.searchParams.set("eventsSince", String(seq));
  return url;
}

function connect() {
  socket = new WebSocket(socketUrl());
  let opened = false;
  socket.onmessage = (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    switch (frame.event) {
      case "hello":
        opened = true;
        attempt = 0;
        state.glasses = frame.glasses ?? state.glasses;
        if (frame.timeZone) setTimeZone(frame.timeZone);
        // Events up to here came before this page (but those after the snapshot's
        // last pour, which `since` replays): on a reconnect, only later ones are news.
        if (state.seqFloor === 0) state.seqFloor = frame.lastSeq ?? 0;
        setConnection("live", "Live");
        break;
      case "pour":
        applyPour(frame.beer, false);
        break;
      case "deleted":
        if (state.feedRows.has(frame.id) || dirty.feed.some((p) => p.id === frame.id)) {
          dirty.feed = dirty.feed.filter((p) => p.id !== frame.id);
          dirty.removed.push(frame.id);
        }
        break;
      case "report":
        applyReport(frame.report);
        break;
      case "keg":
      case "tap":
        applyKegEvent(frame);
        break;
      case "alert":
        applyAlertEvent(frame);
        break;
      default:
        break;
    }
    schedule();
  };
  socket.onclose = (close) => {
    socket = null;
    if (halted) return;
    if (close.code === 1008 && close.reason === "token revoked") {
      forgetToken();
      askForToken("The token was revoked on the server: enter another.");
      return;
    }
    if (opened) refreshTapsSoon();
    reconnect();
  };
}

function reconnect() {
  attempt += 1;
  const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4);
  setConnection("reconnecting", `Reconnecting… (try ${attempt}, in ${(delay / 1000).toFixed(1)} s)`);
  setTimeout(connect, delay);
}

/** Names, paces and quiet flags change rarely: read again now and then, and after a drop. */
function refreshTapsSoon() {
  clearTimeout(tapsTimer);
  tapsTimer = setTimeout(refreshTaps, socket ? 0 : RETRY_FIRST_MS);
}

async function refreshTaps() {
  if (!socket || socket.readyState !== WebSocket.OPEN) {
    tapsTimer = setTimeout(refreshTaps, RETRY_FIRST_MS);
    return;
  }
  try {
    applyTaps((await api(scoped("/api/taps"))).taps);
    await loadAlerts();
    schedule();
  } catch (e) {
    if (e instanceof AuthError) {
      askForToken(authMessage(e));
      return;
    }
  }
  tapsTimer = setTimeout(refreshTaps, TAPS_REFRESH_MS);
}

function authMessage(e) {
  if (e.status === 403) return `That token may not read pours (${e.message}): use a reader or admin token.`;
  return token() ? `That token was not accepted (${e.message}). Check it and try again.` : "";
}

function askForToken(message) {
  halted = true;
  clearTimeout(tapsTimer);
  if (socket) socket.close();
  $("main").hidden = true;
  $("history").hidden = true;
  $("variance").hidden = true;
  $("token-form").hidden = false;
  $("token-error").textContent = message;
  setConnection("failed", "Needs a token");
  $("token").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  if ($("remember").checked) {
    localStorage.setItem(TOKEN_KEY, value);
    $("forget").hidden = false;
  } else {
    sessionStorage.setItem(TOKEN_KEY, value);
  }
  $("token").value = "";
  start();
});

export async function start() {
  halted = false;
  setConnection("connecting", "Connecting…");
  try {
    const { chain } = await loadPlace();
    if (history) {
      $("token-form").hidden = true;
      await startHistory(api, scoped, token);
      setConnection("live", "History");
      return;
    }
    if (variance) {
      $("token-form").hidden = true;
      await startVariance(api, scoped, token);
      setConnection("live", "Variance");
      return;
    }
    if (chain) {
      $("token-form").hidden = true;
      await startChain(chain, api, baseSocketUrl, setConnection);
      return;
    }
    await loadSnapshot();
  } catch (e) {
    if (e instanceof AuthError) {
      const message = authMessage(e);
      // A token that does not open the page is not kept.
      forgetToken();
      askForToken(message);
      return;
    }
    attempt += 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1));
    setConnection("failed", `Cannot load (${e.message}); trying again in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(start, delay);
    return;
  }
  $("token-form").hidden = true;
  $("main").hidden = false;
  connect();
  tapsTimer = setTimeout(refreshTaps, TAPS_REFRESH_MS);
}
