// The Variance view (`?view=variance`): poured against sold, today and over the last 7
// business days per beverage, each against the goal; the worst hours of the week; the
// till's items still to map. Read over REST when opened and every minute after.

import { $ } from "./draw.js";
import { csvLink } from "./history.js";
import { formatMl } from "./words.js";

const REFRESH_MS = 60000;
const HOURS_SHOWN = 10;
let refresh = null;

function cell(row, value, className = "") {
  const td = document.createElement("td");
  td.textContent = value;
  if (className) td.className = className;
  row.append(td);
  return td;
}

/** A variance in per cent, signed as the trade signs it (negative: beer lost). */
function percent(line) {
  if (line.variancePercent === null) return "—";
  const p = line.variancePercent;
  return `${p > 0 ? "+" : p < 0 ? "−" : ""}${Math.abs(p).toFixed(1)} %`;
}

function signedMl(ml) {
  return `${ml > 0 ? "+" : ml < 0 ? "−" : ""}${formatMl(Math.abs(ml))}`;
}

/**
 * A bar from the middle, as long as the variance, with the goal marked on both sides: the
 * scale reaches twice the goal, or the largest variance shown. Numbers only in the markup.
 */
function gauge(line, goal, reach) {
  const scale = 95 / reach;
  const p = Math.max(-reach, Math.min(reach, line.variancePercent ?? 0));
  const x = p < 0 ? 100 + p * scale : 100;
  const width = Math.max(1, Math.abs(p) * scale);
  const over = line.overGoal ? ' class="over"' : "";
  const marks = [100 - goal * scale, 100 + goal * scale]
    .map((g) => `<line class="goal" x1="${g.toFixed(1)}" y1="0" x2="${g.toFixed(1)}" y2="16"></line>`)
    .join("");
  return `<svg viewBox="0 0 200 16" preserveAspectRatio="none" aria-hidden="true"><line class="axis" x1="100" y1="0" x2="100" y2="16"></line><rect${over} x="${x.toFixed(1)}" y="3" width="${width.toFixed(1)}" height="10"></rect>${marks}</svg>`;
}

function drawLines(tbody, empty, lines, goal) {
  const reach = Math.max(goal * 2, ...lines.map((l) => Math.abs(l.variancePercent ?? 0)));
  tbody.replaceChildren(
    ...lines.map((line) => {
      const tr = document.createElement("tr");
      const name = line.beverage ?? "No keg";
      tr.dataset.beverage = name;
      if (line.overGoal) tr.classList.add("over-goal");
      cell(tr, name);
      cell(tr, formatMl(line.pouredMl), "num");
      cell(tr, formatMl(line.soldMl), "num");
      cell(tr, percent(line), line.overGoal ? "num over" : "num");
      cell(tr, "", "gauge").innerHTML = gauge(line, goal, reach);
      return tr;
    }),
  );
  empty.hidden = lines.length > 0;
}

/** An hour bucket's name: its day and hour on the bar's clock, from its RFC 3339 start. */
function hourName(bucket) {
  const [date, time] = (bucket.hour ?? "").split("T");
  return `${date ?? bucket.date} ${(time ?? "").slice(0, 5)}`;
}

function drawHours(doc) {
  const worst = doc.buckets
    .flatMap((bucket) => bucket.groups.filter((g) => g.overGoal && g.varianceMl < 0).map((g) => ({ bucket, g })))
    .sort((a, b) => a.g.varianceMl - b.g.varianceMl)
    .slice(0, HOURS_SHOWN);
  $("variance-hours").replaceChildren(
    ...worst.map(({ bucket, g }) => {
      const li = document.createElement("li");
      li.dataset.hour = bucket.hour ?? "";
      li.textContent = `${hourName(bucket)} · ${g.beverage ?? "No keg"} · ${signedMl(g.varianceMl)} (${percent(g)})`;
      return li;
    }),
  );
  $("no-variance-hours").hidden = worst.length > 0;
}

function drawUnmapped(items) {
  $("variance-unmapped").replaceChildren(
    ...items.map((item) => {
      const tr = document.createElement("tr");
      tr.dataset.item = item.item;
      cell(tr, item.item);
      cell(tr, String(item.sold), "num");
      cell(tr, item.suggestedBeverage ?? "");
      return tr;
    }),
  );
  $("no-variance-unmapped").hidden = items.length > 0;
}

/** Shows the Variance view and keeps it fresh; `api` and `scoped` are the page's. */
export async function startVariance(api, scoped, token) {
  clearInterval(refresh);
  const load = async () => {
    const week = await api(scoped("/api/variance?bucket=day&by=beverage"));
    const today = week.to;
    const [day, hours, unmapped] = await Promise.all([
      api(scoped(`/api/variance?from=${today}&to=${today}&bucket=day&by=beverage`)),
      api(scoped("/api/variance?bucket=hour&by=beverage")),
      api(scoped("/api/sales/items?mapped=false")),
    ]);
    const goal = week.goalPercent;
    $("variance-goal").textContent = `Goal: within ${goal} % of what was poured. Negative is beer poured and never sold; positive, beer sold that no meter saw.`;
    drawLines($("variance-today"), $("no-variance-today"), day.total, goal);
    drawLines($("variance-week"), $("no-variance-week"), week.total, goal);
    drawHours(hours);
    drawUnmapped(unmapped);
    $("variance-today-range").textContent = today;
    $("variance-week-range").textContent = `${week.from} to ${week.to}`;
    const place = week.venue ? `${week.venue}-` : "";
    const path = scoped(`/api/variance?from=${week.from}&to=${week.to}&bucket=day&by=beverage&format=csv`);
    csvLink("csv-variance", path, `${place}variance-${week.from}-to-${week.to}.csv`, token, "variance-error");
    $("variance-error").textContent = "";
  };
  await load();
  $("variance").hidden = false;
  refresh = setInterval(() => load().catch((e) => ($("variance-error").textContent = `Not refreshed: ${e.message}`)), REFRESH_MS);
}
