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

// Made once per time zone: a formatter per call costs more than the rest of a feed row.
// Clocks are the bar's (the server's --timezone, from its hello), 24- or 12-hour as this
// browser's language writes them.
function formatters(timeZone) {
  const make = (options) => new Intl.DateTimeFormat([], { timeZone, ...options });
  return {
    clock: make({ hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    hour: make({ hour: "2-digit", minute: "2-digit" }),
    dayHour: make({ weekday: "short", hour: "2-digit", minute: "2-digit" }),
    dateHour: make({ month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }),
    day: make({ year: "numeric", month: "2-digit", day: "2-digit" }),
  };
}

let f = formatters(undefined);
export let HOUR = f.hour;
export let DAY_HOUR = f.dayHour;

/** Clocks from now on use the bar's zone (an IANA name the browser may not know: then
 * the browser's own). */
export function setTimeZone(timeZone) {
  try {
    f = formatters(timeZone);
  } catch {
    f = formatters(undefined);
  }
  HOUR = f.hour;
  DAY_HOUR = f.dayHour;
}

export function clock(ms) {
  return f.clock.format(ms);
}

/** A pour's time: of today, to the second; of another day, with its date. */
export function stamp(ms, now = Date.now()) {
  return f.day.format(ms) === f.day.format(now) ? f.clock.format(ms) : f.dateHour.format(ms);
}

/** A time of today as a clock; of another day, with its date. */
export function when(ms, now = Date.now()) {
  return f.day.format(ms) === f.day.format(now) ? f.hour.format(ms) : f.dateHour.format(ms);
}

export function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

