// What the page knows: the taps, the pours it shows, the hour, today and the open alerts,
// kept as the server says them (a report re-bases the counts; pours and keg events after it
// are added; alerts come from the server, then its alert frames), and what changed since
// the last frame was drawn.

export const FEED_MAX = 100;

/** How far along its life an alert is: a frame replayed late never takes one back. */
const STAGE = { open: 0, acknowledged: 1, resolved: 2 };

export const FLAG_LABELS = {
  tiny: "tiny",
  unclassified: "unclassified",
  overPour: "over-pour",
  afterHours: "after hours",
  burst: "burst",
  emptyKeg: "empty keg",
  future: "clock ahead",
  cleaning: "line cleaning",
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
  /** id -> alert, open or acknowledged, as the server last said. */
  alerts: new Map(),
  /** Alerts heard resolved: a replayed older frame does not bring them back. */
  resolved: new Set(),
  feedRows: new Map(),
};

// What changed since the last frame.
export const dirty = { taps: new Set(), allTaps: false, feed: [], removed: [], rate: false, today: false, alerts: false };

function tapOf(tapId) {
  let tap = state.taps.get(tapId);
  if (!tap) {
    tap = { tapId, name: null, keg: null, paceMlPerHour: 0, lastPourAt: 0, quiet: false, cleaning: false, temperatures: [] };
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
    tap.cleaning = Boolean(t.cleaning);
    tap.temperatures = t.temperatures ?? [];
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
  // Water through a line being cleaned: its tap is cleaning, and no keg drew it.
  const water = pour.flags.includes("cleaning");
  if (water) tap.cleaning = true;
  if (!counted && pour.id > state.countedUpTo) {
    if (tap.keg && !water) {
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
}

export function applyKegEvent(event) {
  if (event.seq <= state.lastSeq) return;
  state.lastSeq = event.seq;
  const tap = tapOf(event.tapId);
  if (event.event === "tap") {
    tap.quiet = event.kind === "quiet";
  } else if (event.after < state.countedUpTo) {
    // Older than the levels shown: only its alert is news.
  } else if (event.kind === "finished") {
    if (tap.keg && tap.keg.id === event.keg.id) tap.keg = null;
  } else {
    tap.keg = kegFrom(event.keg);
  }
  dirty.taps.add(event.tapId);
}

/** The open and acknowledged alerts, as `GET /api/alerts` lists them. */
export function applyAlerts(alerts) {
  for (const alert of alerts) mergeAlert(alert);
  dirty.alerts = true;
}

/** An alert frame: opened, updated (live only, seq 0), acknowledged or resolved. */
export function applyAlertEvent(frame) {
  if (frame.seq > 0) {
    if (frame.seq <= state.lastSeq) return;
    state.lastSeq = frame.seq;
  }
  mergeAlert(frame.alert);
  dirty.alerts = true;
}

function mergeAlert(alert) {
  if (alert.state === "resolved") {
    state.resolved.add(alert.id);
    state.alerts.delete(alert.id);
    return;
  }
  if (state.resolved.has(alert.id)) return;
  const known = state.alerts.get(alert.id);
  // An older word about it (a replay after the snapshot): keep what is further along.
  if (known && STAGE[known.state] > STAGE[alert.state]) return;
  if (known && known.state === alert.state && known.count > alert.count) return;
  state.alerts.set(alert.id, alert);
}
