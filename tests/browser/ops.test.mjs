// The operations page at `/`, in Debian's Chromium, against a real server: what a bar's
// staff would see.

import assert from "node:assert/strict";
import { test } from "node:test";

import { accessibilityViolations, api, assertClean, launch, openPage, pour, screenshot, startServer, tempDir, tokensFile } from "./harness.mjs";

/** Within a second of the tap finishing it: the promise. */
const LIVE_MS = 1000;

const card = (tapId) => `li.tap[data-tap="${tapId}"]`;
const level = async (page, tapId) => Number(await page.getAttribute(`${card(tapId)} .level`, "aria-valuenow"));
const feedIds = (page) => page.$$eval("#feed tr", (rows) => rows.map((r) => Number(r.dataset.id)));

async function tapKeg(server, body, token) {
  const { status, body: answer } = await api(server, "POST", "/api/kegs", body, token);
  assert.equal(status, 201, JSON.stringify(answer));
  return answer.keg;
}

test("pours show in the feed and on their tap within a second; levels move, alerts come", async (t) => {
  const server = await startServer(t, ["--ephemeral", "--keg-low-percent", "15"]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 });
  await tapKeg(server, { tapId: 2, beverage: "Stout", size: "corny" });
  const early = await pour(assert, server, 2, 568);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);

  // The snapshot: both taps, the pour before the page opened.
  await page.waitForSelector(`${card(1)} .beverage:text("Helles")`);
  await page.waitForSelector(`#feed tr[data-id="${early.id}"]`);
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await level(page, 1), 100);

  // A pour arrives: in the feed and on its tap's card within a second.
  const first = await pour(assert, server, 1, 500);
  const shown = Date.now();
  await page.waitForSelector(`#feed tr[data-id="${first.id}"]`, { timeout: LIVE_MS });
  await page.waitForFunction(() => document.querySelector('li.tap[data-tap="1"] .level').getAttribute("aria-valuenow") === "90", null, { timeout: LIVE_MS });
  assert.ok(Date.now() - shown <= LIVE_MS);
  const row = await page.textContent(`#feed tr[data-id="${first.id}"]`);
  assert.match(row, /500 ml/);
  assert.match(row, /pint/);
  assert.match(await page.textContent(card(1)), /Last pour \d+ s ago/);

  // Down to 10 %: the bar moves, the card says LOW, and the server's low-keg alert shows.
  for (const volume of [1000, 1000, 1000, 1000]) await pour(assert, server, 1, volume);
  await page.waitForFunction(() => document.querySelector('li.tap[data-tap="1"] .level').getAttribute("aria-valuenow") === "10", null, { timeout: LIVE_MS });
  await page.waitForSelector('#alerts li[data-kind="kegLow"]:has-text("Helles on tap 1 is low")', { timeout: LIVE_MS });
  assert.ok(await page.$eval(`${card(1)} .level`, (el) => el.classList.contains("low")));
  assert.match(await page.textContent(`${card(1)} .state`), /LOW/);

  // A flagged pour wears its badge, and is counted by its tap's alert: one row, not one
  // a pour.
  const tiny = await pour(assert, server, 2, 5);
  await page.waitForSelector(`#feed tr[data-id="${tiny.id}"] .badge.tiny`, { timeout: LIVE_MS });
  await page.waitForSelector('#alerts li[data-kind="flaggedPours"]:has-text("Tap 2: 1 tiny pour")', { timeout: LIVE_MS });
  await pour(assert, server, 2, 6);
  await page.waitForSelector('#alerts li[data-kind="flaggedPours"]:has-text("Tap 2: 2 tiny pours")', { timeout: LIVE_MS });
  assert.equal(await page.locator('#alerts li:has-text("tiny")').count(), 1);

  // Today and the hour count every pour; the feed has each once, newest first.
  await page.waitForFunction(() => document.getElementById("today-total").textContent === "8 pours");
  await page.waitForFunction(() => /8 in the last hour/.test(document.getElementById("rate-summary").textContent), null, { timeout: LIVE_MS });
  const ids = await feedIds(page);
  assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
  assert.equal(new Set(ids).size, 8);

  await screenshot(page, "ops.png");
  assertClean(assert, seen);
});

test("a tap's card shows its sensors' latest temperatures and their age; one too hot says so in words", async (t) => {
  const server = await startServer(t, ["--ephemeral", "--warm-for", "1"]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 });
  await tapKeg(server, { tapId: 2, beverage: "Stout", size: "corny" });
  for (const [tapId, sensor, location, celsius] of [[1, "keg 1", "keg", 3.1], [2, "tower", "tower", 12.4]]) {
    const { status, body } = await api(server, "POST", "/api/temperatures", { tapId, sensor, location, celsius });
    assert.equal(status, 201, JSON.stringify(body));
  }
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.waitForSelector(`${card(2)} .temp.hot`);
  assert.match(await page.textContent(`${card(1)} .temp`), /^Keg 3\.1 °C, \d+ s ago$/);
  assert.ok(await page.$eval(`${card(1)} .temp`, (el) => el.classList.contains("fine")));
  assert.match(await page.textContent(`${card(2)} .temp`), /^Tower 12\.4 °C, \d+ s ago ✖ too hot$/);
  // The server's alert comes too, critical.
  await page.waitForSelector('#alerts li[data-kind="tooHot"]:has-text("Tap 2 is too hot")');
  assertClean(assert, seen);
});

test("low and empty kegs say so in words on the card and the wall; a reload shows the server's open alerts; an admin acknowledges one", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  const beverages = ["Helles", "Pils", "Stout", "Cider", "Porter", "Weizen"];
  for (const [i, beverage] of beverages.entries()) await tapKeg(server, { tapId: i + 1, beverage, sizeMl: 1000 });
  await pour(assert, server, 3, 900); // Stout: 10 % left, low
  await pour(assert, server, 4, 1000); // Cider: empty
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.waitForSelector('#connection[data-state="live"]');
  // Opened before the page: they come from the server, not from what the page heard.
  await page.waitForSelector('#alerts li[data-kind="kegEmpty"]:has-text("Cider on tap 4 is empty")');
  await page.waitForSelector('#alerts li[data-kind="kegLow"]:has-text("Stout on tap 3 is low")');
  assert.match(await page.textContent(`${card(4)} .state`), /EMPTY/);
  assert.match(await page.textContent(`${card(3)} .state`), /LOW/);
  assert.match(await page.textContent(`${card(1)} .state`), /On tap/);
  assert.ok(await page.$eval(card(4), (el) => el.classList.contains("is-empty")));
  // The loudest first, and the panel above the fold at 1440×900 with six taps.
  assert.equal(await page.getAttribute("#alerts li:first-child", "data-kind"), "kegEmpty");
  const panel = await page.$eval(".alerts-section", (el) => el.getBoundingClientRect().bottom);
  assert.ok(panel <= 900, `the alerts end at ${panel}px`);
  await screenshot(page, "ops-alerts.png");

  // Acknowledged from the page (an open server: anyone is admin); a reload keeps it so.
  await page.getByRole("button", { name: "Acknowledge: Cider on tap 4 is empty" }).click();
  await page.waitForSelector('#alerts li.acknowledged[data-kind="kegEmpty"]', { timeout: LIVE_MS });
  const { body } = await api(server, "GET", "/api/alerts?state=acknowledged");
  assert.deepEqual(body.alerts.map((a) => a.kind), ["kegEmpty"]);
  await page.reload();
  await page.waitForSelector('#alerts li.acknowledged[data-kind="kegEmpty"]');
  await page.waitForSelector('#alerts li.open[data-kind="kegLow"]');

  // A new keg on tap 4: its alert resolves and leaves the panel.
  await tapKeg(server, { tapId: 4, beverage: "Cider", sizeMl: 1000 });
  await page.waitForSelector('#alerts li[data-kind="kegEmpty"]', { state: "detached", timeout: LIVE_MS });

  // The wall says it too, in words.
  const wall = await openPage(t, browser, `${server.url}/?view=wall`, { width: 1920, height: 1080 });
  await wall.page.waitForSelector(`${card(3)} .state:text("LOW")`);
  await pour(assert, server, 5, 1000);
  await wall.page.waitForSelector(`${card(5)} .state:text("EMPTY")`, { timeout: LIVE_MS });
  await screenshot(wall.page, "ops-wall-empty.png");
  assertClean(assert, seen);
  assertClean(assert, wall.seen);
});

test("a kiosk remembers its token on this screen across a browser restart, and forgets it in one click", async (t) => {
  const dir = tempDir(t, "kiosk");
  const { file, tokens } = tokensFile(dir);
  const server = await startServer(t, ["--ephemeral", "--tokens", file]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 }, tokens.admin);
  const browser = await launch(t);
  const first = await openPage(t, browser, `${server.url}/?view=wall`);
  await first.page.getByLabel("Reader token").fill(tokens.reader);
  await first.page.getByLabel(/Remember on this screen/).check();
  await first.page.getByRole("button", { name: "Open" }).click();
  await first.page.waitForSelector('#connection[data-state="live"]');
  const storage = await first.context.storageState();
  await first.context.close();

  // The browser comes back (a new context on the same storage): no prompt.
  const again = await openPage(t, browser, `${server.url}/?view=wall`, { width: 1440, height: 900 }, storage);
  await again.page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await again.page.isVisible("#token-form"), false);
  await again.page.waitForSelector(`${card(1)} .beverage:text("Helles")`);
  await again.page.getByRole("button", { name: "Forget this screen's token" }).click();
  await again.page.waitForSelector("#token-form", { state: "visible" });
  assert.equal(await again.page.evaluate(() => localStorage.getItem("altair-token")), null);
  // Forgotten, the page asks the server without a token: refused, as it should be.
  assertClean(assert, again.seen, [/Failed to load resource: the server responded with a status of 401/]);
});

test("the wall view shows levels only, large", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", size: "euro-30" });
  await tapKeg(server, { tapId: 2, beverage: "Pils", size: "euro-50" });
  await tapKeg(server, { tapId: 3, beverage: "Stout", size: "corny", remainingMl: 4000 });
  await api(server, "PATCH", "/api/taps/3", { name: "Back bar" });
  for (const [tap, volume] of [[1, 568], [2, 568], [2, 284]]) await pour(assert, server, tap, volume);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/?view=wall`, { width: 1920, height: 1080 });
  await page.waitForSelector(`${card(3)} h3:text("Back bar")`);
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await page.isVisible("#feed"), false, "no feed on the wall");
  assert.equal(await page.isVisible("#alerts"), false);
  assert.equal(await level(page, 3), 21);
  const size = await page.$eval(`${card(1)} .beverage`, (el) => parseFloat(getComputedStyle(el).fontSize));
  assert.ok(size >= 36, `readable across a bar (${size}px)`);
  // Still live.
  const next = await pour(assert, server, 3, 500);
  await page.waitForFunction(() => document.querySelector('li.tap[data-tap="3"] .level').getAttribute("aria-valuenow") === "18", null, { timeout: LIVE_MS });
  assert.ok(next.id > 0);
  await screenshot(page, "ops-wall.png");
  assertClean(assert, seen);
});

test("a restarted server: the page says it is reconnecting, then shows every pour once", async (t) => {
  const data = tempDir(t, "restart");
  const args = ["--data-dir", data];
  let server = await startServer(t, args);
  const port = server.port;
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 10000 });
  const before = [];
  for (let i = 0; i < 3; i++) before.push((await pour(assert, server, 1, 500)).id);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.waitForSelector(`#feed tr[data-id="${before[2]}"]`);
  await page.waitForSelector('#connection[data-state="live"]');

  await server.stop("SIGKILL");
  // Three tries in, the next one is more than 1.6 s away: time to start the server and
  // pour while the page is still away.
  await page.waitForSelector('#connection[data-state="reconnecting"]:text("try 3")', { timeout: 10000 });
  server = await startServer(t, args, port);
  const meanwhile = [];
  for (let i = 0; i < 5; i++) meanwhile.push((await pour(assert, server, 1, 250)).id);
  assert.equal(await page.getAttribute("#connection", "data-state"), "reconnecting", "poured while the page was away");

  await page.waitForSelector('#connection[data-state="live"]', { timeout: 15000 });
  await page.waitForSelector(`#feed tr[data-id="${meanwhile[4]}"]`, { timeout: LIVE_MS });
  const ids = await feedIds(page);
  assert.deepEqual(ids, [...meanwhile, ...before].sort((a, b) => b - a), "every pour, once, newest first");
  // The level agrees with the server's.
  const { body } = await api(server, "GET", "/api/kegs?status=current");
  assert.equal(body.kegs[0].remainingMl, 10000 - 3 * 500 - 5 * 250);
  const percent = Math.round(body.kegs[0].percent);
  await page.waitForFunction((p) => document.querySelector('li.tap[data-tap="1"] .level').getAttribute("aria-valuenow") === String(p), percent, { timeout: LIVE_MS });
  // While the server was down, its socket could not be reached: Chromium says so.
  assertClean(assert, seen, [/WebSocket connection to 'ws:\/\/127\.0\.0\.1:\d+\/sockets\/beers\?[^']*' failed/]);
});

test("with tokens, the page asks for one: a wrong token is told so, a reader's opens it", async (t) => {
  const dir = tempDir(t, "tokens");
  const { file, tokens } = tokensFile(dir);
  const server = await startServer(t, ["--ephemeral", "--tokens", file]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 }, tokens.admin);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);

  await page.waitForSelector("#token-form", { state: "visible" });
  assert.equal(await page.isVisible("#main"), false);
  await page.getByLabel("Reader token").fill("not-a-token");
  await page.getByRole("button", { name: "Open" }).click();
  await page.waitForSelector('#token-error:text("was not accepted")');
  assert.equal(await page.isVisible("#main"), false);

  // A tap's token may not read: said so, not a blank page.
  await page.getByLabel("Reader token").fill(tokens.tap);
  await page.getByRole("button", { name: "Open" }).click();
  await page.waitForSelector('#token-error:text("may not read")');

  await page.getByLabel("Reader token").fill(tokens.reader);
  await page.getByRole("button", { name: "Open" }).click();
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForSelector(`${card(1)} .beverage:text("Helles")`);
  const live = await pour(assert, server, 1, 500, tokens.tap);
  await page.waitForSelector(`#feed tr[data-id="${live.id}"]`, { timeout: LIVE_MS });
  // The token stays in the tab: a reload asks nothing.
  await page.reload();
  await page.waitForSelector('#connection[data-state="live"]');
  assert.equal(await page.isVisible("#token-form"), false);
  assertClean(assert, seen, [/Failed to load resource: the server responded with a status of 40[13]/]);
});

test("a rush of pours: the page keeps up, its feed capped at 100 rows", async (t) => {
  const server = await startServer(t, ["--ephemeral", "--rate-limit", "0"]);
  for (let tap = 1; tap <= 4; tap++) await tapKeg(server, { tapId: tap, beverage: `Beer ${tap}`, size: "half-barrel" });
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.waitForSelector('#connection[data-state="live"]');
  await page.evaluate(() => {
    window.longestTask = 0;
    new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) window.longestTask = Math.max(window.longestTask, entry.duration);
    }).observe({ type: "longtask" });
  });
  // 1,000 pours from 4 taps, 20 at a time: several hundred a second here.
  const total = 1000;
  let next = 0;
  let last = 0;
  const started = Date.now();
  await Promise.all(Array.from({ length: 20 }, async () => {
    while (next < total) {
      const n = next++;
      const stored = await pour(assert, server, (n % 4) + 1, 284);
      last = Math.max(last, stored.id);
    }
  }));
  const rate = total / ((Date.now() - started) / 1000);
  await page.waitForSelector(`#feed tr[data-id="${last}"]`, { timeout: LIVE_MS });
  await page.waitForFunction((n) => document.getElementById("today-total").textContent === `${n} pours`, total, { timeout: LIVE_MS });
  const ids = await feedIds(page);
  assert.equal(ids.length, 100);
  assert.equal(ids[0], last);
  assert.deepEqual(ids, Array.from({ length: 100 }, (_, i) => last - i));
  const longest = await page.evaluate(() => window.longestTask);
  t.diagnostic(`${rate.toFixed(0)} pours/s; the page's longest task: ${longest.toFixed(0)} ms`);
  assertClean(assert, seen);
});

test("the page fits a phone", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 });
  await pour(assert, server, 1, 500);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`, { width: 390, height: 844 });
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForSelector(`${card(1)} .beverage:text("Helles")`);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling (${overflow}px too wide)`);
  // An empty keg: its alert is first on a phone's screen.
  await tapKeg(server, { tapId: 2, beverage: "Cider", sizeMl: 500 });
  await pour(assert, server, 2, 500);
  await page.waitForSelector('#alerts li[data-kind="kegEmpty"]', { timeout: LIVE_MS });
  const box = await page.$eval(".alerts-section", (el) => el.getBoundingClientRect().toJSON());
  assert.ok(box.top < 844 && box.right <= 390, `alerts on screen: ${JSON.stringify(box)}`);
  assert.equal(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth), 0);
  assertClean(assert, seen);
});

test("keyboard and screen reader basics: no WCAG 2 A or AA violation, on the page, the wall and the token form", async (t) => {
  const server = await startServer(t, ["--ephemeral"]);
  await tapKeg(server, { tapId: 1, beverage: "Helles", sizeMl: 5000 });
  await tapKeg(server, { tapId: 2, beverage: "Stout", size: "corny", remainingMl: 2000 });
  await pour(assert, server, 1, 500);
  await pour(assert, server, 2, 5);
  const browser = await launch(t);
  const { page, seen } = await openPage(t, browser, `${server.url}/`);
  await page.waitForSelector('#connection[data-state="live"]');
  await page.waitForSelector("#alerts li");
  assert.deepEqual(await accessibilityViolations(page), []);
  // Every level bar is a meter with a name that says what is left.
  const label = await page.getAttribute(`${card(1)} .level`, "aria-label");
  assert.match(label, /Helles: 90 % left/);
  // The keyboard reaches the links.
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "view-link");

  const wall = await openPage(t, browser, `${server.url}/?view=wall`);
  await wall.page.waitForSelector('#connection[data-state="live"]');
  assert.deepEqual(await accessibilityViolations(wall.page), []);

  const dir = tempDir(t, "a11y-tokens");
  const guarded = await startServer(t, ["--ephemeral", "--tokens", tokensFile(dir).file]);
  const form = await openPage(t, browser, `${guarded.url}/`);
  await form.page.waitForSelector("#token-form", { state: "visible" });
  assert.deepEqual(await accessibilityViolations(form.page), []);
  assertClean(assert, seen);
  assertClean(assert, wall.seen);
  assertClean(assert, form.seen, [/Failed to load resource: the server responded with a status of 401/]);
});
