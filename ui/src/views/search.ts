// Passage search: results appear as the user types (debounced), each with its snippet's matched
// words highlighted; choosing one opens the reader at the passage.
import type { Api, Hit } from "../api";
import { h } from "../dom";
import { errorMessage, plural } from "../format";
import { CodePoints } from "../text";

export interface SearchView {
  element: HTMLElement;
  /** Searches now (what typing does after a pause); resolves when the results are shown. */
  search(query: string): Promise<void>;
  focus(): void;
}

/** How long typing must pause before a search goes out. */
export const DEBOUNCE_MS = 200;
const LIMIT = 30;

export function mountSearch(doc: Document, api: Api, open: (hit: Hit) => void): SearchView {
  const input = h(doc, "input", {
    type: "search",
    id: "search-input",
    placeholder: "Search the library’s passages",
    "aria-label": "Search the library",
    "aria-controls": "search-results",
    "aria-keyshortcuts": "/",
    autocomplete: "off",
    spellcheck: "false",
  });
  const status = h(doc, "p", { id: "search-status", class: "muted", role: "status" }, "Type words or a \"quoted phrase\".");
  const error = h(doc, "p", { id: "search-error", class: "error", role: "alert", hidden: true });
  const results = h(doc, "ol", { id: "search-results", class: "hits" });
  const element = h(
    doc,
    "section",
    { id: "view-search", class: "view", "aria-labelledby": "search-heading" },
    h(doc, "h2", { id: "search-heading" }, "Search"),
    input,
    status,
    error,
    results,
  );

  let sent = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;

  async function search(query: string): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = null;
    const mine = ++sent;
    if (query.trim() === "") {
      results.replaceChildren();
      status.textContent = "Type words or a \"quoted phrase\".";
      error.hidden = true;
      return;
    }
    element.setAttribute("aria-busy", "true");
    try {
      const hits = await api.search(query, [], LIMIT);
      if (mine !== sent) return; // a newer query went out meanwhile
      error.hidden = true;
      results.replaceChildren(...hits.map((hit) => h(doc, "li", {}, hitButton(doc, hit, open))));
      status.textContent = hits.length === 0 ? `No passage matches “${query}”.` : `${plural(hits.length, "passage")} (best first).`;
    } catch (err) {
      if (mine !== sent) return;
      error.textContent = errorMessage(err);
      error.hidden = false;
      status.textContent = "The search failed.";
    } finally {
      if (mine === sent) element.removeAttribute("aria-busy");
    }
  }

  input.addEventListener("input", () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => void search(input.value), DEBOUNCE_MS);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") void search(input.value);
    if (event.key === "ArrowDown") {
      event.preventDefault();
      results.querySelector<HTMLElement>("button")?.focus();
    }
  });
  results.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = [...results.querySelectorAll<HTMLElement>("button")];
    const i = buttons.indexOf(doc.activeElement as HTMLElement);
    event.preventDefault();
    if (event.key === "ArrowUp" && i <= 0) input.focus();
    else buttons[Math.min(buttons.length - 1, i + (event.key === "ArrowDown" ? 1 : -1))]?.focus();
  });

  return { element, search, focus: () => input.focus() };
}

/** Where a hit is: "p. 12", "Chapter title", both, or nothing. */
export function locator(hit: Hit): string {
  const parts: string[] = [];
  if (hit.page !== null) parts.push(`p. ${hit.page}`);
  if (hit.chapter_title) parts.push(hit.chapter_title);
  else if (hit.chapter !== null) parts.push(`chapter ${hit.chapter + 1}`);
  return parts.join(" · ");
}

function hitButton(doc: Document, hit: Hit, open: (hit: Hit) => void): HTMLButtonElement {
  const where = locator(hit);
  const button = h(
    doc,
    "button",
    { type: "button", class: "hit", "data-passage": hit.passage_id },
    h(doc, "span", { class: "hit-title" }, hit.title, where ? h(doc, "span", { class: "muted" }, ` · ${where}`) : ""),
    h(doc, "span", { class: "snippet" }, ...snippet(doc, hit.snippet)),
  );
  button.addEventListener("click", () => open(hit));
  return button;
}

/** The snippet's text with each matched word in a `mark`; its ranges are char offsets into
 * the document, the snippet's text starts at `range.start`. */
export function snippet(doc: Document, s: Hit["snippet"]): Node[] {
  const points = new CodePoints(s.text);
  const out: Node[] = [];
  let at = 0;
  for (const r of [...s.highlights].sort((a, b) => a.start - b.start)) {
    const start = r.start - s.range.start;
    const end = r.end - s.range.start;
    if (start < at || end > points.length) continue;
    if (start > at) out.push(doc.createTextNode(points.slice({ start: at, end: start })));
    out.push(h(doc, "mark", {}, points.slice({ start, end })));
    at = end;
  }
  if (at < points.length) out.push(doc.createTextNode(points.slice({ start: at, end: points.length })));
  return out;
}
