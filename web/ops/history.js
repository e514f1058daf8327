// The History view (`?view=history`): the last 30 business days (litres a day, and by
// beverage over 7 and 30 days) and the keg history with yields, each with its CSV. Read
// over REST when opened and every minute after: history does not need the socket.

import { $ } from "./draw.js";
import { formatMl, when } from "./words.js";

const REFRESH_MS = 60000;
const KEG_DAYS = 90;
let refresh = null;

/** `YYYY-MM-DD` `days` after (before, if negative) a `YYYY-MM-DD`. */
function addDays(date, days) {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

/** Beverages over the buckets from `first` on: litres and pours, most poured first. */
function byBeverage(buckets, first) {
  const sums = new Map();
  for (const bucket of buckets.filter((b) => b.start >= first)) {
    for (const group of bucket.groups) {
      const name = group.beverage ?? "No keg";
      const sum = sums.get(name) ?? { name, pours: 0, volumeMl: 0 };
      sum.pours += group.pours;
      sum.volumeMl += group.volumeMl;
      sums.set(name, sum);
    }
  }
  return [...sums.values()].sort((a, b) => b.volumeMl - a.volumeMl || a.name.localeCompare(b.name));
}

function cell(row, value, numeric = false) {
  const td = document.createElement("td");
  td.textContent = value;
  if (numeric) td.className = "num";
  row.append(td);
  return td;
}

/** A beverage table with a bar each, as long as its share of the most poured. */
function drawBeverages(tbody, rows, empty) {
  const top = Math.max(1, ...rows.map((r) => r.volumeMl));
  const total = rows.reduce((sum, r) => sum + r.volumeMl, 0);
  tbody.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.beverage = r.name;
      cell(tr, r.name);
      const barCell = cell(tr, "");
      barCell.className = "bar-cell";
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = `${((r.volumeMl / top) * 100).toFixed(1)}%`;
      barCell.append(bar);
      cell(tr, formatMl(r.volumeMl), true);
      cell(tr, String(r.pours), true);
      cell(tr, total > 0 ? `${Math.round((r.volumeMl / total) * 100)} %` : "", true);
      return tr;
    }),
  );
  empty.hidden = rows.length > 0;
}

/** Litres a business day, a column each, the last 7 brighter. */
function drawDays(buckets) {
  const days = buckets.map((b) => ({ day: b.start, ml: b.total.volumeMl }));
  const top = Math.max(1, ...days.map((d) => d.ml));
  const width = 600 / Math.max(1, days.length);
  const columns = days.map((d, i) => {
    const h = (d.ml / top) * 96;
    const recent = i >= days.length - 7 ? ' class="recent"' : "";
    return `<rect${recent} x="${(i * width + 1).toFixed(1)}" y="${(100 - h).toFixed(1)}" width="${(width - 2).toFixed(1)}" height="${h.toFixed(1)}"></rect>`;
  });
  // Numbers only: no user text goes into this markup.
  $("history-days").innerHTML = `<line x1="0" y1="99.5" x2="600" y2="99.5"></line>${columns.join("")}`;
  const busiest = days.reduce((a, b) => (b.ml > a.ml ? b : a), days[0] ?? { day: "", ml: 0 });
  const total = days.reduce((sum, d) => sum + d.ml, 0);
  $("history-days-summary").textContent =
    total > 0
      ? `${formatMl(total)} in ${days.length} business days; busiest ${busiest.day} with ${formatMl(busiest.ml)}.`
      : `Nothing poured in the last ${days.length} business days.`;
}

/** On the bar's clock. */
function dateTime(iso) {
  return iso ? when(Date.parse(iso)) : "";
}

function drawKegs(kegs) {
  // Newest finished first.
  const rows = [...kegs].sort((a, b) => (b.finishedAt ?? "").localeCompare(a.finishedAt ?? "") || b.id - a.id);
  $("keg-history").replaceChildren(
    ...rows.map((k) => {
      const tr = document.createElement("tr");
      tr.dataset.keg = String(k.id);
      const y = k.yield;
      cell(tr, `${k.tapId}${k.venue && k.venue !== "main" ? ` (${k.venue})` : ""}`);
      cell(tr, k.beverage);
      cell(tr, `${dateTime(k.tappedAt)} to ${dateTime(k.finishedAt)}`);
      cell(tr, y.daysOnTap === null ? "" : y.daysOnTap.toFixed(1), true);
      cell(tr, formatMl(y.pouredMl), true);
      cell(tr, String(y.pours), true);
      cell(tr, y.leftMl === null ? "" : `${formatMl(y.leftMl)}${y.leftMeasured ? "" : " (meters)"}`, true);
      cell(tr, y.unaccountedMl === null ? "" : formatMl(y.unaccountedMl), true);
      cell(tr, `${y.yieldPct.toFixed(1)} %`, true).className = "num yield";
      return tr;
    }),
  );
  $("no-keg-history").hidden = rows.length > 0;
}

/**
 * A CSV link: a plain link where the server asks for no token; else fetched with the
 * token (a link cannot carry the header) and saved from memory under the same name.
 */
export function csvLink(id, path, filename, token, errorId = "history-error") {
  const a = $(id);
  a.href = path;
  a.download = filename;
  a.onclick = async (event) => {
    const t = token();
    if (!t) return;
    event.preventDefault();
    const response = await fetch(path, { headers: { Accept: "text/csv", Authorization: `Bearer ${t}` }, cache: "no-store" });
    if (!response.ok) {
      $(errorId).textContent = `${filename}: the server answered ${response.status}`;
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const save = document.createElement("a");
    save.href = url;
    save.download = filename;
    save.click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  };
}

/** Shows the History view and keeps it fresh; `api` and `scoped` are the page's. */
export async function startHistory(api, scoped, token) {
  clearInterval(refresh);
  const load = async () => {
    const since = new Date(Date.now() - KEG_DAYS * 86400000).toISOString();
    const [history, kegs] = await Promise.all([
      api(scoped("/api/history?bucket=day&by=beverage")),
      api(scoped(`/api/kegs?status=finished&from=${encodeURIComponent(since)}`)),
    ]);
    const week = addDays(history.to, -6);
    drawDays(history.buckets);
    drawBeverages($("history-week"), byBeverage(history.buckets, week), $("no-history-week"));
    drawBeverages($("history-month"), byBeverage(history.buckets, history.from), $("no-history-month"));
    drawKegs(kegs.kegs);
    const place = history.venue ? `${history.venue}-` : "";
    csvLink("csv-week", scoped(`/api/history?from=${week}&to=${history.to}&bucket=day&by=beverage&format=csv`), `${place}by-beverage-${week}-to-${history.to}.csv`, token);
    csvLink("csv-month", scoped(`/api/history?from=${history.from}&to=${history.to}&bucket=day&by=beverage&format=csv`), `${place}by-beverage-${history.from}-to-${history.to}.csv`, token);
    csvLink("csv-kegs", scoped(`/api/kegs?status=finished&from=${encodeURIComponent(since)}&format=csv`), `${place}kegs-finished-since-${since.slice(0, 10)}.csv`, token);
    $("history-week-range").textContent = `${week} to ${history.to}`;
    $("history-month-range").textContent = `${history.from} to ${history.to}`;
    $("history-error").textContent = "";
  };
  await load();
  $("history").hidden = false;
  refresh = setInterval(() => load().catch((e) => ($("history-error").textContent = `Not refreshed: ${e.message}`)), REFRESH_MS);
}
