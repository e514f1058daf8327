// What the page knows: the taps, the pours it shows, the hour, today and the alerts, kept
// as the server says them (a report re-bases the counts; pours and keg events after it are
// added), and what changed since the last frame was drawn.

import { clock, formatMl, formatPercent, tapName } from "./words.js";

export const FEED_MAX = 100;
export const ALERTS_MAX = 50;

export const FLAG_LABELS = {
  tiny: "tiny",
  unclassified: "unclassified",
  overPour: "over-pour",
  afterHours: "after hours",
  burst: "burst",
  emptyKeg: "empty keg",
};

export const state = {
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
export const dirty = { taps: new Set(), allTaps: false, feed: [], removed: [], rate: false, today: false, alerts: [] };

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

export function applyTaps(taps) {
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
export function applyReport(report) {
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
export function applyPour(pour, counted) {
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

export function applyKegEvent(event) {
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
