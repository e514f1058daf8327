// The chain view at `/` when the server has several venues: a card per bar (its name, its
// local time, open or closed, today's pours and litres, kegs low and empty, open alerts, its
// last pour), live, the bars with the newest problems first. Each card links to its bar's
// page (`/venues/{id}/`) and wall view. It reads each venue's report over REST, then
// follows every venue's frames on one socket (each venue's reports, pours, keg events and
// alerts); after a drop it reads the reports again.

import { $ } from "./draw.js";
import { ago, formatMl } from "./words.js";

const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10000;

/** id -> { venue, today: {since, pours, ml}, kegs: Map(tapId -> keg), openAlerts: Map(id -> openedAt ms), lastPourAt } */
const bars = new Map();
const cards = new Map();
let frameAsked = false;

/** `HH:MM` windows, comma-separated; a window that ends before it starts crosses midnight. */
function openAt(hours, secondOfDay) {
  if (!hours) return true;
  return hours.split(",").some((window) => {
    const [start, end] = window.split("-").map((clock) => {
      const [h, m] = clock.trim().split(":").map(Number);
      return h * 3600 + m * 60;
    });
    if (start < end) return secondOfDay >= start && secondOfDay < end;
    return secondOfDay >= start || secondOfDay < end;
  });
}

function clockOf(timeZone) {
  try {
    return new Intl.DateTimeFormat([], { timeZone, hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  } catch {
    return new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
  }
}

function barOf(venue) {
  let bar = bars.get(venue.id);
  if (!bar) {
    bar = {
      venue,
      clock: clockOf(venue.timezone),
      today: { since: 0, pours: 0, ml: 0 },
      kegs: new Map(),
      openAlerts: new Map(),
      lastPourAt: 0,
    };
    bars.set(venue.id, bar);
  }
  return bar;
}

function applyReport(bar, report) {
  bar.today = { since: Date.parse(report.today.since), pours: report.today.pours, ml: report.today.volumeMl };
  bar.kegs = new Map(report.levels.map((level) => [level.tapId, { low: level.low, empty: level.empty }]));
  if (report.lastPourAt) bar.lastPourAt = Math.max(bar.lastPourAt, Date.parse(report.lastPourAt));
}

function applyAlert(alert) {
  const bar = alert.venue ? bars.get(alert.venue) : null;
  if (!bar) return;
  if (alert.state === "open") bar.openAlerts.set(alert.id, Date.parse(alert.openedAt));
  else bar.openAlerts.delete(alert.id);
}

function schedule() {
  if (!frameAsked) {
    frameAsked = true;
    requestAnimationFrame(draw);
  }
}

function card(bar) {
  let c = cards.get(bar.venue.id);
  if (c) return c;
  const li = document.createElement("li");
  li.className = "venue-card";
  li.dataset.venue = bar.venue.id;
  const h2 = document.createElement("h2");
  const link = document.createElement("a");
  link.href = `/venues/${encodeURIComponent(bar.venue.id)}/`;
  link.textContent = bar.venue.name;
  h2.append(link);
  const status = document.createElement("p");
  status.className = "venue-status";
  const today = document.createElement("p");
  today.className = "venue-today";
  const kegs = document.createElement("p");
  kegs.className = "venue-kegs";
  const alerts = document.createElement("p");
  alerts.className = "venue-alerts";
  const last = document.createElement("p");
  last.className = "venue-last";
  const wallLink = document.createElement("a");
  wallLink.className = "secondary";
  wallLink.href = `/venues/${encodeURIComponent(bar.venue.id)}/?view=wall`;
  wallLink.textContent = "Wall view";
  wallLink.setAttribute("aria-label", `${bar.venue.name}: wall view`);
  li.append(h2, status, today, kegs, alerts, last, wallLink);
  c = { li, status, today, kegs, alerts, last };
  cards.set(bar.venue.id, c);
  return c;
}

function text(el, value) {
  if (el.textContent !== value) el.textContent = value;
}

/** The bars with the newest open problem first, then the rest by name. */
function order(a, b) {
  const newest = (bar) => Math.max(0, ...bar.openAlerts.values());
  return newest(b) - newest(a) || a.venue.name.localeCompare(b.venue.name);
}

function draw() {
  frameAsked = false;
  const now = Date.now();
  const sorted = [...bars.values()].sort(order);
  for (const bar of sorted) {
    const c = card(bar);
    const parts = Object.fromEntries(bar.clock.formatToParts(now).map((p) => [p.type, p.value]));
    const second = Number(parts.hour) * 3600 + Number(parts.minute) * 60;
    const open = openAt(bar.venue.openingHours, second);
    text(c.status, `${parts.hour}:${parts.minute} · ${open ? "open" : "closed"}`);
    c.status.dataset.open = String(open);
    const pours = bar.today.pours;
    text(c.today, `Today: ${pours} ${pours === 1 ? "pour" : "pours"}, ${formatMl(bar.today.ml)}`);
    const kegs = [...bar.kegs.values()];
    const empty = kegs.filter((k) => k.empty).length;
    const low = kegs.filter((k) => k.low && !k.empty).length;
    text(c.kegs, empty + low === 0 ? "Kegs: all fine" : `Kegs: ${low} low, ${empty} empty`);
    c.li.classList.toggle("has-empty", empty > 0);
    const alerts = bar.openAlerts.size;
    text(c.alerts, alerts === 0 ? "No open alerts" : `${alerts} open ${alerts === 1 ? "alert" : "alerts"}`);
    c.li.classList.toggle("has-alerts", alerts > 0);
    text(c.last, bar.lastPourAt ? `Last pour ${ago(bar.lastPourAt, now)}` : "No pour yet");
  }
  // Moved only where the order changed: a card that stays put costs no layout.
  const list = $("venues");
  sorted.forEach((bar, i) => {
    const li = cards.get(bar.venue.id).li;
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
}

/** The chain view, for `venues` (as `GET /api/venues` lists them); `api` reads the REST
 * API with the page's token, `socketUrl` makes a socket URL with it, `setConnection`
 * says how the connection is. */
export async function startChain(venues, api, socketUrl, setConnection) {
  document.body.classList.add("chain");
  $("main").hidden = true;
  $("chain").hidden = false;
  $("view-link").hidden = true;
  for (const venue of venues) barOf(venue);
  await load(api);
  follow(api, socketUrl, setConnection, 0);
  setInterval(schedule, 1000);
}

async function load(api) {
  const [reports, open] = await Promise.all([
    Promise.all([...bars.keys()].map((id) => api(`/api/report?venue=${encodeURIComponent(id)}`))),
    api("/api/alerts?state=open&page_size=1000"),
  ]);
  for (const report of reports) {
    const bar = bars.get(report.venue);
    if (bar) applyReport(bar, report);
  }
  for (const bar of bars.values()) bar.openAlerts.clear();
  for (const alert of open.alerts) applyAlert(alert);
  schedule();
}

function follow(api, socketUrl, setConnection, attempt) {
  const url = socketUrl();
  for (const id of bars.keys()) url.searchParams.append("venue", id);
  const socket = new WebSocket(url);
  let opened = false;
  socket.onmessage = (message) => {
    let frame;
    try {
      frame = JSON.parse(message.data);
    } catch {
      return;
    }
    if (frame.event === "hello") {
      opened = true;
      setConnection("live", "Live");
    } else if (frame.event === "report" && frame.report.venue) {
      const bar = bars.get(frame.report.venue);
      if (bar) applyReport(bar, frame.report);
    } else if (frame.event === "pour") {
      const bar = bars.get(frame.beer.venue);
      if (bar) {
        const at = Date.parse(frame.beer.timestamp);
        bar.lastPourAt = Math.max(bar.lastPourAt, at);
        if (at >= bar.today.since) {
          bar.today.pours += 1;
          bar.today.ml += frame.beer.volume;
        }
      }
    } else if (frame.event === "keg") {
      const bar = bars.get(frame.venue);
      if (bar) {
        if (frame.kind === "finished") bar.kegs.delete(frame.tapId);
        else bar.kegs.set(frame.tapId, { low: frame.keg.low, empty: frame.keg.empty });
      }
    } else if (frame.event === "alert") {
      applyAlert(frame.alert);
    }
    schedule();
  };
  socket.onclose = () => {
    const next = opened ? 1 : attempt + 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (next - 1)) * (0.8 + Math.random() * 0.4);
    setConnection("reconnecting", `Reconnecting… (in ${(delay / 1000).toFixed(1)} s)`);
    setTimeout(async () => {
      try {
        // What happened meanwhile is in the reports.
        await load(api);
      } catch {
        // The socket's own retry says so.
      }
      follow(api, socketUrl, setConnection, next);
    }, delay);
  };
}
