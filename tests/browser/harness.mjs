// What the browser tests share: a real server binary on a free port, Debian's Chromium
// driven by playwright-core, and the checks every test ends with (no request left
// localhost, no console error). Every process started here is killed when its test ends.

import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const SERVER = process.env.ALTAIR_SERVER_BIN;
const CHROMIUM = process.env.ALTAIR_CHROMIUM || "/usr/bin/chromium";
export const SCREENSHOTS = resolve(process.env.ALTAIR_SCREENSHOTS || "../../target/screenshots");

if (!SERVER) throw new Error("ALTAIR_SERVER_BIN must name the altair-server binary (cargo test sets it)");

const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** A folder of the test's own, removed when it ends. */
export function tempDir(t, name) {
  const dir = mkdtempSync(join(tmpdir(), `altair-browser-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts the server with `args` (on 127.0.0.1, port 0 unless `port` is given) and resolves
 * once it listens: `{ addr, url, log, stop(signal) }`.
 */
export function startServer(t, args, port = 0) {
  const child = spawn(SERVER, ["--bind", `127.0.0.1:${port}`, ...args], {
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(child);
  const log = [];
  const exited = new Promise((done) => child.once("exit", done));
  const stop = async (signal = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
    running.delete(child);
  };
  t.after(() => stop());
  return new Promise((resolveStarted, reject) => {
    let buffered = "";
    child.stderr.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        log.push(line);
        const listening = /listening on (\S+?);/.exec(line);
        if (listening) {
          const addr = listening[1];
          resolveStarted({ addr, url: `http://${addr}`, port: Number(addr.split(":").pop()), log, stop });
        }
      }
    });
    child.once("exit", (code) => reject(new Error(`the server exited (${code}) before listening:\n${log.join("\n")}`)));
  });
}

/** Chromium for one test, closed when it ends. */
export async function launch(t) {
  const options = {
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's own background connections would be refused on a closed network.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  };
  let browser;
  try {
    browser = await chromium.launch(options);
  } catch (e) {
    // Chromium has crashed while starting (SIGSEGV, before any page: seen once in CI on
    // a loaded machine). That is not what a test here looks at: start it once more.
    console.error(`chromium did not start (${String(e).split("\n")[0]}); starting it again`);
    browser = await chromium.launch(options);
  }
  t.after(() => browser.close());
  return browser;
}

/**
 * A fresh page (its own profile: no storage shared between tests, unless `storageState`
 * carries another context's, as a browser restarted on the same profile would) that
 * records every console error and every request to a host other than this machine, which
 * it refuses.
 */
export async function openPage(t, browser, url, viewport = { width: 1440, height: 900 }, storageState = undefined) {
  const context = await browser.newContext({ viewport, storageState });
  const page = await context.newPage();
  const seen = { errors: [], foreign: [] };
  const local = (href) => {
    const host = new URL(href).hostname;
    return host === "127.0.0.1" || host === "localhost" || href.startsWith("data:");
  };
  await context.route("**/*", (route) => {
    const href = route.request().url();
    if (local(href)) return route.continue();
    seen.foreign.push(href);
    return route.abort();
  });
  page.on("websocket", (ws) => {
    if (!local(ws.url())) seen.foreign.push(ws.url());
  });
  page.on("console", (message) => {
    if (message.type() === "error") seen.errors.push(message.text());
  });
  page.on("pageerror", (error) => seen.errors.push(`uncaught: ${error.message}`));
  await page.goto(url);
  return { page, seen, context };
}

/** The checks every test ends with; `allowed` lists console errors the test caused on purpose. */
export function assertClean(assert, seen, allowed = []) {
  assert.deepEqual(seen.foreign, [], "no request leaves this machine");
  const unexpected = seen.errors.filter((e) => !allowed.some((pattern) => pattern.test(e)));
  assert.deepEqual(unexpected, [], "no console error");
}

/** A request to the server's API; resolves to `{ status, body }`. */
export async function api(server, method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Posts a pour and returns it, failing the test if it is not stored. */
export async function pour(assert, server, tapId, volume, token) {
  const { status, body } = await api(server, "POST", "/api/beers", { tapId, volume }, token);
  assert.equal(status, 201, JSON.stringify(body));
  return body.beer;
}

/** A tokens file with one token per role; returns `{ file, tokens }`. */
export function tokensFile(dir) {
  const tokens = {};
  const entries = [];
  for (const role of ["admin", "reader", "tap"]) {
    const token = randomBytes(32).toString("base64url");
    tokens[role] = token;
    const sha256 = createHash("sha256").update(token).digest("hex");
    entries.push(`[[token]]\nname = "${role}"\nrole = "${role}"\n${role === "tap" ? "tap_id = 1\n" : ""}sha256 = "${sha256}"\n`);
  }
  const file = join(dir, "tokens.toml");
  writeFileSync(file, entries.join("\n"));
  return { file, tokens };
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/**
 * What axe-core (the accessibility rules browsers' own audits use) finds against WCAG 2
 * A and AA on the page as it is now: contrast, labels, names, landmarks. Evaluated through
 * the DevTools protocol, which the page's Content-Security-Policy does not govern.
 */
export async function accessibilityViolations(page) {
  const source = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(source);
  const results = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  return results.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`);
}
