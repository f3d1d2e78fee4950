import { beforeEach, describe, expect, it } from "vitest";
import type { Answer, AskEvent, Citation } from "../api";
import { citationLocator, mountAsk } from "./ask";
import { $, fakeApi, record, settle } from "./fake-api";

const citation: Citation = {
  doc_id: "abc",
  title: "Intentions",
  page: null,
  chapter: 1,
  chapter_title: "THE DECAY OF LYING",
  passage: { start: 100, end: 900 },
  quote: "Life imitates Art far more than Art imitates Life.",
  range: { start: 300, end: 351 },
  score: 1.2,
  bm25: 1,
  memory: null,
  held: null,
  model: null,
};

const answer: Answer = {
  question: "Does Life imitate Art?",
  text: "Life imitates Art far more than Art imitates Life.",
  kind: "extracted",
  generated: null,
  confidence: null,
  citations: [citation, { ...citation, chapter_title: null, chapter: null, page: 7, quote: "Second." }],
  notices: ["No model is in use, so search alone answered: the model is missing"],
};

beforeEach(() => document.body.replaceChildren());

describe("citationLocator", () => {
  it("names the page and the chapter", () => {
    expect(citationLocator(citation)).toBe("THE DECAY OF LYING");
    expect(citationLocator({ ...citation, page: 3, chapter_title: null })).toBe("p. 3 · chapter 2");
    expect(citationLocator({ ...citation, chapter: null, chapter_title: null })).toBe("");
  });
});

describe("ask view", () => {
  it("asks, shows the answer, its notices and its citations; a citation opens the reader", async () => {
    const opened: Citation[] = [];
    const api = fakeApi({ ask: () => Promise.resolve(answer) });
    const view = mountAsk(document, api, (c) => opened.push(c));
    document.body.append(view.element);
    await view.ready;
    view.setDocuments([record({ id: "abc", title: "Intentions" }), record({ id: "bad", status: "failed" })]);
    expect([...document.querySelectorAll("#ask-scope option")].map((o) => o.textContent)).toEqual([
      "the whole library",
      "Intentions",
    ]);
    ($("#ask-scope") as HTMLSelectElement).value = "abc";
    const box = $("#ask-question") as HTMLTextAreaElement;
    box.value = "Does Life imitate Art?";
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    await view.ask(""); // busy or empty: does nothing more
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(api.calls.filter(([name]) => name === "ask")).toEqual([
      ["ask", ["Does Life imitate Art?", ["abc"], expect.any(Function)]],
    ]);
    expect($("#ask-answer .answer-text").textContent).toBe(answer.text);
    expect($("#ask-answer .answer-kind").textContent).toBe("The sentence that answers best, from citation [1]");
    expect($("#ask-answer .notices").textContent).toBe(answer.notices[0]);
    const cards = [...document.querySelectorAll<HTMLButtonElement>("#ask-answer button.citation")];
    expect(cards.map((c) => c.textContent)).toEqual([
      "[1] Intentions · THE DECAY OF LYINGLife imitates Art far more than Art imitates Life.",
      "[2] Intentions · p. 7Second.",
    ]);
    expect(document.activeElement).toBe(cards[0]);
    cards[0]!.click();
    expect(opened).toEqual([citation]);
    expect([...document.querySelectorAll("#ask-history li")].map((li) => li.textContent)).toEqual([
      "Does Life imitate Art? · Intentions",
    ]);
  });

  it("shows the answer's text growing as the model writes it, then the answer and its citations", async () => {
    let send: (event: AskEvent) => void = () => {};
    let finish: (a: Answer) => void = () => {};
    const api = fakeApi({
      ask: (_question, _docs, onEvent) => {
        send = onEvent;
        return new Promise((resolve) => (finish = resolve));
      },
    });
    const view = mountAsk(document, api, () => {});
    document.body.append(view.element);
    await view.ready;
    const asked = view.ask("Does Life imitate Art?");
    expect($("#ask-status").textContent).toBe("Looking for the answer…");
    expect($("#ask-answer").hidden).toBe(true);
    const shown = () => $("#ask-answer .answer-text").textContent;
    send({ kind: "delta", text: "Life" });
    expect($("#ask-answer").hidden).toBe(false);
    expect($("#ask-answer .asked").textContent).toBe("Does Life imitate Art?");
    expect(shown()).toBe("Life");
    expect($("#ask-status").textContent).toBe("Writing the answer…");
    send({ kind: "delta", text: " imitates" });
    send({ kind: "delta", text: " Art 🎨" });
    expect(shown()).toBe("Life imitates Art 🎨");
    expect($("#ask-answer .answer-text").classList.contains("streaming")).toBe(true);
    // no citations while it is written, and the view is busy
    expect(document.querySelector("#ask-answer .citations")).toBeNull();
    expect($("#view-ask").getAttribute("aria-busy")).toBe("true");
    // generation abandoned: the extracted answer takes the place of the text so far
    send({ kind: "replace", text: answer.text });
    expect(shown()).toBe(answer.text);
    finish(answer);
    await asked;
    expect(shown()).toBe(answer.text);
    expect($("#ask-answer .answer-text").classList.contains("streaming")).toBe(false);
    expect($("#ask-answer .answer-kind").textContent).toBe("The sentence that answers best, from citation [1]");
    expect(document.querySelectorAll("#ask-answer button.citation")).toHaveLength(2);
    expect($("#ask-status").textContent).toBe("");
    expect($("#view-ask").hasAttribute("aria-busy")).toBe(false);
    // a piece that comes after the answer changes nothing
    send({ kind: "delta", text: " late" });
    expect(shown()).toBe(answer.text);
  });

  it("takes back a streamed answer whose question then fails", async () => {
    const view = mountAsk(
      document,
      fakeApi({
        ask: (_question, _docs, onEvent) => {
          onEvent({ kind: "delta", text: "The owl" });
          return settle().then(() => Promise.reject("the model ran out of memory"));
        },
      }),
      () => {},
    );
    document.body.append(view.element);
    await view.ask("Where does the owl call?");
    expect($("#ask-answer").hidden).toBe(true);
    expect($("#ask-error").textContent).toBe("the model ran out of memory");
    expect($("#ask-status").textContent).toBe("The question could not be answered.");
  });

  it("shows the session's earlier questions, newest first, and their answers again", async () => {
    const older = { ...answer, question: "Who is Vivian?", citations: [] };
    const view = mountAsk(
      document,
      fakeApi({
        history: () =>
          Promise.resolve([
            { asked_at: 1, docs: [], answer: older },
            { asked_at: 2, docs: ["abc"], answer },
          ]),
      }),
      () => {},
    );
    document.body.append(view.element);
    await view.ready;
    view.setDocuments([record({ id: "abc", title: "Intentions" })]);
    const items = [...document.querySelectorAll<HTMLButtonElement>("#ask-history button")];
    expect(items.map((b) => b.textContent)).toEqual(["Does Life imitate Art? · Intentions", "Who is Vivian? · the library"]);
    items[1]!.click();
    expect($("#ask-answer .asked").textContent).toBe("Who is Vivian?");
    expect(document.querySelector("#ask-answer .citations")).toBeNull();
  });

  it("shows why a question could not be answered", async () => {
    const view = mountAsk(
      document,
      fakeApi({ ask: () => Promise.reject("search index /lib/index: damaged") }),
      () => {},
    );
    document.body.append(view.element);
    await view.ask("Why?");
    expect($("#ask-error").textContent).toBe("search index /lib/index: damaged");
    expect($("#ask-status").textContent).toBe("The question could not be answered.");
    await view.ask("   ");
    expect($("#ask-status").textContent).toBe("Type a question first.");
  });

  it("reads the history again on request (after a snapshot import)", async () => {
    let entries: Array<{ asked_at: number; docs: string[]; answer: Answer }> = [];
    const view = mountAsk(document, fakeApi({ history: () => Promise.resolve(entries) }), () => {});
    document.body.append(view.element);
    await view.ready;
    expect(document.querySelectorAll("#ask-history li")).toHaveLength(0);
    entries = [{ asked_at: 1, docs: [], answer }];
    await view.reload();
    expect($("#ask-history").textContent).toBe("Does Life imitate Art? · the library");
  });

  it("shows why the history could not be read", async () => {
    const view = mountAsk(document, fakeApi({ history: () => Promise.reject("sessions/default.json: bad") }), () => {});
    document.body.append(view.element);
    await view.ready;
    expect($("#ask-error").textContent).toBe("The session's history could not be read: sessions/default.json: bad");
  });
});
