// The chain view at `/` on a server with several venues, and each bar's page at
// `/venues/{id}/`, in Debian's Chromium against a real server.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { accessibilityViolations, api, assertClean, launch, openPage, screenshot, startServer, tempDir } from "./harness.mjs";

const LIVE_MS = 1000;
const card = (venue) => `li.venue-card[data-venue="${venue}"]`;

async function venue(server, body, token) {
  const { status, body: answer } = await api(server, "POST", "/api/venues", body, token);
  assert.equal(status, 201, JSON.stringify(answer));
}

async function pourAt(server, venueId, tapId, volume, token) {
  const { status, body } = await api(server, "POST", `/api/venues/${venueId}/beers`, { tapId, volume }, token);
  assert.equal(status, 201, JSON.stringify(body));
  return body.beer;
}

test("the chain view: a card per bar, a pour moves only its bar's card, and the card opens the bar's page", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  await venue(server, { id: "dock", name: "Dock Street", timezone: "America/New_York" });
  await venue(server, { id: "harbour", name: "Harbour", timezone: "Pacific/Auckland", openingHours: "00:00-00:00" });
  const keg = await api(server, "POST", "/api/kegs", { venue: "harbour", tapId: 1, beverage: "Stout", sizeMl: 1000 });
  assert.equal(keg.status, 201);
  await pourAt(server, "harbour", 1, 900); // Harbour's keg is low: an alert, its card first
  await pourAt(server, "main", 2, 500);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);

  await page.waitForSelector(`${card("dock")} .venue-today:text("Today: 0 pours")`);
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await page.locator("li.venue-card").count(), 3);
  assert.match(await page.textContent(`${card("harbour")} .venue-status`), /^\d\d:\d\d · open$/);
  assert.match(await page.textContent(`${card("harbour")} .venue-kegs`), /1 low/);
  assert.match(await page.textContent(`${card("harbour")} .venue-alerts`), /1 open alert/);
  assert.match(await page.textContent(`${card("main")} .venue-today`), /Today: 1 pour, 500 ml/);
  const first = await page.$eval("#venues li", (li) => li.dataset.venue);
  assert.equal(first, "harbour", "the bar with a problem comes first");

  // A pour at the Dock: its card moves within a second; the others do not.
  const before = { main: await page.textContent(card("main")), harbour: await page.textContent(`${card("harbour")} .venue-today`) };
  await pourAt(server, "dock", 3, 568);
  await page.waitForSelector(`${card("dock")} .venue-today:text("Today: 1 pour, 568 ml")`, { timeout: LIVE_MS });
  await page.waitForFunction(() => /^Last pour \d+ s ago$/.test(document.querySelector('li.venue-card[data-venue="dock"] .venue-last').textContent), null, { timeout: LIVE_MS });
  assert.equal(await page.textContent(`${card("harbour")} .venue-today`), before.harbour);
  assert.match(await page.textContent(`${card("main")} .venue-today`), /Today: 1 pour, 500 ml/);
  assert.deepEqual(await accessibilityViolations(page), []);
  await screenshot(page, "chain.png");

  // The card's link opens the bar's page: its taps and pours, not the others'.
  await page.click(`${card("dock")} h2 a`);
  await page.waitForURL(`${server.url}/venues/dock/`);
  await page.waitForSelector('li.tap[data-tap="3"]');
  await page.waitForSelector("#feed tr");
  assert.equal(await page.locator("#feed tr").count(), 1, "only the Dock's pour");
  assert.equal(await page.locator('li.tap[data-tap="2"]').count(), 0, "main's tap 2 is not the Dock's");
  assert.equal(await page.textContent("#venue-name"), "Dock Street");
  assert.equal(await page.getAttribute("#view-link", "href"), "/venues/dock/?view=wall");
  await page.waitForSelector('#connection[data-state="live"]');
  // Live there too: a Dock pour shows, a main pour does not.
  await pourAt(server, "main", 2, 250);
  const dock = await pourAt(server, "dock", 4, 284);
  await page.waitForSelector(`#feed tr[data-id="${dock.id}"]`, { timeout: LIVE_MS });
  assert.equal(await page.locator("#feed tr").count(), 2);
  assertClean(assert, seen);
});

test("a reader token of one bar opens that bar's page at /, and sees nothing of the others", async (t) => {
  const dir = tempDir(t, "chain-tokens");
  const tokens = {};
  const entries = [];
  for (const [name, role, venueId] of [["ops", "admin", null], ["dock-reader", "reader", "dock"]]) {
    const token = randomBytes(32).toString("base64url");
    tokens[name] = token;
    const sha256 = createHash("sha256").update(token).digest("hex");
    entries.push(`[[token]]\nname = "${name}"\nrole = "${role}"\n${venueId ? `venue = "${venueId}"\n` : ""}sha256 = "${sha256}"\n`);
  }
  const file = join(dir, "tokens.toml");
  writeFileSync(file, entries.join("\n"));
  const server = await startServer(t, ["--ephemeral", "--tokens", file]);
  await venue(server, { id: "dock", name: "Dock Street", timezone: "UTC" }, tokens.ops);
  const mine = await pourAt(server, "dock", 1, 500, tokens.ops);
  const theirs = await pourAt(server, "main", 1, 500, tokens.ops);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.fill("#token", tokens["dock-reader"]);
  await page.click('#token-form button[type="submit"]');
  await page.waitForSelector(`#feed tr[data-id="${mine.id}"]`);
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await page.locator(`#feed tr[data-id="${theirs.id}"]`).count(), 0);
  assert.equal(await page.textContent("#venue-name"), "Dock Street");
  assert.ok(await page.$eval("#chain-link", (a) => a.hidden), "no chain to go back to");
  assert.ok(await page.$eval("#chain", (main) => main.hidden));
  // The page asked without a token first, as every page does.
  assertClean(assert, seen, [/Failed to load resource: the server responded with a status of 401/]);
});
