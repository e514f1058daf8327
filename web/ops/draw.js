// Drawing, once an animation frame at most: only what changed is touched, and text at
// most every BUSY_MS while pours stream in.

import { FEED_MAX, FLAG_LABELS, dirty, state } from "./state.js";
import { DAY_HOUR, HOUR, ago, formatMl, percentOf, stamp, when } from "./words.js";

export const $ = (id) => document.getElementById(id);
export const wall = new URLSearchParams(location.search).get("view") === "wall";
export const history = new URLSearchParams(location.search).get("view") === "history";
export const variance = new URLSearchParams(location.search).get("view") === "variance";

let frameAsked = false;

export function schedule() {
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(render);
  }
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
  const time = (hours < 24 ? HOUR : DAY_HOUR).format(at);
  return `Runs out about ${time}`;
}

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
  const tempLine = document.createElement("span");
  tempLine.className = "temp";
  facts.append(servingsLine, forecastLine, lastLine, tempLine);
  const clean = document.createElement("button");
  clean.type = "button";
  clean.className = "clean";
  clean.addEventListener("click", () => {
    const tap = state.taps.get(tapId);
    if (tap && actions.cleaning) actions.cleaning(tapId, !tap.cleaning, clean);
  });
  li.append(header, beverage, level, facts, clean);
  card = { li, h3, badge, beverage, level, fill, pct, servingsLine, forecastLine, lastLine, tempLine, clean };
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
  const low = Boolean(keg && keg.low);
  const empty = Boolean(keg && (keg.empty || keg.remainingMl <= 0));
  // In words and with a mark, not in colour alone: read across a room.
  const status = tap.cleaning
    ? ["cleaning", "≈ Cleaning the line"]
    : !keg
    ? ["nokeg", "No keg"]
    : empty
      ? ["empty", "✖ EMPTY"]
      : low
        ? ["low", "▼ LOW"]
        : tap.quiet
          ? ["quiet", "◔ Quiet"]
          : ["online", "On tap"];
  attr(c.badge, "class", `state ${status[0]}`);
  text(c.badge, status[1]);
  attr(c.li, "class", `tap${empty ? " is-empty" : low ? " is-low" : ""}`);
  text(c.beverage, keg ? keg.beverage : "—");
  const pct = percentOf(keg);
  const shown = pct.toFixed(0);
  const scale = `scaleX(${(pct / 100).toFixed(3)})`;
  if (c.fill.style.transform !== scale) c.fill.style.transform = scale;
  text(c.pct, keg ? `${shown} %` : "");
  attr(c.level, "class", `level${low ? " low" : ""}${empty ? " empty" : ""}`);
  attr(c.level, "aria-valuenow", shown);
  attr(c.level, "aria-label", keg ? `${keg.beverage}: ${shown} % left, ${formatMl(Math.max(0, keg.remainingMl))}` : `Tap ${tap.tapId}: no keg`);
  text(c.servingsLine, keg ? `${formatMl(Math.max(0, keg.remainingMl))} left: ${servings(keg)}` : "");
  text(c.forecastLine, forecast(tap, now));
  text(c.lastLine, tap.lastPourAt ? `Last pour ${ago(tap.lastPourAt, now)}` : "No pour yet");
  text(c.tempLine, temperatures(tap, now));
  // Said in words (and marked) when a sensor is not fine, not in colour alone.
  const worst = (tap.temperatures || []).map((t) => t.condition).find((c) => c !== "fine") || "fine";
  attr(c.tempLine, "class", `temp ${worst}`);
  // A failed click says why until the state changes.
  const label = tap.cleaning ? "Line clean: stop cleaning" : "Clean the line";
  if (c.clean.dataset.cleaning !== String(tap.cleaning)) {
    c.clean.dataset.cleaning = String(tap.cleaning);
    text(c.clean, label);
  }
}

const CONDITION_WORDS = { warm: "▲ too warm", hot: "✖ too hot", silent: "◌ silent" };

/** Each sensor's latest reading and its age: "Keg 3.2 °C, 40 s ago". */
function temperatures(tap, now) {
  return (tap.temperatures || [])
    .map((t) => {
      const place = t.location[0].toUpperCase() + t.location.slice(1);
      const said = CONDITION_WORDS[t.condition] ? ` ${CONDITION_WORDS[t.condition]}` : "";
      return `${place} ${t.celsius.toFixed(1)} °C, ${ago(Date.parse(t.timestamp), now)}${said}`;
    })
    .join(" · ");
}

function feedRow(pour) {
  const tr = document.createElement("tr");
  tr.dataset.id = pour.id;
  const cells = [stamp(Date.parse(pour.timestamp)), String(pour.tapId), pour.type, formatMl(pour.volume)];
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

const SEVERITY = { critical: 0, warning: 1, info: 2 };
const MARK = { critical: "✖", warning: "▲", info: "ℹ" };

/** What `acknowledge(id)` does: set by the connection, which holds the token. */
export const actions = { acknowledge: null, cleaning: null };

/** The server's open alerts, loudest first, then the acknowledged ones. Redrawn whole:
 * they are few, since pours are grouped one alert per tap and flag. */
function drawAlerts() {
  dirty.alerts = false;
  const alerts = [...state.alerts.values()].sort(
    (a, b) =>
      (a.state === "acknowledged") - (b.state === "acknowledged") ||
      SEVERITY[a.severity] - SEVERITY[b.severity] ||
      Date.parse(b.lastSeenAt) - Date.parse(a.lastSeenAt),
  );
  const fragment = document.createDocumentFragment();
  for (const a of alerts) {
    const li = document.createElement("li");
    li.className = `alert ${a.severity} ${a.state}`;
    li.dataset.alert = a.id;
    li.dataset.kind = a.kind;
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.setAttribute("aria-hidden", "true");
    mark.textContent = MARK[a.severity] ?? "";
    const message = document.createElement("span");
    message.className = "message";
    message.textContent = a.message;
    const meta = document.createElement("span");
    meta.className = "meta";
    const opened = Date.parse(a.openedAt);
    const time = document.createElement("time");
    time.dateTime = a.openedAt;
    time.textContent = `since ${when(opened)}`;
    meta.append(`${a.severity} · `, time);
    if (a.state === "acknowledged") {
      meta.append(` · acknowledged${a.acknowledgedBy ? ` by ${a.acknowledgedBy}` : ""}${a.note ? `: ${a.note}` : ""}`);
    }
    li.append(mark, message, meta);
    if (a.state === "open" && actions.acknowledge) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "ack";
      button.textContent = "Acknowledge";
      button.setAttribute("aria-label", `Acknowledge: ${a.message}`);
      button.addEventListener("click", () => actions.acknowledge(a.id, button));
      li.append(button);
    }
    fragment.append(li);
  }
  $("alerts").replaceChildren(fragment);
  $("no-alerts").hidden = alerts.length > 0;
  const open = alerts.filter((a) => a.state === "open").length;
  $("alerts-count").textContent = open > 0 ? `${open} open` : "";
}

let lastTick = 0;
let lastBusy = 0;
let wakeAsked = false;
let lastRate = 0;
let rateAsked = false;

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
  const anything = dirty.feed.length > 0 || dirty.removed.length > 0 || dirty.taps.size > 0 || dirty.alerts;
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
    dirty.alerts = false;
  } else {
    if (dirty.feed.length > 0 || dirty.removed.length > 0) drawFeed();
    if (dirty.today) drawToday();
    if (dirty.alerts) drawAlerts();
    // Bars a minute wide: redrawn at most twice a second.
    if (dirty.rate && wallClock - lastRate >= 500) {
      drawRate();
      lastRate = wallClock;
      dirty.rate = false;
    } else if (dirty.rate && !rateAsked) {
      // Not forgotten until the next tick: drawn when the half second is up.
      rateAsked = true;
      setTimeout(() => {
        rateAsked = false;
        schedule();
      }, 500 - (wallClock - lastRate));
    }
  }
  dirty.today = false;
}

setInterval(schedule, 1000);
