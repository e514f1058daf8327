// How the operations page keeps up with a steady stream of pours: frames drawn per
// second, the longest task on its main thread, and how long after the server answered
// 201 each pour's row is in the page. Not a test: a measurement for BENCHMARKS.md.
//
//   node bench.mjs RATE SECONDS        (ALTAIR_SERVER_BIN names the server binary)
//
// scripts/page-bench.sh runs it with the server and the browser pinned to separate cores.

import { chromium } from "playwright-core";
import { spawn } from "node:child_process";

const rate = Number(process.argv[2] || 100);
const seconds = Number(process.argv[3] || 20);
const serverArgs = [process.env.ALTAIR_SERVER_BIN, "--ephemeral", "--bind", "127.0.0.1:0", "--rate-limit", "0", "--request-log", "errors"];
// The server on a core of its own, when asked (the browser and this script share the other).
const cpu = process.env.ALTAIR_SERVER_CPU;
const server = cpu
  ? spawn("taskset", ["-c", cpu, ...serverArgs], { stdio: ["ignore", "ignore", "pipe"] })
  : spawn(serverArgs[0], serverArgs.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
process.on("exit", () => server.kill("SIGKILL"));
const addr = await new Promise((resolve, reject) => {
  let text = "";
  server.stderr.on("data", (chunk) => {
    text += chunk;
    const found = /listening on (\S+?);/.exec(text);
    if (found) resolve(found[1]);
  });
  server.once("exit", () => reject(new Error(text)));
});
const base = `http://${addr}`;
const post = (path, body) =>
  fetch(base + path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }).then((r) => r.json());
for (let tap = 1; tap <= 8; tap++) await post("/api/kegs", { tapId: tap, beverage: `Beer ${tap}`, size: "half-barrel" });

const browser = await chromium.launch({
  executablePath: process.env.ALTAIR_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
await page.goto(`${base}/`);
await page.waitForSelector('#connection[data-state="live"]');
await page.evaluate(() => {
  window.bench = { frames: 0, longest: 0, shown: new Map() };
  const frame = () => {
    window.bench.frames += 1;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.bench.longest = Math.max(window.bench.longest, e.duration);
  }).observe({ type: "longtask" });
  new MutationObserver((changes) => {
    const now = Date.now();
    for (const change of changes) for (const node of change.addedNodes) if (node.dataset?.id) window.bench.shown.set(Number(node.dataset.id), now);
  }).observe(document.getElementById("feed"), { childList: true });
});

// Pours at a steady rate from 8 taps (every one a different tap in turn).
const acked = new Map();
const started = Date.now();
let sent = 0;
const inflight = [];
while (Date.now() - started < seconds * 1000) {
  const due = Math.floor(((Date.now() - started) / 1000) * rate);
  while (sent < due) {
    const n = sent++;
    inflight.push(post("/api/beers", { tapId: (n % 8) + 1, volume: 284 + (n % 3) * 284 }).then((r) => acked.set(r.beer.id, Date.now())));
  }
  await new Promise((r) => setTimeout(r, 5));
}
await Promise.all(inflight);
await new Promise((r) => setTimeout(r, 1000));
const elapsed = (Date.now() - started) / 1000;
const { frames, longest, shown } = await page.evaluate(() => ({ ...window.bench, shown: [...window.bench.shown] }));
const shownAt = new Map(shown);
const delays = [...acked].map(([id, at]) => (shownAt.has(id) ? Math.max(0, shownAt.get(id) - at) : Infinity)).sort((a, b) => a - b);
const pct = (p) => delays[Math.min(delays.length - 1, Math.floor((p / 100) * delays.length))];
console.log(JSON.stringify({
  pours: acked.size,
  poursPerSecond: Number((acked.size / seconds).toFixed(1)),
  framesPerSecond: Number((frames / elapsed).toFixed(1)),
  longestTaskMs: Math.round(longest),
  shownAfterMs: { p50: pct(50), p99: pct(99), max: delays[delays.length - 1] },
  missing: delays.filter((d) => d === Infinity).length,
}));
await browser.close();
server.kill("SIGKILL");
