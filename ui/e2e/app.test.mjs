// End-to-end tests of the desktop app in a real window: tauri-driver starts the built app
// (MEMREADER_APP) under WebKitWebDriver, and webdriverio drives it. Run by scripts/test-app.sh,
// which starts Xvfb and tauri-driver first and gives the app an empty library of its own
// (MEMREADER_HOME), empty config and data folders, and a tiny random model (MEMREADER_MODEL).
//
// Files are added the way a person adds them, through X itself (xdotool, which WebDriver cannot
// replace: the native dialogs and drops are outside the page): the native file and folder
// pickers, which open from Rust, get the paths typed into them, and a file is dragged from a
// file-manager-like GTK window (e2e/drag-source.py) and dropped on the app's window. The page
// has no command that takes a path; one test checks that what it can try adds nothing. Snapshots
// are exported and imported the same way, through the save and open dialogs.
// MEMREADER_SCREENSHOTS=DIR saves the main views.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { remote } from "webdriverio";

const application = process.env.MEMREADER_APP;
const port = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
const screenshots = process.env.MEMREADER_SCREENSHOTS;
/** Ingesting a whole book in a debug build. */
const INGEST_TIMEOUT_MS = 60_000;
const demo = resolve(import.meta.dirname, "../../assets/demo");
/** Debian's Python, whose python3-gi (GTK 3) runs the drag source. */
const PYTHON = "/usr/bin/python3";

/** @type {WebdriverIO.Browser} */
let browser;

/** A PDF with one page per entry of `pages` (each a list of lines), in Helvetica. */
function pdf(pages) {
  const objects = ["<< /Type /Catalog /Pages 2 0 R >>"];
  const kids = pages.map((_, i) => `${4 + 2 * i} 0 R`).join(" ");
  objects.push(`<< /Type /Pages /Kids [${kids}] /Count ${pages.length} >>`);
  objects.push("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>");
  pages.forEach((lines, i) => {
    const text = lines.map((l, j) => `${j === 0 ? "72 720 Td" : "0 -16 Td"} (${l}) Tj`).join(" ");
    const stream = `BT /F1 12 Tf ${text} ET`;
    objects.push(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents ${5 + 2 * i} 0 R /Resources << /Font << /F1 3 0 R >> >> >>`,
    );
    objects.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
  });
  let out = "%PDF-1.4\n";
  const offsets = objects.map((body, i) => {
    const at = out.length;
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
    return at;
  });
  const xref = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  out += offsets.map((o) => `${String(o).padStart(10, "0")} 00000 n \n`).join("");
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return out;
}
const books = mkdtempSync(join(tmpdir(), "memreader-e2e-books-"));

before(async () => {
  assert.ok(application, "MEMREADER_APP must name the built app (scripts/test-app.sh sets it)");
  assert.ok(process.env.MEMREADER_HOME, "MEMREADER_HOME must name an empty library (test-app.sh)");
  try {
    execFileSync("xdotool", ["version"], { stdio: "ignore" });
  } catch {
    assert.fail("xdotool must be installed: it adds the files (scripts/setup.sh installs it)");
  }
  copyFileSync(join(demo, "intentions-wilde.txt"), join(books, "intentions.txt"));
  // Characters outside the Basic Multilingual Plane take two UTF-16 units in JS and one char
  // in Rust: a passage after them is highlighted in the right place only if the UI converts.
  const emoji = "🦉🌙 ".repeat(400);
  writeFileSync(
    join(books, "owls.md"),
    `# Night birds\n\n${emoji}\n\nThe tawny owl calls twice in the lamplit orchard; ` +
      `the barn owl answers from the hayloft.\n\n${emoji}\n`,
  );
  writeFileSync(join(books, "broken.pdf"), "%PDF-1.7\nthis is not really a PDF\n");
  // A real PDF: extracted by the app's own executable started as a PDF worker process.
  const lines = (topic) =>
    Array.from({ length: 12 }, (_, i) => `Line ${i + 1} of the field notes on the ${topic} by the river bank.`);
  writeFileSync(join(books, "field-notes.pdf"), pdf([lines("kingfisher"), lines("grey heron")]));
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
  await browser?.deleteSession();
  rmSync(books, { recursive: true, force: true });
});

/** Saves the X screen, as a person would see it (WebDriver's own screenshots can lag). */
async function screenshot(name) {
  if (!screenshots) return;
  await browser.pause(1000);
  execFileSync("import", ["-window", "root", "-crop", "1024x720+0+0", "+repage", join(screenshots, `${name}.png`)]);
}

/** Calls a Rust command straight from the page, as the UI does; rejects with its error. */
async function invoke(cmd, args = {}) {
  const result = await browser.executeAsync(
    (cmd, args, done) =>
      window.__TAURI_INTERNALS__.invoke(cmd, args).then(
        (value) => done({ value }),
        (error) => done({ error: String(error) }),
      ),
    cmd,
    args,
  );
  if ("error" in result) throw new Error(`${cmd}: ${result.error}`);
  return result.value;
}

async function text(selector) {
  return browser.execute((s) => document.querySelector(s)?.textContent ?? null, selector);
}

async function documentRows() {
  return browser.execute(() =>
    [...document.querySelectorAll("#documents tbody tr")].map((tr) => ({
      title: tr.querySelector("th button").textContent,
      status: tr.dataset.status,
      error: tr.querySelector(".doc-error")?.textContent ?? null,
    })),
  );
}

async function waitForText(selector, pattern, timeout = 10_000) {
  await browser.waitUntil(async () => pattern.test((await text(selector)) ?? ""), {
    timeout,
    timeoutMsg: `${selector} never matched ${pattern}; it says: ${await text(selector)}`,
  });
}

test("the window opens on an empty library, with the version from the Rust core", async () => {
  assert.equal(await browser.getTitle(), "MemReader");
  const info = await invoke("app_info");
  await waitForText("#app-version", new RegExp(`^v${info.version.replaceAll(".", "\\.")}$`));
  await waitForText("#library-status", /^The library is empty/);
  assert.equal(await browser.$("#documents").isDisplayed(), false);
  const settings = await invoke("settings");
  assert.equal(settings.library_dir, process.env.MEMREADER_HOME);
});

test("the page cannot add a file the user did not choose: no command takes a path, and nothing is added", async () => {
  for (const path of ["/etc/passwd", homedir(), join(homedir(), ".ssh/id_rsa")]) {
    await assert.rejects(invoke("ingest_paths", { paths: [path] }), /Command ingest_paths not found/, path);
  }
  // Nor can it fake a drop: only the system's drop reaches Rust, and the page may emit nothing.
  const drop = { paths: ["/etc/passwd", homedir()], position: { x: 10, y: 10 } };
  await assert.rejects(invoke("plugin:event|emit", { event: "tauri://drag-drop", payload: drop }), /not allowed/);
  await assert.rejects(
    invoke("plugin:event|emit_to", { target: { kind: "Any" }, event: "tauri://drag-drop", payload: drop }),
    /not allowed/,
  );
  await browser.pause(500);
  assert.equal(await invoke("running_job"), null);
  assert.deepEqual(await invoke("documents"), []);
  await waitForText("#library-status", /^The library is empty/);
  assert.equal(await browser.$("#progress").isDisplayed(), false);
});

test("a book chosen in the native file picker is added: its progress, then the book in the list", async () => {
  await browser.$("#add-files").click();
  await answerDialog("Add documents to the library", join(books, "intentions.txt"));
  await browser.$("#progress").waitForDisplayed();
  await waitForText("#progress-title", /^Files added$/, INGEST_TIMEOUT_MS);
  assert.match(await text("#progress-counts"), /^1 added, 0 already there, 0 failed\.$/);
  assert.match(await text("#progress-files"), /added\s*intentions\.txt/);
  await browser.waitUntil(async () => (await documentRows()).length === 1, {
    timeoutMsg: "the book never appeared in the list",
  });
  const [record] = await invoke("documents");
  assert.equal(record.status, "ready");
  assert.equal(record.path, join(books, "intentions.txt"));
  const [row] = await documentRows();
  assert.deepEqual(row, { title: record.title ?? "intentions.txt", status: "ready", error: null });
  assert.equal(await browser.$("#add-files").isEnabled(), true);
});

test("a folder chosen in the folder picker: its PDF goes in through a worker process, the broken one fails with its error", async () => {
  await browser.$("#add-folder").click();
  await answerDialog("Add folders to the library", books);
  await waitForText("#progress-title", /^Files added$/, INGEST_TIMEOUT_MS);
  assert.match(await text("#progress-counts"), /^2 added, 1 already there, 1 failed\.$/);
  const failures = await text("#progress-failures");
  assert.match(failures, /^broken\.pdf: \S/);
  await browser.waitUntil(async () => (await documentRows()).length === 4);
  const broken = (await documentRows()).find((r) => r.title === "broken.pdf");
  assert.equal(broken.status, "failed");
  assert.ok(broken.error && failures.includes(broken.error), `${broken.error} / ${failures}`);
  // The failed document cannot be opened in the reader; its error is shown instead.
  const disabled = await browser.execute(
    () => document.querySelector('#documents tr[data-status="failed"] th button').disabled,
  );
  assert.equal(disabled, true);
  await screenshot("app-library");
});

/** Whether Debian's python3-gi with GTK 3 is there to run the drag source. */
function canDrag() {
  try {
    const check = "import gi; gi.require_version('Gdk', '3.0'); gi.require_version('Gtk', '3.0'); from gi.repository import Gtk";
    execFileSync(PYTHON, ["-c", check], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Drags `paths` from a file-manager-like GTK window (e2e/drag-source.py) over the middle of
 * the app's window, runs `hovering` while they are over it, and drops them there: X events, as
 * a person's mouse makes them. */
async function dragAndDrop(paths, hovering) {
  const [app] = windowsNamed("MemReader");
  const { X, Y, WIDTH, HEIGHT } = Object.fromEntries(
    execFileSync("xdotool", ["getwindowgeometry", "--shell", app], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map((line) => line.split("="))
      .map(([key, value]) => [key, Number(value)]),
  );
  // The source sits in the app's bottom-right corner (160 x 100, no window manager to move it).
  const [sx, sy] = [X + WIDTH - 180, Y + HEIGHT - 120];
  const script = join(import.meta.dirname, "drag-source.py");
  const source = spawn(PYTHON, [script, String(sx), String(sy), ...paths], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise((done) => source.on("exit", done));
  let pressed = false;
  try {
    await new Promise((ready, fail) => {
      const timer = setTimeout(() => fail(new Error("the drag source never showed its window")), 10_000);
      source.stdout.on("data", (data) => String(data).includes("ready") && (clearTimeout(timer), ready()));
      void exited.then((code) => fail(new Error(`the drag source exited (${code}) before its window showed`)));
    });
    // Press on the source, move over the app in steps (GTK starts the drag past a threshold,
    // the app hears it enter and move), and let go in the middle.
    const [fromX, fromY, toX, toY] = [sx + 80, sy + 50, X + WIDTH / 2, Y + HEIGHT / 2];
    const moves = Array.from({ length: 8 }, (_, i) => {
      const x = Math.round(fromX + ((toX - fromX) * (i + 1)) / 8);
      const y = Math.round(fromY + ((toY - fromY) * (i + 1)) / 8);
      return ["mousemove", String(x), String(y), "sleep", "0.1"];
    });
    pressed = true;
    execFileSync("xdotool", [
      ...["mousemove", String(fromX), String(fromY), "sleep", "0.3", "mousedown", "1", "sleep", "0.2"],
      ...moves.flat(),
      ...["sleep", "0.5"],
    ]);
    await hovering();
  } finally {
    if (pressed) execFileSync("xdotool", ["mouseup", "1"]);
    // It quits once the drag ends; one that saw no drag is stopped.
    const timer = setTimeout(() => source.kill(), 5000);
    await exited;
    clearTimeout(timer);
  }
}

test("a file dropped on the window is added, as a person drops it from a file manager", async (t) => {
  if (!canDrag()) return t.skip(`${PYTHON} has no python3-gi with GTK 3 for the drag source`);
  await browser.keys(["Alt", "3"]); // dragging over the window shows the library
  const dropped = join(books, "dropped");
  mkdirSync(dropped);
  writeFileSync(join(dropped, "nightjar.md"), "# Nightjar\n\nThe nightjar churrs at dusk over the heath.\n");
  const before = (await documentRows()).length;
  await dragAndDrop([join(dropped, "nightjar.md")], async () => {
    await browser.$("#drop-overlay").waitForDisplayed({ timeoutMsg: "no drop hint while the file hovered" });
    assert.equal(await browser.$("#view-library").isDisplayed(), true);
  });
  await browser.$("#drop-overlay").waitForDisplayed({ reverse: true });
  await waitForText("#progress-title", /^Files added$/, INGEST_TIMEOUT_MS);
  assert.match(await text("#progress-counts"), /^1 added, 0 already there, 0 failed\.$/);
  assert.match(await text("#progress-files"), /added\s*nightjar\.md/);
  await browser.waitUntil(async () => (await documentRows()).length === before + 1, {
    timeoutMsg: "the dropped file never appeared in the list",
  });
  const added = (await invoke("documents")).find((d) => d.path === join(dropped, "nightjar.md"));
  assert.equal(added?.status, "ready");
  await screenshot("app-dropped");
});

test("search finds a passage as the user types; its hit opens the reader at the passage", async () => {
  await browser.keys("/");
  assert.equal(await browser.execute(() => document.activeElement?.id), "search-input");
  await browser.$("#search-input").setValue("tawny owl lamplit");
  await waitForText("#search-status", /^\d+ passages? \(best first\)\.$/);
  const first = browser.$("#search-results button.hit");
  assert.match(await first.getText(), /Night birds/);
  const marks = await browser.execute(() =>
    [...document.querySelectorAll("#search-results li:first-child mark")].map((m) => m.textContent),
  );
  assert.deepEqual(marks.map((m) => m.toLowerCase()), ["tawny", "owl", "lamplit", "owl"]);
  await screenshot("app-search");

  const [hit] = await invoke("search", { query: "tawny owl lamplit", docs: [], limit: 1 });
  await first.click();
  await browser.$("#view-reader").waitForDisplayed();
  await browser.$("#reader-highlight").waitForExist();
  // The highlighted passage is exactly the hit's char range of the document's text.
  const { document } = await invoke("document_text", { id: hit.doc_id });
  const expected = [...document.text].slice(hit.range.start, hit.range.end).join("");
  assert.equal(await text("#reader-highlight"), expected);
  assert.match(expected, /The tawny owl calls twice in the lamplit orchard/);
  assert.deepEqual(
    await browser.execute(() =>
      [...document.querySelectorAll("#reader-highlight mark.term")].map((m) => m.textContent),
    ),
    ["tawny", "owl", "lamplit", "owl"],
  );
  assert.equal(await browser.execute(() => document.activeElement?.id), "reader-highlight");
});

test("a hit in a book opens its chapter, and the reader moves between chapters", async () => {
  await browser.keys(["Alt", "3"]);
  await browser.$("#search-input").setValue("Cyril modernity of form");
  await waitForText("#search-results li:first-child .snippet", /modernity/i);
  await browser.$("#search-results button.hit").click();
  await waitForText("#reader-highlight", /modernity of form/);
  const book = (await invoke("documents")).find((d) => d.path.endsWith("intentions.txt"));
  assert.equal(await text("#reader-title"), book.title ?? "intentions.txt");
  assert.match(await text("#reader-highlight"), /modernity of form/);
  const part = await browser.$("#reader-part").getValue();
  const position = await text("#reader-position");
  const [, at, of] = position.match(/^(\d+) of (\d+)$/);
  assert.ok(Number(of) > 1, position);
  assert.equal(Number(part) + 1, Number(at));
  await screenshot("app-reader");
  await browser.$("#reader-next").click();
  assert.equal(await text("#reader-position"), `${Number(at) + 1} of ${of}`);
  assert.equal(await browser.$("#reader-highlight").isExisting(), false);
});

test("a question is answered with citations; a citation opens the reader at its quote", async () => {
  await browser.keys(["Alt", "4"]);
  assert.equal(await browser.execute(() => document.activeElement?.id), "ask-question");
  await browser.$("#ask-question").setValue("Where does the tawny owl call?");
  // Every text the answer shows while it is being written, as the window showed it.
  await browser.execute(() => {
    const seen = (window.memreaderStreamed = []);
    new MutationObserver(() => {
      const shown = document.querySelector("#ask-answer .answer-text.streaming")?.textContent;
      if (shown != null && shown !== seen.at(-1)) seen.push(shown);
    }).observe(document.querySelector("#ask-answer"), { subtree: true, childList: true, characterData: true });
  });
  await browser.keys("Enter");
  const card = browser.$("#ask-answer button.citation");
  await card.waitForExist({ timeout: INGEST_TIMEOUT_MS });
  assert.match(await card.getText(), /The tawny owl calls twice in the lamplit orchard/);
  assert.match(await text("#ask-history"), /Where does the tawny owl call\?/);
  await screenshot("app-ask");
  const [entry] = (await invoke("history")).slice(-1);
  // The tiny random model's generated text showed as it grew, then (it is never confident) the
  // extracted answer in its place, and the answer stays with its citations.
  const { generated, text: answered } = entry.answer;
  const streamed = await browser.execute(() => window.memreaderStreamed);
  const growing = streamed.filter((shown) => shown !== answered);
  assert.ok(growing.every((shown) => generated.startsWith(shown)), JSON.stringify({ streamed, generated }));
  assert.equal(growing.length > 0, generated !== "", JSON.stringify({ streamed, generated }));
  assert.equal(await text("#ask-answer .answer-text"), answered);
  const citation = entry.answer.citations[0];
  await card.click();
  await browser.$("#reader-highlight").waitForExist();
  const { document } = await invoke("document_text", { id: citation.doc_id });
  const chars = [...document.text];
  assert.equal(await text("#reader-highlight"), chars.slice(citation.passage.start, citation.passage.end).join(""));
  assert.equal(await text("#reader-highlight mark.term"), citation.quote);
  assert.equal(citation.quote, chars.slice(citation.range.start, citation.range.end).join(""));
});

test("reading a document into memory shows its progress, then the notes per layer", async () => {
  await browser.keys(["Alt", "5"]);
  const owls = (await invoke("documents")).find((d) => d.path.endsWith("owls.md"));
  await browser.$("#memory-doc").selectByAttribute("value", owls.id);
  await waitForText("#memory-status", /^Not read into memory yet\.$/);
  await browser.$("#read-doc").click();
  await waitForText("#read-title", /^Reading finished$/, INGEST_TIMEOUT_MS);
  assert.match(await text("#read-counts"), /^1 document read\.$/);
  await browser.$("#inspector").waitForDisplayed({ timeout: INGEST_TIMEOUT_MS });
  const model = await invoke("model_info");
  const rows = await browser.execute(() => document.querySelectorAll("#notes-strip .strip-row").length);
  assert.equal(rows, model.layers);
  await waitForText("#memory-status", /^Read: [\d,]+ tokens/);
  await screenshot("app-memory");
  const note = browser.$("#notes-list button.note:not([disabled])");
  await note.click();
  await browser.$("#reader-highlight mark.term").waitForExist();
  assert.equal(await browser.$("#view-reader").isDisplayed(), true);
});

/** Waits for the native dialog titled `title`, types `path` into it and confirms. */
async function answerDialog(title, path) {
  let dialog = [];
  await browser.waitUntil(async () => (dialog = windowsNamed(title)).length > 0, {
    timeoutMsg: `the dialog "${title}" never opened`,
  });
  // GTK sometimes takes the first keys before the field that should get them has focus, and
  // the dialog stays open: then the path is typed again over whatever the field holds.
  for (let attempt = 1; ; attempt++) {
    await browser.pause(500); // let GTK settle the dialog's focus
    // No window manager under Xvfb: focus the dialog ourselves and type (XTEST). A path that
    // starts with "/" opens the location field of an open dialog; a save dialog's name field
    // takes a whole path.
    execFileSync("xdotool", ["windowfocus", "--sync", dialog[0], "key", "ctrl+a"]);
    execFileSync("xdotool", ["type", "--delay", "30", path]);
    await browser.pause(300);
    execFileSync("xdotool", ["key", "Return"]);
    try {
      await browser.waitUntil(async () => windowsNamed(title).length === 0, {
        timeout: 4000,
        timeoutMsg: `the dialog "${title}" did not close after ${attempt} attempt(s)`,
      });
      return;
    } catch (error) {
      if (attempt === 3) throw error;
    }
  }
}

test("the session exports to a snapshot file and imports again; a bad file says why", async () => {
  await browser.keys(["Alt", "5"]);
  const file = join(books, "session.memrsnap");
  await browser.$("#export-snapshot").click();
  await answerDialog("Export the session", file);
  await waitForText("#snapshot-result", /^Exported 1 memory and \d+ questions? to /, INGEST_TIMEOUT_MS);
  assert.ok((await text("#snapshot-result")).includes(file));

  const bad = join(books, "bad.memrsnap");
  writeFileSync(bad, "this is not a snapshot");
  await browser.$("#import-snapshot").click();
  await answerDialog("Import a session", bad);
  await browser.$("#snapshot-error").waitForDisplayed({ timeout: INGEST_TIMEOUT_MS });
  assert.match(await text("#snapshot-error"), /bad\.memrsnap: not a MemReader snapshot/);

  await browser.$("#import-snapshot").click();
  await answerDialog("Import a session", file);
  await waitForText("#snapshot-result", /^Imported 1 memory and \d+ questions?\.$/, INGEST_TIMEOUT_MS);
  assert.equal(await browser.$("#snapshot-error").isDisplayed(), false);
});

test("a hit in a PDF opens its page", async () => {
  await browser.keys(["Alt", "3"]);
  await browser.$("#search-input").setValue("grey heron");
  await waitForText("#search-results li:first-child .snippet", /heron/i);
  assert.match(await text("#search-results li:first-child .hit-title"), /· p\. 2$/);
  await browser.$("#search-results button.hit").click();
  await waitForText("#reader-highlight", /grey heron/);
  assert.equal(await text("#reader-position"), "2 of 2");
  assert.equal(await browser.$("#reader-part").getValue(), "1");
  assert.match(await text("#reader-part option:checked"), /^Page 2/);
});

test("files dropped while a document is read into memory are not added, and the window says why", async (t) => {
  if (!canDrag()) return t.skip(`${PYTHON} has no python3-gi with GTK 3 for the drag source`);
  await browser.keys(["Alt", "5"]);
  const book = (await invoke("documents")).find((d) => d.path.endsWith("intentions.txt"));
  await browser.$("#memory-doc").selectByAttribute("value", book.id);
  const late = join(books, "dropped", "late.md");
  writeFileSync(late, "# Late\n\nThis file came while the app was busy.\n");
  const before = await invoke("documents");
  await dragAndDrop([late], async () => {
    await browser.$("#drop-overlay").waitForDisplayed({ timeoutMsg: "no drop hint while the file hovered" });
    // While the file hovers (over the library: the drag went there), the book starts to be read.
    await browser.execute(() => document.querySelector("#read-doc").click());
    await browser.waitUntil(async () => (await invoke("running_job")) !== null, {
      timeout: INGEST_TIMEOUT_MS,
      timeoutMsg: "the reading never started",
    });
  });
  await waitForText(
    "#library-error",
    /^The dropped files were not added\. Documents are being read into memory; wait for that to finish or cancel it first\.$/,
  );
  assert.equal(await browser.$("#view-library").isDisplayed(), true);
  await browser.keys(["Alt", "5"]);
  // The book may be read already; else it stops where it is.
  if (await browser.$("#cancel-read").isDisplayed()) await browser.$("#cancel-read").click();
  await waitForText("#read-title", /^Reading (was stopped|finished)$/, INGEST_TIMEOUT_MS);
  assert.deepEqual(await invoke("documents"), before);
  assert.equal(await invoke("running_job"), null);
  await browser.keys(["Alt", "1"]);
});

test("settings show the library, the device that was detected and the model", async () => {
  await browser.keys(["Alt", "6"]);
  await waitForText("#settings-library", new RegExp(process.env.MEMREADER_HOME));
  await waitForText("#settings-detected", /^Detected: /);
  await waitForText("#settings-model", new RegExp(`^${process.env.MEMREADER_MODEL}: 2 layers`));
  assert.equal(await browser.$("#settings-device").getValue(), "auto");
  await screenshot("app-settings");
  await browser.keys(["Alt", "1"]);
});

test("removing a document asks first, then takes it out of the list", async () => {
  const before = (await documentRows()).length;
  await browser.$('#documents tr[data-status="failed"] button.remove').click();
  await browser.$("#documents button.confirm-remove").click();
  await browser.waitUntil(async () => (await documentRows()).length === before - 1, {
    timeoutMsg: "the removed document stayed in the list",
  });
  assert.ok((await documentRows()).every((r) => r.status === "ready"));
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

/** The X window ids whose title is `title` (xdotool). */
function windowsNamed(title) {
  try {
    return execFileSync("xdotool", ["search", "--onlyvisible", "--name", `^${title}$`], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean);
  } catch {
    return []; // xdotool exits 1 when no window matches
  }
}

test("Add files opens the native picker from Rust; closing it adds nothing", async () => {
  await browser.keys(["Alt", "1"]);
  const before = (await documentRows()).length;
  await browser.$("#add-files").click();
  let dialog = [];
  await browser.waitUntil(async () => (dialog = windowsNamed("Add documents to the library")).length > 0, {
    timeoutMsg: "the file picker never opened",
  });
  // No window manager under Xvfb: focus the dialog ourselves, then press Escape (XTEST).
  execFileSync("xdotool", ["windowfocus", "--sync", dialog[0], "key", "Escape"]);
  await browser.waitUntil(async () => windowsNamed("Add documents to the library").length === 0, {
    timeoutMsg: "the file picker did not close",
  });
  // The command came back with nothing chosen: no job, no error, the same documents.
  await browser.pause(300);
  assert.equal(await browser.$("#library-error").isDisplayed(), false);
  assert.equal(await invoke("running_job"), null);
  assert.equal((await documentRows()).length, before);
});

test("the window has no dialog permission: the pickers open from Rust only", async () => {
  await assert.rejects(invoke("plugin:dialog|open", { options: {} }), /not allowed/);
});

test("the window can invoke nothing it was not granted: core window, webview, app and event commands, and no plugin", async () => {
  // Granted: the app's own commands, and listening to events (capabilities/main.json).
  const refused = [
    ["plugin:dialog|save", { options: {} }],
    ["plugin:dialog|message", { message: "hi" }],
    ["plugin:window|close", { label: "main" }],
    ["plugin:window|set_title", { label: "main", value: "pwned" }],
    ["plugin:webview|create_webview_window", { options: { label: "x", url: "https://example.com" } }],
    ["plugin:app|app_hide", {}],
    ["plugin:event|emit", { event: "ingest-progress", payload: {} }],
    ["plugin:path|resolve_directory", { directory: 1 }],
  ];
  for (const [cmd, args] of refused) {
    await assert.rejects(invoke(cmd, args), /not allowed/, cmd);
  }
  // Plugins the app does not load are not there at all.
  for (const cmd of ["plugin:fs|read_text_file", "plugin:shell|open", "plugin:http|fetch"]) {
    await assert.rejects(invoke(cmd, { path: "/etc/passwd" }), /not (allowed|found)/, cmd);
  }
  assert.equal(await browser.getTitle(), "MemReader");
});
