// The library: add files or folders (buttons open the native picker; files can also be dropped
// on the window, and Rust ingests what is dropped), the live progress of an ingestion (fed by
// `ingest` events from the Rust background job), and the documents with their status and errors.
// The page never names a path: what is added is what the user picked or dropped.
import type { Api, DocumentRecord, IngestEvent, IngestReport, Outcome } from "../api";
import { h } from "../dom";
import { bytes, count, duration, errorMessage, fileName, plural } from "../format";
import { describeRates, rates } from "../progress";

export interface LibraryView {
  element: HTMLElement;
  /** Resolves once the view listens to events and shows the documents (or why not). */
  ready: Promise<void>;
  /** Fetches the documents again. */
  refresh(): Promise<void>;
  /** Opens the picker for files (or folders) and adds what is chosen. */
  add(folders: boolean): Promise<void>;
  /** Puts the focus on the view's first control. */
  focus(): void;
}

export interface LibraryOptions {
  /** Opens a ready document in the reader. */
  open(id: string): void;
  /** Told after the documents changed (ingested or removed). */
  changed(documents: DocumentRecord[]): void;
}

/** How many files the progress panel lists. */
const RECENT_FILES = 200;
/** The documents are fetched again at most this often while an ingestion runs. */
const REFRESH_MS = 1000;

const OUTCOME_TEXT: Record<Outcome, string> = {
  ingested: "added",
  skipped: "already there",
  failed: "failed",
  not_started: "not started",
};

export function mountLibrary(doc: Document, api: Api, options: LibraryOptions): LibraryView {
  const addFiles = h(doc, "button", { type: "button", id: "add-files", "aria-keyshortcuts": "Control+O" }, "Add files…");
  const addFolder = h(
    doc,
    "button",
    { type: "button", id: "add-folder", class: "secondary", "aria-keyshortcuts": "Control+Shift+O" },
    "Add folder…",
  );
  const error = h(doc, "p", { id: "library-error", class: "error", role: "alert", hidden: true });
  const status = h(doc, "p", { id: "library-status", class: "muted", role: "status" }, "Opening the library…");

  // The progress panel.
  const progressTitle = h(doc, "h3", { id: "progress-title" }, "Adding files");
  const bar = h(doc, "progress", { id: "progress-bar", max: "1", value: "0", "aria-labelledby": "progress-title" });
  const counts = h(doc, "p", { id: "progress-counts" });
  const speed = h(doc, "p", { id: "progress-rates", class: "muted" });
  const cancel = h(doc, "button", { type: "button", id: "cancel-ingest", class: "secondary" }, "Cancel");
  const dismiss = h(doc, "button", { type: "button", id: "dismiss-progress", class: "secondary", hidden: true }, "Close");
  const failures = h(doc, "ul", { id: "progress-failures", class: "failures", hidden: true });
  const files = h(doc, "ol", { id: "progress-files", class: "files", "aria-label": "Files done, newest first" });
  const panel = h(
    doc,
    "section",
    { id: "progress", class: "panel progress", hidden: true, "aria-labelledby": "progress-title" },
    h(doc, "div", { class: "section-head" }, progressTitle, h(doc, "div", { class: "actions" }, cancel, dismiss)),
    bar,
    counts,
    speed,
    failures,
    h(doc, "details", { open: true }, h(doc, "summary", {}, "Files, newest first"), files),
  );

  const rows = h(doc, "tbody");
  const table = h(
    doc,
    "table",
    { id: "documents", hidden: true },
    h(doc, "caption", {}, "Documents"),
    h(
      doc,
      "thead",
      {},
      h(
        doc,
        "tr",
        {},
        h(doc, "th", { scope: "col" }, "Title"),
        h(doc, "th", { scope: "col" }, "Status"),
        h(doc, "th", { scope: "col", class: "num" }, "Pages"),
        h(doc, "th", { scope: "col", class: "num" }, "Passages"),
        h(doc, "th", { scope: "col", class: "num" }, "Words"),
        h(doc, "th", { scope: "col" }, h(doc, "span", { class: "visually-hidden" }, "Actions")),
      ),
    ),
    rows,
  );
  const dropHint = h(doc, "div", { id: "drop-overlay", class: "drop-overlay", hidden: true }, "Drop to add to the library");

  const element = h(
    doc,
    "section",
    { id: "view-library", class: "view", "aria-labelledby": "library-heading" },
    h(
      doc,
      "div",
      { class: "section-head" },
      h(doc, "h2", { id: "library-heading" }, "Library"),
      h(doc, "div", { class: "actions" }, addFiles, addFolder),
    ),
    h(
      doc,
      "p",
      { class: "muted hint" },
      "PDF, EPUB, HTML, Markdown and text files; folders are searched for them. You can also drop files or folders on the window.",
    ),
    error,
    panel,
    status,
    table,
    dropHint,
  );

  function showError(message: string | null): void {
    error.textContent = message ?? "";
    error.hidden = message === null;
  }

  // --- documents ---
  let refreshing: Promise<void> | null = null;
  let again = false;
  async function refresh(): Promise<void> {
    if (refreshing) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        try {
          const documents = await api.documents();
          render(documents);
          options.changed(documents);
        } catch (err) {
          status.textContent = "The documents could not be listed.";
          showError(errorMessage(err));
        }
      } while (again);
    })();
    try {
      await refreshing;
    } finally {
      refreshing = null;
    }
  }

  function render(documents: DocumentRecord[]): void {
    const focusedId = (doc.activeElement as HTMLElement | null)?.closest("tr")?.dataset["id"];
    rows.replaceChildren(...documents.map(row));
    table.hidden = documents.length === 0;
    const failed = documents.filter((d) => d.status === "failed").length;
    const ready = documents.filter((d) => d.status === "ready").length;
    const words = documents.reduce((sum, d) => sum + d.words, 0);
    status.textContent =
      documents.length === 0
        ? "The library is empty. Add files or a folder to begin."
        : `${plural(documents.length, "document")}: ${count(ready)} ready, ${count(failed)} failed; ${plural(words, "word")}.`;
    if (focusedId) rows.querySelector<HTMLElement>(`tr[data-id="${focusedId}"] button`)?.focus();
  }

  function row(d: DocumentRecord): HTMLTableRowElement {
    const title = d.title ?? fileName(d.path);
    const open = h(
      doc,
      "button",
      { type: "button", class: "link open", disabled: d.status !== "ready", title: d.path },
      title,
    );
    open.addEventListener("click", () => options.open(d.id));
    const remove = h(doc, "button", { type: "button", class: "secondary small remove", "aria-label": `Remove ${title}` }, "Remove");
    const actions = h(doc, "td", { class: "row-actions" }, remove);
    remove.addEventListener("click", () => confirmRemove(d, title, actions, remove));
    const statusCell = h(doc, "td", { class: "status" }, h(doc, "span", { class: `badge ${d.status}` }, d.status));
    if (d.error) statusCell.append(h(doc, "span", { class: "doc-error" }, d.error));
    return h(
      doc,
      "tr",
      { "data-id": d.id, "data-status": d.status },
      h(
        doc,
        "th",
        { scope: "row" },
        open,
        h(doc, "span", { class: "muted byline" }, [d.author, d.format?.toUpperCase(), bytes(d.bytes)].filter(Boolean).join(" · ")),
      ),
      statusCell,
      h(doc, "td", { class: "num" }, d.pages > 0 ? count(d.pages) : "–"),
      h(doc, "td", { class: "num" }, count(d.passages)),
      h(doc, "td", { class: "num" }, count(d.words)),
      actions,
    );
  }

  function confirmRemove(d: DocumentRecord, title: string, cell: HTMLElement, remove: HTMLButtonElement): void {
    const yes = h(doc, "button", { type: "button", class: "danger small confirm-remove" }, "Remove");
    const no = h(doc, "button", { type: "button", class: "secondary small" }, "Keep");
    const question = h(doc, "span", { class: "confirm", role: "group", "aria-label": `Remove ${title}?` }, "Remove? ", yes, no);
    cell.replaceChildren(question);
    yes.focus();
    no.addEventListener("click", () => {
      cell.replaceChildren(remove);
      remove.focus();
    });
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      try {
        await api.removeDocument(d.id);
        showError(null);
        addFiles.focus();
      } catch (err) {
        showError(`${title} could not be removed: ${errorMessage(err)}`);
        cell.replaceChildren(remove);
      }
      await refresh();
    });
  }

  // --- ingestion ---
  let job: number | null = null;
  let lastRefresh = 0;
  let refreshTimer: ReturnType<typeof setTimeout> | null = null;

  function setBusy(busy: boolean): void {
    addFiles.disabled = addFolder.disabled = busy;
    if (busy) panel.setAttribute("aria-busy", "true");
    else panel.removeAttribute("aria-busy");
  }

  function begin(id: number, what: string): void {
    job = id;
    panel.hidden = false;
    progressTitle.textContent = `Adding ${what}`;
    bar.value = 0;
    bar.removeAttribute("value"); // indeterminate until the first file is done
    counts.textContent = "Looking for documents…";
    speed.textContent = "";
    files.replaceChildren();
    failures.replaceChildren();
    failures.hidden = true;
    cancel.hidden = false;
    cancel.disabled = false;
    dismiss.hidden = true;
    setBusy(true);
  }

  function scheduleRefresh(): void {
    if (refreshTimer) return;
    const wait = Math.max(0, lastRefresh + REFRESH_MS - Date.now());
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      lastRefresh = Date.now();
      void refresh();
    }, wait);
  }

  function handle(event: IngestEvent): void {
    if (event.kind === "refused") {
      showError(event.error);
      return;
    }
    if (event.kind === "started") {
      showError(null);
      begin(event.job, event.paths.length === 1 ? fileName(event.paths[0]!) : plural(event.paths.length, "item"));
      return;
    }
    if (job === null) begin(event.job, "files");
    if (event.kind === "progress") {
      bar.max = Math.max(1, event.total);
      bar.value = event.done;
      counts.textContent = `${count(event.done)} of ${plural(event.total, "file")}: ${count(event.ingested)} added, ${count(event.skipped)} already there, ${count(event.failed)} failed`;
      speed.textContent = `${describeRates(rates(event))} · ${bytes(event.bytes)} read in ${duration(event.seconds)}`;
      const items = event.files.map((f) =>
        h(
          doc,
          "li",
          { class: f.outcome, title: f.path },
          h(doc, "span", { class: `badge ${f.outcome}` }, OUTCOME_TEXT[f.outcome]),
          " ",
          fileName(f.path),
        ),
      );
      files.prepend(...items.reverse());
      while (files.children.length > RECENT_FILES) files.lastElementChild?.remove();
      scheduleRefresh();
      return;
    }
    finish(event.report, event.error);
  }

  function finish(report: IngestReport | null, failure: string | null): void {
    job = null;
    setBusy(false);
    cancel.hidden = true;
    dismiss.hidden = false;
    bar.max = 1;
    bar.value = 1;
    if (failure !== null || report === null) {
      progressTitle.textContent = "Adding files stopped";
      counts.textContent = failure ?? "The ingestion ended without a report.";
      counts.classList.add("error-text");
    } else {
      counts.classList.remove("error-text");
      const what = `${count(report.ingested.length)} added, ${count(report.skipped.length)} already there, ${count(report.failed.length)} failed`;
      progressTitle.textContent = report.cancelled ? "Adding files was cancelled" : "Files added";
      counts.textContent = report.cancelled
        ? `${what}; ${plural(report.not_started, "file")} not started (add them again to go on).`
        : `${what}.`;
      speed.textContent = `${bytes(report.bytes)} in ${duration(report.seconds)}`;
      failures.replaceChildren(
        ...report.failed.map((f) =>
          h(doc, "li", { title: f.path }, h(doc, "strong", {}, fileName(f.path)), `: ${f.error}`),
        ),
      );
      failures.hidden = report.failed.length === 0;
    }
    if (refreshTimer) clearTimeout(refreshTimer);
    refreshTimer = null;
    void refresh();
    dismiss.focus();
  }

  async function add(folders: boolean): Promise<void> {
    showError(null);
    try {
      const id = await api.pickAndIngest(folders);
      if (id !== null && job === null) begin(id, folders ? "folders" : "files");
    } catch (err) {
      showError(errorMessage(err));
    }
  }

  addFiles.addEventListener("click", () => void add(false));
  addFolder.addEventListener("click", () => void add(true));
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    counts.textContent = "Cancelling: the files already started finish first…";
    try {
      await api.cancelJob();
    } catch (err) {
      showError(errorMessage(err));
    }
  });
  dismiss.addEventListener("click", () => {
    panel.hidden = true;
    addFiles.focus();
  });

  const listening = Promise.all([
    api.onIngest(handle),
    // What is dropped, Rust ingests: its `started` event (or `refused`) follows the drop.
    api.onDrag((event) => {
      dropHint.hidden = event.type === "leave" || event.type === "drop";
    }),
  ]).catch((err: unknown) => showError(`The app's events cannot be heard: ${errorMessage(err)}`));

  const ready = (async () => {
    await listening;
    try {
      const running = await api.runningJob();
      if (running !== null && job === null) begin(running, "files");
    } catch (err) {
      showError(errorMessage(err));
    }
    await refresh();
  })();

  return {
    element,
    ready,
    refresh,
    add,
    focus: () => addFiles.focus(),
  };
}
