import { beforeEach, describe, expect, it } from "vitest";
import type { DocumentText } from "../api";
import { CodePoints } from "../text";
import { $, fakeApi, record } from "./fake-api";
import { mountReader, render } from "./reader";

// Chapters by char (code point) offsets: "🦉" is one char in Rust, two UTF-16 units in JS.
const text = "Preface.\n🦉 ONE\nThe owl 🦉 flew over the moon.\n🦉 TWO\nThe end.";
const chars = [...text];
/** The char offset where `s` first starts in the text. */
const at = (s: string) => [...text.slice(0, text.indexOf(s))].length;
const book: DocumentText = {
  record: record({ id: "abc", title: "Owls", author: "A. Birder", path: "/books/owls.txt" }),
  document: {
    title: "Owls",
    author: null,
    language: "en",
    text,
    chapters: [
      { title: "ONE", range: { start: at("🦉 ONE"), end: at("🦉 TWO") } },
      { title: "TWO", range: { start: at("🦉 TWO"), end: chars.length } },
    ],
    pages: [],
  },
};

beforeEach(() => document.body.replaceChildren());

function mount(fetches: string[] = []) {
  const api = fakeApi({
    documentText: (id) => {
      fetches.push(id);
      return id === "abc" ? Promise.resolve(book) : Promise.reject(`no document with id "${id}" in the library`);
    },
  });
  const view = mountReader(document, api);
  document.body.append(view.element);
  return view;
}

describe("render", () => {
  it("highlights a passage and its words by char offsets, astral characters included", () => {
    const points = new CodePoints(text);
    const passage = { start: at("The owl"), end: at("\n🦉 TWO") };
    const owl = { start: at("owl 🦉"), end: at("owl 🦉") + 3 };
    const moon = { start: at("moon"), end: at("moon") + 4 };
    const nodes = render(document, points, { start: at("🦉 ONE"), end: at("🦉 TWO") }, {
      range: passage,
      highlights: [moon, owl, { start: 0, end: 3 }],
    });
    const div = document.createElement("div");
    div.append(...nodes);
    expect(div.textContent).toBe("🦉 ONE\nThe owl 🦉 flew over the moon.\n");
    expect(div.querySelector("#reader-highlight")!.textContent).toBe("The owl 🦉 flew over the moon.");
    expect([...div.querySelectorAll("mark.term")].map((m) => m.textContent)).toEqual(["owl", "moon"]);
  });

  it("shows the part as plain text without a target", () => {
    const nodes = render(document, new CodePoints(text), { start: 0, end: 9 }, null);
    expect(nodes.map((n) => n.textContent)).toEqual(["Preface.\n"]);
  });
});

describe("reader view", () => {
  it("opens a document at its target's chapter with the passage highlighted and focused", async () => {
    const view = mount();
    await view.open("abc", { range: { start: at("The end"), end: chars.length }, highlights: [] });
    expect($("#reader-title").textContent).toBe("Owls");
    expect($("#reader-byline").textContent).toBe("A. Birder · /books/owls.txt");
    expect($("#reader-empty").hidden).toBe(true);
    expect([...document.querySelectorAll("#reader-part option")].map((o) => o.textContent)).toEqual([
      "Beginning",
      "ONE",
      "TWO",
    ]);
    expect($("#reader-position").textContent).toBe("3 of 3");
    expect($("#reader-highlight").textContent).toBe("The end.");
    expect(document.activeElement).toBe($("#reader-highlight"));
    expect(($("#reader-next") as HTMLButtonElement).disabled).toBe(true);
  });

  it("moves between parts with the buttons, the list and the [ ] keys", async () => {
    const fetches: string[] = [];
    const view = mount(fetches);
    await view.open("abc");
    expect($("#reader-position").textContent).toBe("1 of 3");
    expect($("#reader-text").textContent).toBe("Preface.\n");
    $("#reader-next").click();
    expect($("#reader-text").textContent).toBe("🦉 ONE\nThe owl 🦉 flew over the moon.\n");
    const select = $("#reader-part") as HTMLSelectElement;
    select.value = "2";
    select.dispatchEvent(new Event("change"));
    expect($("#reader-position").textContent).toBe("3 of 3");
    $("#reader-text").dispatchEvent(new KeyboardEvent("keydown", { key: "[", bubbles: true }));
    expect($("#reader-position").textContent).toBe("2 of 3");
    $("#reader-text").dispatchEvent(new KeyboardEvent("keydown", { key: "]", ctrlKey: true, bubbles: true }));
    expect($("#reader-position").textContent).toBe("2 of 3");
    // Opening the same document again does not fetch its text again.
    await view.open("abc", { range: { start: 0, end: 8 }, highlights: [] });
    expect(fetches).toEqual(["abc"]);
    expect($("#reader-highlight").textContent).toBe("Preface.");
  });

  it("shows why a document could not be opened", async () => {
    const view = mount();
    await view.open("zzzz");
    expect($("#reader-error").hidden).toBe(false);
    expect($("#reader-error").textContent).toBe('The document could not be opened: no document with id "zzzz" in the library');
  });

  it("forgets a removed document", async () => {
    const view = mount();
    await view.open("abc");
    view.forget("other");
    expect($("#reader-title").textContent).toBe("Owls");
    view.forget("abc");
    expect($("#reader-title").textContent).toBe("Reader");
    expect($("#reader-empty").hidden).toBe(false);
    expect($("#reader-text").textContent).toBe("");
  });
});
