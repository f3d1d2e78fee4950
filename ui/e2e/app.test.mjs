// End-to-end tests of the desktop app in a real window: tauri-driver starts the built app
// (MEMREADER_APP) under WebKitWebDriver, and webdriverio drives it. Run by scripts/test-app.sh,
// which starts Xvfb and tauri-driver first.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, test } from "node:test";
import { remote } from "webdriverio";

const application = process.env.MEMREADER_APP;
const port = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
/** Opening the demo books parses two whole books in a debug build. */
const OPEN_TIMEOUT_MS = 60_000;

/** @type {WebdriverIO.Browser} */
let browser;

before(async () => {
  assert.ok(application, "MEMREADER_APP must name the built app (scripts/test-app.sh sets it)");
  browser = await remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "warn",
    connectionRetryCount: 0,
    // Only tauri:options: a browserName makes WebKitWebDriver refuse the session.
    capabilities: { "tauri:options": { application } },
  });
});

after(async () => {
  const screenshot = process.env.MEMREADER_SCREENSHOT;
  if (screenshot && browser) {
    // The whole X screen, as a person would see it; WebDriver's own screenshots can lag.
    await browser.pause(1000);
    execFileSync("import", ["-window", "root", screenshot]);
  }
  await browser?.deleteSession();
});

/** Calls a Rust command straight from the page, as the UI does; rejects with its error. */
async function invoke(cmd) {
  const result = await browser.executeAsync(
    (cmd, done) =>
      window.__TAURI_INTERNALS__.invoke(cmd).then(
        (value) => done({ value }),
        (error) => done({ error: String(error) }),
      ),
    cmd,
  );
  if ("error" in result) throw new Error(`${cmd}: ${result.error}`);
  return result.value;
}

const integer = new Intl.NumberFormat("en-US");

async function tableRows() {
  return browser.execute(() =>
    [...document.querySelectorAll("#books tbody tr")].map((tr) =>
      [...tr.children].map((cell) => cell.textContent),
    ),
  );
}

function expectedRows(books) {
  return books.map((b) => [
    b.title,
    b.author ?? "Unknown author",
    integer.format(b.words),
    integer.format(b.chapters),
    integer.format(b.passages),
  ]);
}

test("the window opens on the home screen with the version from the Rust core", async () => {
  assert.equal(await browser.getTitle(), "MemReader");
  assert.equal(await browser.$("#app-name").getText(), "MemReader");
  const info = await invoke("app_info");
  assert.equal(info.name, "MemReader");
  assert.match(info.version, /^\d+\.\d+\.\d+/);
  const version = browser.$("#app-version");
  await browser.waitUntil(async () => (await version.getText()) === `v${info.version}`, {
    timeoutMsg: `the header never showed v${info.version}`,
  });
  assert.equal(await browser.$("#books").isDisplayed(), false);
});

test("clicking the button lists the demo books that the Rust core opened", async () => {
  await browser.$("#open-library").click();
  await browser.waitUntil(async () => (await tableRows()).length > 0, {
    timeout: OPEN_TIMEOUT_MS,
    timeoutMsg: "no book appeared in the table",
  });
  const books = await invoke("demo_books");
  assert.equal(books.length, 2);
  assert.deepEqual(
    books.map((b) => b.file),
    ["household-stories-grimm.txt", "intentions-wilde.txt"],
  );
  assert.deepEqual(await tableRows(), expectedRows(books));
  const words = books.reduce((sum, b) => sum + b.words, 0);
  assert.match(
    await browser.$("#status").getText(),
    new RegExp(`^2 books, ${integer.format(words)} words, opened in \\d+\\.\\d s\\.$`),
  );
  assert.equal(await browser.$("#error").isDisplayed(), false);
});

test("the O key opens the library again, and focus stays on the button", async () => {
  await browser.execute(() => document.querySelector("#books tbody").replaceChildren());
  assert.deepEqual(await tableRows(), []);
  await browser.keys("o");
  await browser.waitUntil(async () => (await tableRows()).length === 2, {
    timeout: OPEN_TIMEOUT_MS,
    timeoutMsg: "pressing O did not list the books again",
  });
  const focused = await browser.execute(() => document.activeElement?.id);
  assert.equal(focused, "open-library");
});

test("the content security policy forbids eval and requests to other origins", async () => {
  const evaluated = await browser.execute(() => {
    try {
      return String(new Function("return 6 * 7")());
    } catch (err) {
      return err.name;
    }
  });
  assert.equal(evaluated, "EvalError");
  // tauri-driver itself answers on this port: only the CSP can stop the request.
  const outcome = await browser.executeAsync((url, done) => {
    const violations = [];
    document.addEventListener("securitypolicyviolation", (e) =>
      violations.push(e.effectiveDirective),
    );
    fetch(url, { mode: "no-cors" }).then(
      () => done({ result: "fetched", violations }),
      (err) => setTimeout(() => done({ result: err.name, violations }), 100),
    );
  }, `http://127.0.0.1:${port}/status`);
  assert.deepEqual(outcome, { result: "TypeError", violations: ["connect-src"] });
});
