// Words and numbers for people: litres, percentages, times.

export function tapName(tap) {
  return tap.name ? `${tap.tapId} (${tap.name})` : String(tap.tapId);
}

export function formatMl(ml) {
  return ml >= 1000 ? `${(ml / 1000).toFixed(2)} L` : `${Math.round(ml)} ml`;
}

export function percentOf(keg) {
  if (!keg || !(keg.sizeMl > 0)) return 0;
  return Math.min(100, Math.max(0, (keg.remainingMl / keg.sizeMl) * 100));
}

export function formatPercent(keg) {
  return `${percentOf(keg).toFixed(0)} %`;
}

// Made once: a formatter per call costs more than the rest of a feed row.
export const CLOCK = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
export const HOUR = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
export const DAY_HOUR = new Intl.DateTimeFormat([], { weekday: "short", hour: "2-digit", minute: "2-digit" });

export function clock(ms) {
  return CLOCK.format(ms);
}

export function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

