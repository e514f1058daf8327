// The Variance view (`?view=variance`) in Debian's Chromium against a real server: today
// and the week per beverage against the goal, the worst hours, the items to map, and the
// CSV behind a reader's token.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { accessibilityViolations, api, assertClean, launch, openPage, screenshot, startServer, tempDir, tokensFile } from "./harness.mjs";

const MINUTE_MS = 60000;

const row = (table, beverage) => `#${table} tr[data-beverage="${beverage}"]`;
const cells = (page, selector) => page.$$eval(`${selector} td`, (tds) => tds.map((td) => td.textContent));

test("the Variance view: Helles 25 % short today, Pils exact, the worst hour and the items to map", async (t) => {
  const { file, tokens } = tokensFile(tempDir(t, "variance"));
  // The bar's day starts at midnight in UTC: what was poured minutes ago is today's.
  const server = await startServer(t, ["--ephemeral", "--tokens", file, "--business-day-starts", "00:00"]);
  const admin = tokens.admin;
  for (const [tapId, beverage] of [[1, "Helles"], [2, "Pils"]]) {
    const keg = await api(server, "POST", "/api/kegs", { tapId, beverage, sizeMl: 50000 }, admin);
    assert.equal(keg.status, 201, JSON.stringify(keg.body));
  }
  // Every pour and sale within one minute, the last whole one (never before today's
  // midnight): one hour, one business day, whenever the test runs.
  const midnight = new Date(new Date().toISOString().slice(0, 10)).getTime();
  const base = Math.max(midnight, Math.floor(Date.now() / MINUTE_MS) * MINUTE_MS - MINUTE_MS);
  const at = (seconds) => new Date(base + seconds * 1000).toISOString();
  for (const [tapId, count] of [[1, 4], [2, 2]]) {
    for (let i = 0; i < count; i++) {
      const { status, body } = await api(server, "POST", "/api/beers", { tapId, volume: 500, timestamp: at(tapId + i * 3) }, admin);
      assert.equal(status, 201, JSON.stringify(body));
    }
  }
  const sold = `time,item,quantity\n${at(20)},Helles Pint,3\n${at(20)},Pils Pint,2\n${at(20)},Nachos,1\n`;
  const imported = await fetch(`${server.url}/api/sales?format=generic`, {
    method: "POST",
    headers: { "content-type": "text/csv", authorization: `Bearer ${admin}` },
    body: sold,
  });
  assert.equal(imported.status, 200, await imported.text());
  for (const item of ["Helles Pint", "Pils Pint"]) {
    const mapped = await api(server, "PUT", `/api/sales/items/${encodeURIComponent(item)}`, { beverage: item.split(" ")[0], ml: 500 }, admin);
    assert.equal(mapped.status, 200, JSON.stringify(mapped.body));
  }

  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.fill("#token", tokens.reader);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector('#connection[data-state="live"]');
  // From the live page, its Variance link.
  await page.click("#variance-link");
  await page.waitForURL(`${server.url}/?view=variance`);
  await page.waitForSelector(row("variance-today", "Helles"));

  assert.deepEqual((await cells(page, row("variance-today", "Helles"))).slice(0, 4), ["Helles", "2.00 L", "1.50 L", "−25.0 %"]);
  assert.deepEqual((await cells(page, row("variance-today", "Pils"))).slice(0, 4), ["Pils", "1.00 L", "1.00 L", "0.0 %"]);
  // Over the goal is marked, in the row and its bar; the goal is drawn on both sides.
  assert.equal(await page.getAttribute(row("variance-today", "Helles"), "class"), "over-goal");
  assert.equal(await page.getAttribute(row("variance-today", "Pils"), "class"), null);
  assert.equal(await page.locator(`${row("variance-today", "Helles")} rect.over`).count(), 1);
  assert.equal(await page.locator(`${row("variance-today", "Pils")} line.goal`).count(), 2);
  assert.match(await page.textContent("#variance-goal"), /^Goal: within 2 % of what was poured/);
  assert.deepEqual((await cells(page, row("variance-week", "Helles"))).slice(0, 4), ["Helles", "2.00 L", "1.50 L", "−25.0 %"]);
  // The worst hour: Helles, 500 ml short.
  const hours = await page.$$eval("#variance-hours li", (items) => items.map((li) => li.textContent));
  assert.equal(hours.length, 1, hours.join("\n"));
  assert.match(hours[0], / · Helles · −500 ml \(−25\.0 %\)$/);
  // Nachos sold, not mapped.
  assert.deepEqual(await cells(page, '#variance-unmapped tr[data-item="Nachos"]'), ["Nachos", "1", ""]);
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "variance.png");

  // The week as CSV, fetched with the reader's token.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-variance")]);
  assert.match(download.suggestedFilename(), /^main-variance-\d{4}-\d\d-\d\d-to-\d{4}-\d\d-\d\d\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").split("\r\n");
  assert.equal(csv[0], "date,hour,beverage,pouredMl,soldMl,varianceMl,variancePercent,overGoal");
  assert.equal(csv.filter((line) => line.endsWith(",Helles,2000,1500,-500,-25,true")).length, 1, csv.join("\n"));
  assertClean(assert, seen, [/Failed to load resource: the server responded with a status of 401/]);
});

test("a tap's line cleaned from the page: its state, water that draws no keg, and readers refused", async (t) => {
  const { file, tokens } = tokensFile(tempDir(t, "cleaning"));
  const server = await startServer(t, ["--ephemeral", "--tokens", file]);
  const keg = await api(server, "POST", "/api/kegs", { tapId: 1, beverage: "Helles", sizeMl: 10000 }, tokens.admin);
  assert.equal(keg.status, 201, JSON.stringify(keg.body));
  const browser = await launch(t);
  const tap = '#taps li[data-tap="1"]';

  // A reader may look, not clean.
  const reader = await openPage(t, browser, `${server.url}/`);
  await reader.page.fill("#token", tokens.reader);
  await reader.page.click('#token-form button[type="submit"]');
  await reader.page.waitForSelector(`${tap} .clean`);
  await reader.page.click(`${tap} .clean`);
  await reader.page.waitForSelector(`${tap} .clean:has-text("only an admin token may clean a line")`);

  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.fill("#token", tokens.admin);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await page.textContent(`${tap} .clean`), "Clean the line");
  await page.click(`${tap} .clean`);
  await page.waitForSelector(`${tap} .state.cleaning`);
  assert.equal(await page.textContent(`${tap} .state`), "≈ Cleaning the line");
  assert.equal(await page.textContent(`${tap} .clean`), "Line clean: stop cleaning");

  // Water: flagged in the feed, and the keg stays full.
  const water = await api(server, "POST", "/api/beers", { tapId: 1, volume: 1000 }, tokens.admin);
  assert.deepEqual(water.body.beer.flags, ["cleaning"]);
  await page.waitForSelector('#feed tr .badge.cleaning');
  assert.equal(await page.textContent("#feed tr .badge.cleaning"), "line cleaning");
  assert.equal(await page.textContent(`${tap} .pct`), "100 %");

  await page.click(`${tap} .clean`);
  await page.waitForSelector(`${tap} .state.online`);
  const beer = await api(server, "POST", "/api/beers", { tapId: 1, volume: 500 }, tokens.admin);
  assert.ok(!beer.body.beer.flags.includes("cleaning"), JSON.stringify(beer.body));
  await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === "95 %", `${tap} .pct`);
  assert.deepEqual(await accessibilityViolations(page), []);
  // Each page asked without a token first, as every page does.
  assertClean(assert, seen, [/Failed to load resource: the server responded with a status of 401/]);
  assertClean(assert, reader.seen, [/Failed to load resource: the server responded with a status of (401|403)/]);
});
