import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Hit } from "../api";
import { $, fakeApi } from "./fake-api";
import { DEBOUNCE_MS, locator, mountSearch, snippet } from "./search";

function hit(over: Partial<Hit> = {}): Hit {
  // The snippet starts at char 100 of the document; "🦉" is one char, two UTF-16 units.
  const text = "🦉 the tawny owl calls";
  return {
    doc_id: "abc",
    title: "Night birds",
    passage_id: "abc:90",
    score: 3.5,
    page: null,
    chapter: 2,
    chapter_title: "Owls",
    range: { start: 90, end: 140 },
    snippet: { text, range: { start: 100, end: 100 + [...text].length }, highlights: [{ start: 106, end: 111 }, { start: 112, end: 115 }] },
    ...over,
  };
}

beforeEach(() => {
  document.body.replaceChildren();
  vi.useFakeTimers();
});
afterEach(() => vi.useRealTimers());

function type(value: string): void {
  const input = $("#search-input") as HTMLInputElement;
  input.value = value;
  input.dispatchEvent(new Event("input"));
}

describe("snippet", () => {
  it("marks the matched words by char offsets from the snippet's start", () => {
    const div = document.createElement("div");
    div.append(...snippet(document, hit().snippet));
    expect(div.innerHTML).toBe("🦉 the <mark>tawny</mark> <mark>owl</mark> calls");
  });
});

describe("locator", () => {
  it("names the page and the chapter", () => {
    expect(locator(hit())).toBe("Owls");
    expect(locator(hit({ page: 12, chapter_title: null }))).toBe("p. 12 · chapter 3");
    expect(locator(hit({ page: null, chapter: null, chapter_title: null }))).toBe("");
  });
});

describe("search view", () => {
  it("searches once typing pauses, and a hit opens the reader", async () => {
    const queries: string[] = [];
    const opened: Hit[] = [];
    const view = mountSearch(
      document,
      fakeApi({
        search: (q) => {
          queries.push(q);
          return Promise.resolve([hit()]);
        },
      }),
      (h) => opened.push(h),
    );
    document.body.append(view.element);
    type("ta");
    await vi.advanceTimersByTimeAsync(DEBOUNCE_MS - 50);
    type("tawny owl");
    await vi.advanceTimersByTimeAsync(DEBOUNCE_MS - 50);
    expect(queries).toEqual([]);
    await vi.advanceTimersByTimeAsync(50);
    expect(queries).toEqual(["tawny owl"]);
    expect($("#search-status").textContent).toBe("1 passage (best first).");
    expect($("#search-results").textContent).toBe("Night birds · Owls🦉 the tawny owl calls");
    ($("#search-results button") as HTMLButtonElement).click();
    expect(opened).toEqual([hit()]);
  });

  it("ignores an answer that a newer query overtook", async () => {
    const pending: Array<(hits: Hit[]) => void> = [];
    const view = mountSearch(document, fakeApi({ search: () => new Promise((resolve) => pending.push(resolve)) }), () => {});
    document.body.append(view.element);
    const first = view.search("owl");
    const second = view.search("tawny");
    pending[1]!([hit({ title: "New" })]);
    await second;
    pending[0]!([hit({ title: "Old" })]);
    await first;
    expect($("#search-results .hit-title").textContent).toBe("New · Owls");
  });

  it("says when nothing matches, clears on an empty query, and shows errors", async () => {
    let fail = false;
    const view = mountSearch(
      document,
      fakeApi({ search: () => (fail ? Promise.reject("search index /lib/index: damaged") : Promise.resolve([])) }),
      () => {},
    );
    document.body.append(view.element);
    await view.search("zebra");
    expect($("#search-status").textContent).toBe("No passage matches “zebra”.");
    fail = true;
    await view.search("zebra");
    expect($("#search-error").hidden).toBe(false);
    expect($("#search-error").textContent).toBe("search index /lib/index: damaged");
    await view.search("  ");
    expect($("#search-error").hidden).toBe(true);
    expect($("#search-results").children).toHaveLength(0);
  });

  it("moves from the box to the results and back with the arrow keys", async () => {
    const view = mountSearch(document, fakeApi({ search: () => Promise.resolve([hit(), hit({ passage_id: "abc:200" })]) }), () => {});
    document.body.append(view.element);
    await view.search("owl");
    const input = $("#search-input");
    input.focus();
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    const buttons = document.querySelectorAll<HTMLButtonElement>("#search-results button");
    expect(document.activeElement).toBe(buttons[0]);
    buttons[0]!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(document.activeElement).toBe(buttons[1]);
    buttons[1]!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    buttons[0]!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowUp", bubbles: true }));
    expect(document.activeElement).toBe(input);
  });
});
