// Ask: a question of one document or the whole library; the answer's text as the model writes
// it, then the answer with its citations as cards that open the reader at the quoted sentence,
// and the session's earlier questions.
import type { Answer, Api, AskEvent, Citation, DocumentRecord, HistoryEntry } from "../api";
import { h } from "../dom";
import { errorMessage, fileName, plural } from "../format";

export interface AskView {
  element: HTMLElement;
  /** Resolves once the session's history is shown (or why not). */
  ready: Promise<void>;
  /** Reads the session's history again (after a snapshot was imported into it). */
  reload(): Promise<void>;
  /** Asks `question` (what the button does with the box's text). */
  ask(question: string): Promise<void>;
  /** The documents the question can be limited to. */
  setDocuments(documents: DocumentRecord[]): void;
  focus(): void;
}

const KIND_TEXT: Record<Answer["kind"], string> = {
  generated: "Answered by the model from citation [1]",
  extracted: "The sentence that answers best, from citation [1]",
  none: "Nothing in the documents answers this",
};

/** Where a citation is: "p. 3 · The Chapter", "chapter 2", or "". */
export function citationLocator(c: Citation): string {
  const parts: string[] = [];
  if (c.page !== null) parts.push(`p. ${c.page}`);
  if (c.chapter_title) parts.push(c.chapter_title);
  else if (c.chapter !== null) parts.push(`chapter ${c.chapter + 1}`);
  return parts.join(" · ");
}

export function mountAsk(doc: Document, api: Api, open: (citation: Citation) => void): AskView {
  const question = h(doc, "textarea", {
    id: "ask-question",
    rows: "2",
    placeholder: "Ask a question about your documents",
    "aria-label": "Question",
    "aria-describedby": "ask-hint",
  });
  const scope = h(doc, "select", { id: "ask-scope", "aria-label": "Ask of" });
  const submit = h(doc, "button", { type: "submit", id: "ask-submit" }, "Ask");
  const form = h(
    doc,
    "form",
    { class: "ask-form" },
    question,
    h(doc, "div", { class: "actions" }, h(doc, "label", { for: "ask-scope" }, "Ask of "), scope, submit),
    h(doc, "p", { id: "ask-hint", class: "muted hint" }, "Enter asks; Shift+Enter starts a new line."),
  );
  const status = h(doc, "p", { id: "ask-status", class: "muted", role: "status" });
  const error = h(doc, "p", { id: "ask-error", class: "error", role: "alert", hidden: true });
  const answerBox = h(doc, "div", { id: "ask-answer", class: "answer", hidden: true, "aria-live": "polite" });
  const historyList = h(doc, "ol", { id: "ask-history", class: "history", reversed: true });
  const historyBox = h(
    doc,
    "section",
    { class: "history-box", "aria-labelledby": "history-heading", hidden: true },
    h(doc, "h3", { id: "history-heading" }, "Earlier questions"),
    historyList,
  );
  const element = h(
    doc,
    "section",
    { id: "view-ask", class: "view", "aria-labelledby": "ask-heading" },
    h(doc, "h2", { id: "ask-heading" }, "Ask"),
    form,
    status,
    error,
    answerBox,
    historyBox,
  );

  let history: HistoryEntry[] = [];
  let titles = new Map<string, string>();

  function showAnswer(a: Answer): void {
    const cards = a.citations.map((c, i) => {
      const where = citationLocator(c);
      const card = h(
        doc,
        "button",
        { type: "button", class: "citation", "data-doc": c.doc_id },
        h(doc, "span", { class: "cite-title" }, `[${i + 1}] ${c.title}`, where ? h(doc, "span", { class: "muted" }, ` · ${where}`) : ""),
        h(doc, "q", { class: "quote" }, c.quote),
      );
      card.addEventListener("click", () => open(c));
      return h(doc, "li", {}, card);
    });
    answerBox.replaceChildren(
      h(doc, "h3", { class: "asked" }, a.question),
      h(doc, "p", { class: `answer-text ${a.kind}` }, a.text || "—"),
      h(doc, "p", { class: "muted answer-kind" }, KIND_TEXT[a.kind]),
      ...(a.notices.length > 0 ? [h(doc, "ul", { class: "notices" }, ...a.notices.map((n) => h(doc, "li", {}, n)))] : []),
      ...(cards.length > 0
        ? [h(doc, "h4", {}, plural(cards.length, "citation")), h(doc, "ol", { class: "citations" }, ...cards)]
        : []),
    );
    answerBox.hidden = false;
  }

  function renderHistory(): void {
    historyList.replaceChildren(
      ...[...history].reverse().map((entry) => {
        const scopeText = entry.docs.length === 0 ? "the library" : entry.docs.map((d) => titles.get(d) ?? d.slice(0, 8)).join(", ");
        const item = h(
          doc,
          "button",
          { type: "button", class: "link past" },
          entry.answer.question,
          h(doc, "span", { class: "muted" }, ` · ${scopeText}`),
        );
        item.addEventListener("click", () => showAnswer(entry.answer));
        return h(doc, "li", {}, item);
      }),
    );
    historyBox.hidden = history.length === 0;
  }

  let busy = false;
  async function ask(text: string): Promise<void> {
    if (busy) return;
    if (text.trim() === "") {
      status.textContent = "Type a question first.";
      question.focus();
      return;
    }
    busy = true;
    submit.disabled = true;
    element.setAttribute("aria-busy", "true");
    error.hidden = true;
    status.textContent = "Looking for the answer…";
    const docs = scope.value === "" ? [] : [scope.value];
    // The answer's text as it streams, shown from its first piece until the answer comes (an
    // earlier question opened from the history meanwhile stays open).
    const streaming = h(doc, "p", { class: "answer-text streaming" });
    let streamed: string | null = null;
    let answered = false;
    const onEvent = (event: AskEvent) => {
      if (answered) return;
      if (streamed === null) {
        answerBox.replaceChildren(h(doc, "h3", { class: "asked" }, text), streaming);
        answerBox.hidden = false;
        status.textContent = "Writing the answer…";
      }
      streamed = event.kind === "delta" ? (streamed ?? "") + event.text : event.text;
      streaming.textContent = streamed;
    };
    try {
      const answer = await api.ask(text, docs, onEvent);
      answered = true;
      showAnswer(answer);
      history.push({ asked_at: Date.now() / 1000, docs, answer });
      renderHistory();
      status.textContent = "";
      answerBox.querySelector<HTMLElement>("button.citation")?.focus();
    } catch (err) {
      answered = true;
      if (streaming.parentNode === answerBox) answerBox.hidden = true;
      error.textContent = errorMessage(err);
      error.hidden = false;
      status.textContent = "The question could not be answered.";
    } finally {
      busy = false;
      submit.disabled = false;
      element.removeAttribute("aria-busy");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    void ask(question.value);
  });
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      void ask(question.value);
    }
  });

  const reload = () =>
    api.history().then(
      (entries) => {
        history = entries;
        renderHistory();
      },
      (err: unknown) => {
        error.textContent = `The session's history could not be read: ${errorMessage(err)}`;
        error.hidden = false;
      },
    );

  return {
    element,
    ready: reload(),
    reload,
    ask,
    setDocuments(documents) {
      titles = new Map(documents.map((d) => [d.id, d.title ?? fileName(d.path)]));
      const chosen = scope.value;
      scope.replaceChildren(
        h(doc, "option", { value: "" }, "the whole library"),
        ...documents.filter((d) => d.status === "ready").map((d) => h(doc, "option", { value: d.id }, titles.get(d.id)!)),
      );
      scope.value = [...scope.options].some((o) => o.value === chosen) ? chosen : "";
      renderHistory();
    },
    focus: () => question.focus(),
  };
}
