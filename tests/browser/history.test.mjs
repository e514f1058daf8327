// The History view (`?view=history`) in Debian's Chromium against a real server: the
// last 7 and 30 business days by beverage, the keg history with its yield, and the CSV
// links, which carry the reader's token.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { accessibilityViolations, api, assertClean, launch, openPage, screenshot, startServer, tempDir, tokensFile } from "./harness.mjs";

const DAY_MS = 86400000;

async function pourAt(server, tapId, volume, msAgo, token) {
  const timestamp = new Date(Date.now() - msAgo).toISOString();
  const { status, body } = await api(server, "POST", "/api/beers", { tapId, volume, timestamp }, token);
  assert.equal(status, 201, JSON.stringify(body));
  return body.beer;
}

const row = (table, beverage) => `#${table} tr[data-beverage="${beverage}"]`;
const cells = (page, selector) => page.$$eval(`${selector} td`, (tds) => tds.map((td) => td.textContent));

test("the History view: 7 and 30 days by beverage, the keg history with yield, and CSV behind a token", async (t) => {
  const { file, tokens } = tokensFile(tempDir(t, "history"));
  const server = await startServer(t, ["--ephemeral", "--tokens", file]);
  const admin = tokens.admin;
  const helles = await api(server, "POST", "/api/kegs", { tapId: 1, beverage: "Helles", sizeMl: 50000 }, admin);
  assert.equal(helles.status, 201);
  const stout = await api(server, "POST", "/api/kegs", { tapId: 2, beverage: "Stout", sizeMl: 10000 }, admin);
  assert.equal(stout.status, 201);
  await pourAt(server, 1, 500, 60000, admin); // this business day, or the one before
  await pourAt(server, 1, 500, 10 * DAY_MS, admin); // in the 30 days, not the 7
  await pourAt(server, 2, 250, 3 * DAY_MS, admin);
  await pourAt(server, 3, 300, 20 * DAY_MS, admin); // no keg on tap 3
  const finished = await api(server, "POST", `/api/kegs/${stout.body.keg.id}/finish`, { leftMl: 9000 }, admin);
  assert.equal(finished.status, 200, JSON.stringify(finished.body));

  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.fill("#token", tokens.reader);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector('#connection[data-state="live"]');
  // From the live page, its History link.
  await page.click("#history-link");
  await page.waitForURL(`${server.url}/?view=history`);
  await page.waitForSelector(row("history-week", "Stout"));

  assert.deepEqual(await cells(page, row("history-week", "Helles")), ["Helles", "", "500 ml", "1", "67 %"]);
  assert.deepEqual(await cells(page, row("history-week", "Stout")), ["Stout", "", "250 ml", "1", "33 %"]);
  assert.equal(await page.locator("#history-week tr").count(), 2, "the 10- and 20-day-old pours are not this week's");
  assert.deepEqual(await cells(page, row("history-month", "Helles")), ["Helles", "", "1.00 L", "2", "65 %"]);
  assert.deepEqual(await cells(page, row("history-month", "No keg")), ["No keg", "", "300 ml", "1", "19 %"]);
  // The bars are as long as their litres: Helles's the longest, the Stout's a quarter of it.
  const widths = await page.$$eval("#history-month .bar", (bars) => bars.map((b) => b.getBoundingClientRect().width));
  assert.ok(Math.abs(widths[2] / widths[0] - 0.25) < 0.02, `bar widths ${widths}`);
  assert.match(await page.textContent("#history-days-summary"), /^1\.55 L in 30 business days; busiest /);
  assert.equal(await page.locator("#history-days rect.recent").count(), 7);

  // The Stout keg: 250 ml of 10 L poured, 9 L left, 750 ml that no meter saw.
  const keg = `#keg-history tr[data-keg="${stout.body.keg.id}"]`;
  await page.waitForSelector(keg);
  const kegCells = await cells(page, keg);
  assert.deepEqual(kegCells.slice(3), ["0.0", "250 ml", "1", "9.00 L", "750 ml", "2.5 %"]);
  assert.equal(await page.locator("#keg-history tr").count(), 1, "Helles is still on tap");
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "history.png");

  // The CSV links: fetched with the reader's token, saved under a telling name.
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv-month")]);
  assert.match(download.suggestedFilename(), /^main-by-beverage-\d{4}-\d\d-\d\d-to-\d{4}-\d\d-\d\d\.csv$/);
  const csv = readFileSync(await download.path(), "utf8").split("\r\n");
  assert.match(csv[0], /^start,end,beverage,pours,volumeMl,/);
  assert.equal(csv.filter((line) => /,Helles,1,500,/.test(line)).length, 2, csv.join("\n"));
  const [kegs] = await Promise.all([page.waitForEvent("download"), page.click("#csv-kegs")]);
  const kegCsv = readFileSync(await kegs.path(), "utf8").split("\r\n");
  assert.equal(kegCsv.filter((line) => line.includes(",Stout,")).length, 1, kegCsv.join("\n"));
  assertClean(assert, seen, [/Failed to load resource: the server responded with a status of 401/]);
});

test("the chain's History adds up every bar; a bar's History is its own", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  const dock = await api(server, "POST", "/api/venues", { id: "dock", name: "Dock Street", timezone: "America/New_York" });
  assert.equal(dock.status, 201, JSON.stringify(dock.body));
  for (const venue of ["main", "dock"]) {
    const keg = await api(server, "POST", "/api/kegs", { venue, tapId: 1, beverage: "Helles", sizeMl: 50000 });
    assert.equal(keg.status, 201);
  }
  for (const [venue, volume] of [["main", 500], ["dock", 250], ["dock", 250]]) {
    const { status } = await api(server, "POST", `/api/venues/${venue}/beers`, { tapId: 1, volume, timestamp: new Date(Date.now() - DAY_MS).toISOString() });
    assert.equal(status, 201);
  }
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/?view=history`);
  await page.waitForSelector(row("history-week", "Helles"));
  assert.deepEqual(await cells(page, row("history-week", "Helles")), ["Helles", "", "1.00 L", "3", "100 %"]);
  assert.equal(await page.getAttribute("#history-link", "href"), "/");

  await page.goto(`${server.url}/venues/dock/?view=history`);
  await page.waitForSelector(row("history-week", "Helles"));
  assert.deepEqual(await cells(page, row("history-week", "Helles")), ["Helles", "", "500 ml", "2", "100 %"]);
  assert.equal(await page.getAttribute("#history-link", "href"), "/venues/dock/");
  assert.equal(await page.textContent("#venue-name"), "Dock Street");
  assertClean(assert, seen);
});
