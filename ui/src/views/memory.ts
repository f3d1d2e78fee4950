// Memory: read documents into the model's memory (a background job with live progress and
// cancel), inspect what the model noted (a strip of note density per layer over the document,
// and the notes with their passages, which open in the reader), and export or import the
// session as a snapshot file.
import type { Api, DocumentRecord, MemoryInfo, NotesReport, Range, ReadEvent } from "../api";
import { h } from "../dom";
import { bytes, count, duration, errorMessage, fileName, plural } from "../format";

export interface MemoryView {
  element: HTMLElement;
  /** Resolves once the view listens to `read` events. */
  ready: Promise<void>;
  /** The documents that can be read (ready ones). */
  setDocuments(documents: DocumentRecord[]): Promise<void>;
  /** Shows the notes of a document's memory. */
  inspect(id: string): Promise<void>;
  focus(): void;
}

/** Slices of the document the density strip has. */
export const BINS = 60;
/** Shades of the strip, from none to the most notes. */
const LEVELS = 5;

/** Notes per slice of the tokens read, for one layer's note positions. */
export function density(positions: number[], binTokens: number, bins: number): number[] {
  const out = new Array<number>(bins).fill(0);
  for (const p of positions) out[Math.min(bins - 1, Math.floor(p / Math.max(1, binTokens)))]! += 1;
  return out;
}

/** A count as a shade from 0 (none) to LEVELS - 1 (the most of the whole strip). */
export function level(n: number, max: number): number {
  return n === 0 || max === 0 ? 0 : Math.max(1, Math.ceil(((LEVELS - 1) * n) / max));
}

export interface MemoryOptions {
  /** Opens a note's passage in the reader, the note highlighted. */
  open(id: string, passage: Range, note: Range): void;
  /** Told after a snapshot was imported into the session. */
  imported(): void;
}

export function mountMemory(doc: Document, api: Api, options: MemoryOptions): MemoryView {
  const select = h(doc, "select", { id: "memory-doc", "aria-label": "Document" });
  const readButton = h(doc, "button", { type: "button", id: "read-doc" }, "Read into memory");
  const memoryStatus = h(doc, "p", { id: "memory-status", class: "muted", role: "status" });
  const error = h(doc, "p", { id: "memory-error", class: "error", role: "alert", hidden: true });

  const progressTitle = h(doc, "h3", { id: "read-title" }, "Reading");
  const bar = h(doc, "progress", { id: "read-bar", max: "1", value: "0", "aria-labelledby": "read-title" });
  const progressText = h(doc, "p", { id: "read-counts" });
  const cancel = h(doc, "button", { type: "button", id: "cancel-read", class: "secondary" }, "Cancel");
  const results = h(doc, "ul", { id: "read-results", class: "files" });
  const panel = h(
    doc,
    "section",
    { id: "read-progress", class: "panel progress", hidden: true, "aria-labelledby": "read-title" },
    h(doc, "div", { class: "section-head" }, progressTitle, cancel),
    bar,
    progressText,
    results,
  );

  const strip = h(doc, "div", { id: "notes-strip", class: "strip", role: "img" });
  const notesList = h(doc, "ol", { id: "notes-list", class: "notes" });
  const inspector = h(
    doc,
    "section",
    { id: "inspector", class: "inspector", hidden: true, "aria-labelledby": "inspector-heading" },
    h(doc, "h3", { id: "inspector-heading" }, "What the model noted"),
    h(doc, "p", { id: "inspector-summary", class: "muted" }),
    strip,
    h(doc, "h4", {}, "Notes, in reading order"),
    notesList,
  );

  const exportButton = h(doc, "button", { type: "button", id: "export-snapshot", class: "secondary" }, "Export session…");
  const importButton = h(doc, "button", { type: "button", id: "import-snapshot", class: "secondary" }, "Import session…");
  const snapshotResult = h(doc, "p", { id: "snapshot-result", role: "status" });
  const snapshotError = h(doc, "p", { id: "snapshot-error", class: "error", role: "alert", hidden: true });

  const element = h(
    doc,
    "section",
    { id: "view-memory", class: "view", "aria-labelledby": "memory-heading" },
    h(doc, "h2", { id: "memory-heading" }, "Memory"),
    h(doc, "div", { class: "actions" }, h(doc, "label", { for: "memory-doc" }, "Document "), select, readButton),
    memoryStatus,
    error,
    panel,
    inspector,
    h(
      doc,
      "fieldset",
      {},
      h(doc, "legend", {}, "Session snapshot"),
      h(
        doc,
        "p",
        { class: "muted hint" },
        "A snapshot holds the memories of the documents read and the questions asked, in one file to share or keep.",
      ),
      h(doc, "div", { class: "actions" }, exportButton, importButton),
      snapshotResult,
      snapshotError,
    ),
  );

  let documents: DocumentRecord[] = [];
  let memories: Record<string, MemoryInfo> = {};

  function fail(message: string | null): void {
    error.textContent = message ?? "";
    error.hidden = message === null;
  }

  function describe(id: string): string {
    const m = memories[id];
    if (!m) return "Not read into memory yet.";
    const share = m.target_tokens > 0 ? Math.floor((100 * m.tokens_read) / m.target_tokens) : 100;
    return m.tokens_read >= m.target_tokens
      ? `Read: ${plural(m.total_tokens, "token")} in ${duration(m.seconds)}.`
      : `Read ${share}% (${count(m.tokens_read)} of ${count(m.target_tokens)} tokens); reading again goes on from there.`;
  }

  async function refreshMemories(): Promise<void> {
    try {
      memories = await api.memories();
    } catch (err) {
      fail(`The memories could not be listed: ${errorMessage(err)}`);
    }
    memoryStatus.textContent = select.value ? describe(select.value) : "Add documents to the library first.";
  }

  async function setDocuments(list: DocumentRecord[]): Promise<void> {
    documents = list.filter((d) => d.status === "ready");
    const chosen = select.value;
    select.replaceChildren(...documents.map((d) => h(doc, "option", { value: d.id }, d.title ?? fileName(d.path))));
    select.value = documents.some((d) => d.id === chosen) ? chosen : (documents[0]?.id ?? "");
    readButton.disabled = documents.length === 0 || job !== null;
    await refreshMemories();
  }

  async function inspect(id: string): Promise<void> {
    fail(null);
    if (select.value !== id) select.value = id;
    memoryStatus.textContent = describe(id);
    if (!memories[id]) {
      inspector.hidden = true;
      return;
    }
    try {
      showNotes(await api.notes(id, BINS));
    } catch (err) {
      inspector.hidden = true;
      fail(`The notes could not be shown: ${errorMessage(err)}`);
    }
  }

  function showNotes(report: NotesReport): void {
    const rows = report.layers.map((l) => ({
      label: `Layer ${l.layer}`,
      detail: `${plural(l.notes.length, "note")} in ${l.slots} slots`,
      bins: density(l.notes.map((n) => n.position), report.bin_tokens, BINS),
    }));
    const max = Math.max(0, ...rows.flatMap((r) => r.bins));
    strip.setAttribute(
      "aria-label",
      `Note density over the document, ${plural(rows.length, "layer")}: darker where the model kept more notes.`,
    );
    strip.replaceChildren(
      ...rows.map((r) =>
        h(
          doc,
          "div",
          { class: "strip-row" },
          h(doc, "span", { class: "strip-label", title: r.detail }, r.label),
          h(
            doc,
            "span",
            { class: "strip-bins" },
            ...r.bins.map((n, i) =>
              h(doc, "span", {
                class: `bin l${level(n, max)}`,
                title: `${plural(n, "note")} in tokens ${count(i * report.bin_tokens)}–${count((i + 1) * report.bin_tokens)}`,
              }),
            ),
          ),
        ),
      ),
    );
    const notes = report.layers
      .flatMap((l) => l.notes.map((n) => ({ layer: l.layer, ...n })))
      .sort((a, b) => a.position - b.position || a.layer - b.layer);
    notesList.replaceChildren(
      ...notes.map((n) => {
        const where = [n.page !== null ? `p. ${n.page}` : null, n.chapter !== null ? `chapter ${n.chapter + 1}` : null]
          .filter(Boolean)
          .join(" · ");
        const button = h(
          doc,
          "button",
          { type: "button", class: "note", disabled: n.passage === null },
          h(doc, "span", { class: "badge" }, `layer ${n.layer}`),
          h(doc, "span", { class: "muted" }, ` token ${count(n.position)}${where ? ` · ${where}` : ""} · score ${n.score.toFixed(2)} `),
          h(doc, "span", { class: "excerpt" }, `${n.excerpt}…`),
        );
        button.addEventListener("click", () => {
          if (n.passage) options.open(report.doc_id, n.passage, { start: n.char_offset, end: n.char_offset + [...n.excerpt].length });
        });
        return h(doc, "li", {}, button);
      }),
    );
    const summary = inspector.querySelector("#inspector-summary")!;
    summary.textContent = `${report.title}: ${plural(notes.length, "note")} over ${plural(report.tokens_read, "token")} read; each cell of the strip is ${plural(report.bin_tokens, "token")}.`;
    inspector.hidden = false;
  }

  // --- reading ---
  let job: number | null = null;

  function handle(event: ReadEvent): void {
    if (event.kind === "started") {
      job = event.job;
      panel.hidden = false;
      progressTitle.textContent = `Reading ${event.titles.length === 1 ? event.titles[0] : plural(event.titles.length, "document")}`;
      bar.removeAttribute("value");
      progressText.textContent = "Tokenizing…";
      results.replaceChildren();
      cancel.hidden = false;
      cancel.disabled = false;
      readButton.disabled = true;
      panel.setAttribute("aria-busy", "true");
    } else if (event.kind === "progress") {
      const thisSitting = event.done - event.resumed_from;
      const rate = thisSitting / Math.max(event.seconds, 1e-3);
      const left = rate > 0 ? (event.target - event.done) / rate : null;
      bar.max = Math.max(1, event.target);
      bar.value = event.done;
      progressText.textContent =
        `${event.count > 1 ? `Document ${event.index + 1} of ${event.count}: ` : ""}` +
        `${count(event.done)} of ${plural(event.target, "token")} · ${count(Math.round(rate))} tokens/s` +
        (left !== null && left > 0 ? ` · about ${duration(left)} left` : "");
    } else if (event.kind === "document") {
      const r = event.report;
      const text = r
        ? r.cancelled
          ? `${event.title}: stopped at ${count(r.tokens_read)} of ${plural(r.total_tokens, "token")}; reading again goes on from there.`
          : r.up_to_date
            ? `${event.title}: already read.`
            : `${event.title}: read ${plural(r.tokens_read - r.resumed_from, "token")} in ${duration(r.seconds)}; memory ${bytes(r.memory_bytes)}.`
        : `${event.title}: ${event.error}`;
      results.append(h(doc, "li", { class: r ? "ingested" : "failed" }, text));
    } else {
      job = null;
      panel.removeAttribute("aria-busy");
      cancel.hidden = true;
      readButton.disabled = documents.length === 0;
      progressTitle.textContent = event.cancelled ? "Reading was stopped" : event.failed > 0 ? "Reading finished with errors" : "Reading finished";
      progressText.textContent = `${plural(event.read, "document")} read${event.failed > 0 ? `, ${count(event.failed)} failed` : ""}.`;
      bar.max = 1;
      bar.value = 1;
      void refreshMemories().then(() => (select.value ? inspect(select.value) : undefined));
    }
  }

  readButton.addEventListener("click", async () => {
    fail(null);
    if (!select.value) return;
    try {
      await api.readDocuments([select.value]);
    } catch (err) {
      fail(errorMessage(err));
    }
  });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    progressText.textContent = "Stopping after the current block; what was read is kept…";
    try {
      await api.cancelJob();
    } catch (err) {
      fail(errorMessage(err));
    }
  });
  select.addEventListener("change", () => void inspect(select.value));

  async function snapshot(work: () => Promise<string | null>): Promise<void> {
    snapshotError.hidden = true;
    snapshotResult.textContent = "";
    exportButton.disabled = importButton.disabled = true;
    try {
      const done = await work();
      if (done) snapshotResult.textContent = done;
    } catch (err) {
      snapshotError.textContent = errorMessage(err);
      snapshotError.hidden = false;
    } finally {
      exportButton.disabled = importButton.disabled = false;
    }
  }
  exportButton.addEventListener("click", () =>
    void snapshot(async () => {
      const r = await api.exportSnapshot();
      return r && `Exported ${plural(r.documents.length, "memory", "memories")} and ${plural(r.questions, "question")} to ${r.path} (${bytes(r.bytes)}).`;
    }),
  );
  importButton.addEventListener("click", () =>
    void snapshot(async () => {
      const r = await api.importSnapshot();
      if (!r) return null;
      options.imported();
      await refreshMemories();
      const missing = r.documents.filter((d) => !d.in_library).map((d) => d.title);
      return (
        `Imported ${plural(r.documents.length, "memory", "memories")} and ${plural(r.questions, "question")}.` +
        (missing.length > 0 ? ` Not in this library yet (add their files to ask about them): ${missing.join(", ")}.` : "")
      );
    }),
  );

  const ready = api.onRead(handle).then(
    () => undefined,
    (err: unknown) => fail(`The app's events cannot be heard: ${errorMessage(err)}`),
  );

  return { element, ready, setDocuments, inspect, focus: () => select.focus() };
}
