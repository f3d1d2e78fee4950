// The reader: a document's text one part at a time (a page of a PDF, else a chapter), with
// navigation between parts; opening a passage (a search hit, a citation) shows its part with the
// passage highlighted and scrolled into view.
import type { Api, DocumentText, Range } from "../api";
import { h } from "../dom";
import { errorMessage, fileName } from "../format";
import { CodePoints, partAt, parts, splitLong, type Part } from "../text";

/** The most code points the reader lays out at once. */
const MAX_PART = 40_000;

/** What to show highlighted: a passage (char range) and, inside it, the matched words. */
export interface Target {
  range: Range;
  highlights: Range[];
}

export interface ReaderView {
  element: HTMLElement;
  /** Shows a document, at its target if given (else at its start). */
  open(id: string, target?: Target): Promise<void>;
  /** Forgets a document that was removed, if it is the one open. */
  forget(id: string): void;
  focus(): void;
}

interface Open {
  text: DocumentText;
  points: CodePoints;
  parts: Part[];
  part: number;
  target: Target | null;
}

export function mountReader(doc: Document, api: Api): ReaderView {
  const title = h(doc, "h2", { id: "reader-title" }, "Reader");
  const byline = h(doc, "p", { id: "reader-byline", class: "muted" });
  const error = h(doc, "p", { id: "reader-error", class: "error", role: "alert", hidden: true });
  const prev = h(doc, "button", { type: "button", id: "reader-prev", class: "secondary", "aria-keyshortcuts": "[" }, "‹ Previous");
  const next = h(doc, "button", { type: "button", id: "reader-next", class: "secondary", "aria-keyshortcuts": "]" }, "Next ›");
  const select = h(doc, "select", { id: "reader-part", "aria-label": "Part of the document" });
  const position = h(doc, "span", { id: "reader-position", class: "muted" });
  const nav = h(doc, "nav", { class: "reader-nav", "aria-label": "Pages and chapters", hidden: true }, prev, select, next, position);
  const body = h(doc, "article", { id: "reader-text", class: "reader-text", tabindex: "0", "aria-labelledby": "reader-title" });
  const empty = h(
    doc,
    "p",
    { id: "reader-empty", class: "muted" },
    "Open a document from the library, or a passage from a search, to read it here.",
  );
  const element = h(
    doc,
    "section",
    { id: "view-reader", class: "view", "aria-labelledby": "reader-title" },
    h(doc, "div", { class: "reader-head" }, title, byline),
    error,
    empty,
    nav,
    body,
  );

  let current: Open | null = null;
  let request = 0;

  async function open(id: string, target?: Target): Promise<void> {
    const mine = ++request;
    error.hidden = true;
    try {
      let text = current?.text.record.id === id ? current.text : null;
      if (!text) {
        element.setAttribute("aria-busy", "true");
        text = await api.documentText(id);
        if (mine !== request) return;
      }
      const points = current?.text === text ? current.points : new CodePoints(text.document.text);
      const list =
        current?.text === text
          ? current.parts
          : splitLong(parts(text.document.pages, text.document.chapters, points.length), points, MAX_PART);
      current = { text, points, parts: list, part: 0, target: target ?? null };
      title.textContent = text.record.title ?? text.document.title ?? fileName(text.record.path);
      byline.textContent = [text.record.author, text.record.path].filter(Boolean).join(" · ");
      select.replaceChildren(...list.map((p, i) => h(doc, "option", { value: String(i) }, p.title)));
      empty.hidden = true;
      nav.hidden = list.length < 2;
      show(target ? partAt(list, target.range.start) : 0);
    } catch (err) {
      if (mine !== request) return;
      error.textContent = `The document could not be opened: ${errorMessage(err)}`;
      error.hidden = false;
    } finally {
      if (mine === request) element.removeAttribute("aria-busy");
    }
  }

  function show(index: number): void {
    if (!current) return;
    const i = Math.min(Math.max(index, 0), current.parts.length - 1);
    current.part = i;
    const part = current.parts[i]!;
    select.value = String(i);
    prev.disabled = i === 0;
    next.disabled = i === current.parts.length - 1;
    position.textContent = `${i + 1} of ${current.parts.length}`;
    const target = current.target;
    const inPart = target && target.range.start < part.range.end && target.range.end > part.range.start ? target : null;
    body.replaceChildren(...render(doc, current.points, part.range, inPart));
    const mark = body.querySelector<HTMLElement>("#reader-highlight");
    if (mark) {
      mark.scrollIntoView?.({ block: "center" });
      mark.focus({ preventScroll: true });
    } else {
      body.scrollTop = 0;
    }
  }

  prev.addEventListener("click", () => show((current?.part ?? 0) - 1));
  next.addEventListener("click", () => show((current?.part ?? 0) + 1));
  select.addEventListener("change", () => show(Number(select.value)));
  element.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target instanceof Element && event.target.closest("input, select, textarea")) return;
    if (event.key === "[" || event.key === "]") {
      event.preventDefault();
      show((current?.part ?? 0) + (event.key === "]" ? 1 : -1));
    }
  });

  return {
    element,
    open,
    forget(id) {
      if (current?.text.record.id !== id) return;
      current = null;
      title.textContent = "Reader";
      byline.textContent = "";
      body.replaceChildren();
      nav.hidden = true;
      empty.hidden = false;
    },
    focus: () => body.focus(),
  };
}

/** The nodes of one part's text, the target passage in a `mark#reader-highlight` (focusable)
 * with its matched words in `mark.term` inside it. Ranges are in code points, clamped to the
 * part. */
export function render(doc: Document, points: CodePoints, part: Range, target: Target | null): Node[] {
  if (!target) return [doc.createTextNode(points.slice(part))];
  const clamp = (r: Range): Range => ({
    start: Math.min(Math.max(r.start, part.start), part.end),
    end: Math.min(Math.max(r.end, part.start), part.end),
  });
  const passage = clamp(target.range);
  const mark = h(doc, "mark", { id: "reader-highlight", class: "passage", tabindex: "-1" });
  let at = passage.start;
  const terms = target.highlights
    .map(clamp)
    .filter((r) => r.start >= passage.start && r.end <= passage.end && r.end > r.start)
    .sort((a, b) => a.start - b.start);
  for (const term of terms) {
    if (term.start < at) continue;
    if (term.start > at) mark.append(points.slice({ start: at, end: term.start }));
    mark.append(h(doc, "mark", { class: "term" }, points.slice(term)));
    at = term.end;
  }
  if (passage.end > at) mark.append(points.slice({ start: at, end: passage.end }));
  return [
    doc.createTextNode(points.slice({ start: part.start, end: passage.start })),
    mark,
    doc.createTextNode(points.slice({ start: passage.end, end: part.end })),
  ];
}
