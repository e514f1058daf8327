// Altair's live operations page. It loads a snapshot over REST, then follows the
// WebSocket; on a drop it says so, reconnects with backoff and resumes with `since` and
// `eventsSince`, so nothing is missed or shown twice. Events are applied as they come and
// drawn once per animation frame, so a hundred pours a second cost one layout a frame.
// Text is only ever set with textContent: names come from users.

const FEED_MAX = 100;
const ALERTS_MAX = 50;
const TOKEN_KEY = "altair-token";
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;
const TAPS_REFRESH_MS = 60000;

const FLAG_LABELS = {
  tiny: "tiny",
  unclassified: "unclassified",
  overPour: "over-pour",
  afterHours: "after hours",
  burst: "burst",
  emptyKeg: "empty keg",
};

const $ = (id) => document.getElementById(id);
const wall = new URLSearchParams(location.search).get("view") === "wall";

const state = {
  glasses: [],
  /** tapId -> { tapId, name, keg, paceMlPerHour, lastPourAt (ms), quiet } */
  taps: new Map(),
  /** The newest pour id applied: a pour at or below it is not applied again. */
  lastId: 0,
  /** The newest keg or tap event applied. */
  lastSeq: 0,
  /** The first hello's lastSeq: events up to it came before this page. */
  seqFloor: 0,
  /** The newest pour the levels and counts already include (the last report's lastId). */
  countedUpTo: 0,
  perMinute: new Array(60).fill(0),
  today: { since: 0, pours: 0, byType: new Map() },
  alerts: [],
  alertKeys: new Set(),
  feedRows: new Map(),
};

// What changed since the last frame.
const dirty = { taps: new Set(), allTaps: false, feed: [], removed: [], rate: false, today: false, alerts: [] };
let frameAsked = false;

function schedule() {
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(render);
  }
}

class AuthError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path) {
  const headers = { Accept: "application/json" };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const response = await fetch(path, { headers, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    throw new AuthError(response.status, body.message || response.statusText);
  }
  if (!response.ok) throw new Error(`${path}: ${response.status} ${body.message || ""}`);
  return body;
}

// ---- applying what the server says ----

function tapOf(tapId) {
  let tap = state.taps.get(tapId);
  if (!tap) {
    tap = { tapId, name: null, keg: null, paceMlPerHour: 0, lastPourAt: 0, quiet: false };
    state.taps.set(tapId, tap);
    dirty.allTaps = true;
  }
  return tap;
}

function kegFrom(k) {
  return {
    id: k.id ?? k.kegId,
    beverage: k.beverage,
    sizeMl: k.sizeMl,
    remainingMl: k.remainingMl,
    low: k.low,
    empty: k.empty,
  };
}

function applyTaps(taps) {
  for (const t of taps) {
    const tap = tapOf(t.tapId);
    tap.name = t.name ?? null;
    tap.paceMlPerHour = t.paceMlPerHour ?? 0;
    tap.lastPourAt = Math.max(tap.lastPourAt, t.lastPourAt ? Date.parse(t.lastPourAt) : 0);
    tap.quiet = Boolean(t.quiet);
    if (t.quiet) alertQuiet(tap, Date.now());
    dirty.taps.add(t.tapId);
  }
}

/** A report is exact as of its place in the stream: levels, the hour and today. */
function applyReport(report) {
  state.countedUpTo = Math.max(state.countedUpTo, report.lastId);
  const onTap = new Set();
  for (const level of report.levels) {
    const tap = tapOf(level.tapId);
    tap.keg = kegFrom(level);
    onTap.add(level.tapId);
    dirty.taps.add(level.tapId);
  }
  for (const tap of state.taps.values()) {
    if (tap.keg && !onTap.has(tap.tapId)) {
      tap.keg = null;
      dirty.taps.add(tap.tapId);
    }
  }
  state.perMinute = report.poursPerMinute.slice();
  state.today = {
    since: Date.parse(report.today.since),
    pours: report.today.pours,
    byType: new Map(report.today.byType.map((t) => [t.type, t.pours])),
  };
  dirty.rate = true;
  dirty.today = true;
}

/** A pour; `counted` when the report applied last counts it already. */
function applyPour(pour, counted) {
  if (pour.id <= state.lastId) return;
  state.lastId = pour.id;
  const at = Date.parse(pour.timestamp);
  const tap = tapOf(pour.tapId);
  tap.lastPourAt = Math.max(tap.lastPourAt, at);
  dirty.taps.add(pour.tapId);
  if (!counted && pour.id > state.countedUpTo) {
    if (tap.keg) {
      tap.keg.remainingMl -= pour.volume;
      if (tap.keg.remainingMl <= 0) tap.keg.empty = true;
    }
    // A replayed pour may be minutes old: it goes in its own minute.
    const minute = 59 - Math.floor((Date.now() - at) / 60000);
    if (minute >= 0 && minute <= 59) state.perMinute[minute] += 1;
    dirty.rate = true;
    if (at >= state.today.since) {
      state.today.pours += 1;
      state.today.byType.set(pour.type, (state.today.byType.get(pour.type) ?? 0) + 1);
      dirty.today = true;
    }
  }
  dirty.feed.push(pour);
  // A hidden tab draws nothing (no animation frames): keep only what would be drawn.
  if (dirty.feed.length > 2 * FEED_MAX) dirty.feed.splice(0, dirty.feed.length - FEED_MAX);
  if (pour.flags.length > 0) {
    const labels = pour.flags.map((f) => FLAG_LABELS[f] ?? f).join(", ");
    addAlert(`pour:${pour.id}`, at, pour.flags.includes("burst") ? "burst" : "flag",
      `Tap ${tapName(tap)}: ${labels} pour #${pour.id} (${formatMl(pour.volume)}, ${pour.type})`);
  }
}

function applyKegEvent(event) {
  if (event.seq <= state.lastSeq) return;
  state.lastSeq = event.seq;
  const tap = tapOf(event.tapId);
  const at = Date.now();
  if (event.event === "tap") {
    tap.quiet = event.kind === "quiet";
    if (tap.quiet) alertQuiet(tap, at);
  } else if (event.after < state.countedUpTo) {
    // Older than the levels shown: only its alert is news.
  } else if (event.kind === "finished") {
    if (tap.keg && tap.keg.id === event.keg.id) tap.keg = null;
  } else {
    tap.keg = kegFrom(event.keg);
  }
  if (event.event === "keg") {
    if (event.kind === "low") {
      addAlert(`low:${event.keg.id}`, at, "low", `Tap ${tapName(tap)}: ${event.keg.beverage} is low (${formatPercent(kegFrom(event.keg))})`);
    } else if (event.kind === "empty") {
      addAlert(`empty:${event.keg.id}`, at, "empty-keg", `Tap ${tapName(tap)}: ${event.keg.beverage} is empty`);
    }
  }
  dirty.taps.add(event.tapId);
}

function alertQuiet(tap, at) {
  addAlert(`quiet:${tap.tapId}:${tap.lastPourAt}`, at, "quiet", `Tap ${tapName(tap)} is quiet: no pour since ${tap.lastPourAt ? clock(tap.lastPourAt) : "its keg went on"}`);
}

function addAlert(key, at, kind, text) {
  if (state.alertKeys.has(key)) return;
  state.alertKeys.add(key);
  state.alerts.unshift({ key, at, kind, text });
  while (state.alerts.length > ALERTS_MAX) state.alertKeys.delete(state.alerts.pop().key);
  dirty.alerts.push({ key, at, kind, text });
  if (dirty.alerts.length > 2 * ALERTS_MAX) dirty.alerts.splice(0, dirty.alerts.length - ALERTS_MAX);
}

// ---- words and numbers ----

function tapName(tap) {
  return tap.name ? `${tap.tapId} (${tap.name})` : String(tap.tapId);
}

function formatMl(ml) {
  return ml >= 1000 ? `${(ml / 1000).toFixed(2)} L` : `${Math.round(ml)} ml`;
}

function percentOf(keg) {
  if (!keg || !(keg.sizeMl > 0)) return 0;
  return Math.min(100, Math.max(0, (keg.remainingMl / keg.sizeMl) * 100));
}

function formatPercent(keg) {
  return `${percentOf(keg).toFixed(0)} %`;
}

// Made once: a formatter per call costs more than the rest of a feed row.
const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const HOUR = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const DAY_HOUR = new Intl.DateTimeFormat([], { weekday: "short", hour: "2-digit", minute: "2-digit" });

function clock(ms) {
  return CLOCK.format(ms);
}

function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

function servings(keg) {
  const left = Math.max(0, keg.remainingMl);
  return state.glasses
    .filter((g) => g.nominal > 0)
    .map((g) => `${Math.floor(left / g.nominal)} × ${g.name}`)
    .join(" · ");
}

function forecast(tap, now) {
  const keg = tap.keg;
  if (!keg || keg.remainingMl <= 0) return "";
  if (!(tap.paceMlPerHour > 0)) return "Run-out: no pace yet";
  const at = now + (keg.remainingMl / tap.paceMlPerHour) * 3600000;
  const hours = (at - now) / 3600000;
  const when = (hours < 24 ? HOUR : DAY_HOUR).format(at);
  return `Runs out about ${when}`;
}

// ---- drawing, once a frame ----

const tapCards = new Map();

function tapCard(tapId) {
  let card = tapCards.get(tapId);
  if (card) return card;
  const li = document.createElement("li");
  li.className = "tap";
  li.dataset.tap = tapId;
  const header = document.createElement("header");
  const h3 = document.createElement("h3");
  const badge = document.createElement("span");
  badge.className = "state";
  header.append(h3, badge);
  const beverage = document.createElement("p");
  beverage.className = "beverage";
  const level = document.createElement("div");
  level.className = "level";
  level.setAttribute("role", "meter");
  level.setAttribute("aria-valuemin", "0");
  level.setAttribute("aria-valuemax", "100");
  const fill = document.createElement("div");
  fill.className = "fill";
  const pct = document.createElement("span");
  pct.className = "pct";
  level.append(fill, pct);
  const facts = document.createElement("p");
  facts.className = "facts";
  const servingsLine = document.createElement("span");
  const forecastLine = document.createElement("span");
  const lastLine = document.createElement("span");
  facts.append(servingsLine, forecastLine, lastLine);
  li.append(header, beverage, level, facts);
  card = { li, h3, badge, beverage, level, fill, pct, servingsLine, forecastLine, lastLine };
  tapCards.set(tapId, card);
  // Taps in id order.
  const after = [...tapCards.keys()].filter((id) => id > tapId).sort((a, b) => a - b)[0];
  $("taps").insertBefore(li, after === undefined ? null : tapCards.get(after).li);
  $("no-taps").hidden = true;
  return card;
}

/** Sets what changed only: an unchanged text or attribute costs no layout or paint. */
function text(el, value) {
  if (el.textContent !== value) el.textContent = value;
}

function attr(el, name, value) {
  if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

function drawTap(tap, now) {
  const c = tapCard(tap.tapId);
  text(c.h3, tap.name ? `Tap ${tap.tapId} · ${tap.name}` : `Tap ${tap.tapId}`);
  const keg = tap.keg;
  const status = !keg ? ["nokeg", "No keg"] : tap.quiet ? ["quiet", "Quiet"] : ["online", "Online"];
  attr(c.badge, "class", `state ${status[0]}`);
  text(c.badge, status[1]);
  text(c.beverage, keg ? keg.beverage : "—");
  const pct = percentOf(keg);
  const shown = pct.toFixed(0);
  const scale = `scaleX(${(pct / 100).toFixed(3)})`;
  if (c.fill.style.transform !== scale) c.fill.style.transform = scale;
  text(c.pct, keg ? `${shown} %` : "");
  const low = Boolean(keg && keg.low);
  const empty = Boolean(keg && (keg.empty || keg.remainingMl <= 0));
  attr(c.level, "class", `level${low ? " low" : ""}${empty ? " empty" : ""}`);
  attr(c.level, "aria-valuenow", shown);
  attr(c.level, "aria-label", keg ? `${keg.beverage}: ${shown} % left, ${formatMl(Math.max(0, keg.remainingMl))}` : `Tap ${tap.tapId}: no keg`);
  text(c.servingsLine, keg ? `${formatMl(Math.max(0, keg.remainingMl))} left: ${servings(keg)}` : "");
  text(c.forecastLine, forecast(tap, now));
  text(c.lastLine, tap.lastPourAt ? `Last pour ${ago(tap.lastPourAt, now)}` : "No pour yet");
}

function feedRow(pour) {
  const tr = document.createElement("tr");
  tr.dataset.id = pour.id;
  const cells = [clock(Date.parse(pour.timestamp)), String(pour.tapId), pour.type, formatMl(pour.volume)];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 3) td.className = "num";
    tr.append(td);
  }
  const flags = document.createElement("td");
  for (const flag of pour.flags) {
    const badge = document.createElement("span");
    badge.className = `badge ${flag}`;
    badge.textContent = FLAG_LABELS[flag] ?? flag;
    flags.append(badge);
  }
  tr.append(flags);
  return tr;
}

function drawFeed() {
  const body = $("feed");
  for (const id of dirty.removed) {
    const row = state.feedRows.get(id);
    if (row) {
      row.remove();
      state.feedRows.delete(id);
    }
  }
  dirty.removed = [];
  // Only the newest FEED_MAX of a burst are ever drawn.
  const fresh = dirty.feed.slice(-FEED_MAX);
  dirty.feed = [];
  if (fresh.length > 0) {
    const fragment = document.createDocumentFragment();
    for (let i = fresh.length - 1; i >= 0; i--) {
      const row = feedRow(fresh[i]);
      state.feedRows.set(fresh[i].id, row);
      fragment.append(row);
    }
    body.prepend(fragment);
    while (body.rows.length > FEED_MAX) {
      const last = body.rows[body.rows.length - 1];
      state.feedRows.delete(Number(last.dataset.id));
      last.remove();
    }
  }
  $("no-pours").hidden = body.rows.length > 0;
}

function drawRate() {
  const svg = $("rate");
  const counts = state.perMinute;
  const top = Math.max(1, ...counts);
  const width = 600 / counts.length;
  const bars = counts.map((n, i) => {
    const h = (n / top) * 96;
    return `<rect x="${(i * width + 1).toFixed(1)}" y="${(100 - h).toFixed(1)}" width="${(width - 2).toFixed(1)}" height="${h.toFixed(1)}"></rect>`;
  });
  // Numbers only: no user text goes into this markup.
  svg.innerHTML = `<line x1="0" y1="99.5" x2="600" y2="99.5"></line>${bars.join("")}`;
  const hour = counts.reduce((a, b) => a + b, 0);
  $("rate-summary").textContent = `${counts[59]} in the last minute, ${hour} in the last hour (busiest minute: ${top === 1 && hour === 0 ? 0 : top}).`;
}

const todayRows = new Map();

/** Only the numbers change, in place. */
function drawToday() {
  $("today-total").textContent = `${state.today.pours} ${state.today.pours === 1 ? "pour" : "pours"}`;
  for (const [type, pours] of state.today.byType) {
    let row = todayRows.get(type);
    if (!row) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = type;
      const count = document.createElement("strong");
      li.append(name, count);
      $("today").append(li);
      row = { li, count };
      todayRows.set(type, row);
    }
    row.li.hidden = type === "unclassified" && pours === 0;
    const text = String(pours);
    if (row.count.textContent !== text) row.count.textContent = text;
  }
}

/** New alerts go on top; the oldest go once there are more than ALERTS_MAX. */
function drawAlerts() {
  const list = $("alerts");
  const fresh = dirty.alerts.slice(-ALERTS_MAX);
  dirty.alerts = [];
  const fragment = document.createDocumentFragment();
  for (let i = fresh.length - 1; i >= 0; i--) {
    const a = fresh[i];
    const li = document.createElement("li");
    li.className = a.kind;
    const time = document.createElement("time");
    time.dateTime = new Date(a.at).toISOString();
    time.textContent = clock(a.at);
    li.append(time, document.createTextNode(a.text));
    fragment.append(li);
  }
  list.prepend(fragment);
  while (list.children.length > ALERTS_MAX) list.lastElementChild.remove();
  $("no-alerts").hidden = list.children.length > 0;
}

let lastTick = 0;
let lastBusy = 0;
let wakeAsked = false;
let lastRate = 0;

/**
 * Text is redrawn at most every BUSY_MS: at a hundred pours a second, a feed that moves
 * five times a second is as readable as one that moves sixty times, and costs a tenth of
 * the painting. A quiet bar's pour still shows in the next frame.
 */
const BUSY_MS = 200;

function render() {
  frameAsked = false;
  const wallClock = Date.now();
  if (wallClock - lastBusy < BUSY_MS) {
    // Again when the interval is up.
    if (!wakeAsked) {
      wakeAsked = true;
      setTimeout(() => {
        wakeAsked = false;
        schedule();
      }, BUSY_MS - (wallClock - lastBusy));
    }
    return;
  }
  const anything = dirty.feed.length > 0 || dirty.removed.length > 0 || dirty.taps.size > 0 || dirty.alerts.length > 0;
  if (anything) lastBusy = wallClock;
  // "Last pour 12 s ago" moves once a second even with no event.
  const tick = wallClock - lastTick >= 1000;
  if (tick) lastTick = wallClock;
  const taps = dirty.allTaps || tick ? state.taps.keys() : dirty.taps;
  for (const id of taps) drawTap(state.taps.get(id), wallClock);
  dirty.taps.clear();
  dirty.allTaps = false;
  if (wall) {
    dirty.feed = [];
    dirty.alerts = [];
  } else {
    if (dirty.feed.length > 0 || dirty.removed.length > 0) drawFeed();
    if (dirty.today) drawToday();
    if (dirty.alerts.length > 0) drawAlerts();
    // Bars a minute wide: redrawn at most twice a second.
    if (dirty.rate && wallClock - lastRate >= 500) {
      drawRate();
      lastRate = wallClock;
      dirty.rate = false;
    }
  }
  dirty.today = false;
}

setInterval(schedule, 1000);

// ---- the connection ----

function setConnection(kind, text) {
  const el = $("connection");
  el.dataset.state = kind;
  el.textContent = text;
}

async function loadSnapshot() {
  const [glasses, report, taps] = await Promise.all([
    api("/api/glasses"),
    api("/api/report"),
    api("/api/taps"),
  ]);
  state.glasses = glasses.glasses;
  applyTaps(taps.taps);
  applyReport(report);
  // The latest pours the report counts; the socket replays everything after them.
  const since = report.lastId;
  if (since > 0) {
    const page = await api(`/api/beers?after=${Math.max(0, since - 2 * FEED_MAX)}&page_size=1000`);
    const pours = page.beers.filter((p) => p.id <= since).slice(-FEED_MAX);
    for (const pour of pours) applyPour(pour, true);
  }
  state.lastId = since;
  schedule();
}

let attempt = 0;
let socket = null;
let tapsTimer = null;
/** Set while the page waits for a token: nothing reconnects meanwhile. */
let halted = false;

function socketUrl() {
  const url = new URL("/sockets/beers", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("since", String(state.lastId));
  const seq = Math.max(state.lastSeq, state.seqFloor);
  if (seq > 0) url.searchParams.set("eventsSince", String(seq));
  const t = token();
  if (t) url.searchParams.set("token", t);
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
      default:
        break;
    }
    schedule();
  };
  socket.onclose = (close) => {
    socket = null;
    if (halted) return;
    if (close.code === 1008 && close.reason === "token revoked") {
      sessionStorage.removeItem(TOKEN_KEY);
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
    applyTaps((await api("/api/taps")).taps);
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
  $("token-form").hidden = false;
  $("token-error").textContent = message;
  setConnection("failed", "Needs a token");
  $("token").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("token").value.trim();
  if (!value) return;
  sessionStorage.setItem(TOKEN_KEY, value);
  $("token").value = "";
  start();
});

async function start() {
  halted = false;
  setConnection("connecting", "Connecting…");
  try {
    await loadSnapshot();
  } catch (e) {
    if (e instanceof AuthError) {
      const message = authMessage(e);
      // A token that does not open the page is not kept.
      sessionStorage.removeItem(TOKEN_KEY);
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

if (wall) {
  document.body.classList.add("wall");
  const link = $("view-link");
  link.href = "/";
  link.textContent = "Full view";
}
start();
