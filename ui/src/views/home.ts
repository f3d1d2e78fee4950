// The first screen: the app's name and version, and the bundled demo books, opened by the Rust
// core on request (the button, or the O key).
import type { Api, BookSummary } from "../api";
import { h } from "../dom";
import { count, errorMessage, plural } from "../format";

export interface Home {
  /** Resolves once the header shows the version (or the error that prevented it). */
  ready: Promise<void>;
  /** Asks the Rust core for the demo books and shows them; what the button does. */
  openLibrary(): Promise<void>;
}

export function mountHome(root: HTMLElement, api: Api, doc: Document): Home {
  const version = h(doc, "span", { id: "app-version", class: "version" }, "…");
  const name = h(doc, "h1", { id: "app-name" }, "MemReader");
  const button = h(
    doc,
    "button",
    { id: "open-library", type: "button", "aria-keyshortcuts": "O", autofocus: true },
    "Open demo library",
  );
  const status = h(
    doc,
    "p",
    { id: "status", role: "status", "aria-live": "polite" },
    "Press ",
    h(doc, "kbd", {}, "O"),
    " or the button to open the bundled demo books.",
  );
  const error = h(doc, "p", { id: "error", class: "error", role: "alert", hidden: true });
  const rows = h(doc, "tbody");
  const table = h(
    doc,
    "table",
    { id: "books", hidden: true },
    h(doc, "caption", {}, "Demo books"),
    h(
      doc,
      "thead",
      {},
      h(
        doc,
        "tr",
        {},
        h(doc, "th", { scope: "col" }, "Title"),
        h(doc, "th", { scope: "col" }, "Author"),
        h(doc, "th", { scope: "col", class: "num" }, "Words"),
        h(doc, "th", { scope: "col", class: "num" }, "Chapters"),
        h(doc, "th", { scope: "col", class: "num" }, "Passages"),
      ),
    ),
    rows,
  );
  const library = h(
    doc,
    "section",
    { class: "library", "aria-labelledby": "library-heading" },
    h(
      doc,
      "div",
      { class: "section-head" },
      h(doc, "h2", { id: "library-heading" }, "Library"),
      button,
    ),
    status,
    error,
    table,
  );
  root.replaceChildren(
    h(
      doc,
      "header",
      { class: "app-header" },
      h(doc, "div", { class: "brand" }, name, version),
      h(doc, "p", { class: "tagline" }, "A reading assistant for long documents"),
    ),
    h(doc, "main", {}, library),
  );
  button.focus();

  function showError(message: string): void {
    error.textContent = message;
    error.hidden = false;
  }

  const ready = api.appInfo().then(
    (info) => {
      name.textContent = info.name;
      version.textContent = `v${info.version}`;
      doc.title = info.name;
    },
    (err: unknown) => {
      version.textContent = "version unknown";
      showError(`Cannot reach the MemReader core: ${errorMessage(err)}`);
    },
  );

  let busy = false;
  async function openLibrary(): Promise<void> {
    if (busy) return;
    busy = true;
    button.disabled = true;
    library.setAttribute("aria-busy", "true");
    error.hidden = true;
    status.textContent = "Opening the demo books…";
    const started = performance.now();
    try {
      const books = await api.demoBooks();
      const seconds = (performance.now() - started) / 1000;
      rows.replaceChildren(...books.map((book) => bookRow(doc, book)));
      table.hidden = books.length === 0;
      const words = books.reduce((sum, book) => sum + book.words, 0);
      status.textContent =
        books.length === 0
          ? "The demo library has no books."
          : `${plural(books.length, "book")}, ${plural(words, "word")}, opened in ${seconds.toFixed(1)} s.`;
    } catch (err) {
      status.textContent = "The demo books could not be opened.";
      showError(errorMessage(err));
    } finally {
      busy = false;
      button.disabled = false;
      library.removeAttribute("aria-busy");
      button.focus();
    }
  }

  button.addEventListener("click", () => void openLibrary());
  doc.addEventListener("keydown", (event) => {
    if (event.key.toLowerCase() !== "o" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (isEditable(event.target)) return;
    event.preventDefault();
    void openLibrary();
  });

  return { ready, openLibrary };
}

function bookRow(doc: Document, book: BookSummary): HTMLTableRowElement {
  return h(
    doc,
    "tr",
    {},
    h(doc, "th", { scope: "row", title: book.file }, book.title),
    h(doc, "td", {}, book.author ?? "Unknown author"),
    h(doc, "td", { class: "num" }, count(book.words)),
    h(doc, "td", { class: "num" }, count(book.chapters)),
    h(doc, "td", { class: "num" }, count(book.passages)),
  );
}

function isEditable(target: EventTarget | null): boolean {
  if (!(target instanceof Element)) return false;
  return target.closest("input, textarea, select, [contenteditable]") !== null;
}
