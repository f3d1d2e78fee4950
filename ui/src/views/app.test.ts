import { beforeEach, describe, expect, it } from "vitest";
import { $, fakeApi, record, settle } from "./fake-api";
import { mountApp } from "./app";

let root: HTMLElement;
beforeEach(() => {
  document.body.replaceChildren();
  root = document.createElement("div");
  document.body.append(root);
});

function selected(): string | null {
  return document.querySelector('[role="tab"][aria-selected="true"]')?.id ?? null;
}

function key(init: KeyboardEventInit, target: EventTarget = document.body): void {
  target.dispatchEvent(new KeyboardEvent("keydown", { bubbles: true, ...init }));
}

describe("the app", () => {
  it("shows the version and opens on the library", async () => {
    const app = mountApp(root, fakeApi(), document);
    await app.ready;
    expect($("#app-version").textContent).toBe("v1.2.3");
    expect(document.title).toBe("MemReader");
    expect(selected()).toBe("tab-library");
    expect($("#view-library").hidden).toBe(false);
    expect($("#view-reader").hidden).toBe(true);
    expect(document.activeElement).toBe($("#add-files"));
  });

  it("says so when the core cannot be reached", async () => {
    const app = mountApp(root, fakeApi({ appInfo: () => Promise.reject("IPC is down") }), document);
    await app.ready;
    expect($("#app-version").textContent).toBe("version unknown");
    expect($("#app-error").textContent).toBe("Cannot reach the MemReader core: IPC is down");
  });

  it("moves between views with Alt+digit, the arrow keys on the tabs, and / for search", async () => {
    const app = mountApp(root, fakeApi(), document);
    await app.ready;
    key({ key: "2", altKey: true });
    expect(selected()).toBe("tab-reader");
    expect(document.activeElement).toBe($("#reader-text"));
    key({ key: "ArrowRight" }, $("#tab-reader"));
    expect(selected()).toBe("tab-search");
    expect(document.activeElement).toBe($("#tab-search"));
    key({ key: "ArrowLeft" }, $("#tab-search"));
    key({ key: "ArrowLeft" }, $("#tab-reader"));
    key({ key: "ArrowLeft" }, $("#tab-library"));
    expect(selected()).toBe("tab-settings");
    key({ key: "1", altKey: true });
    key({ key: "/" });
    expect(selected()).toBe("tab-search");
    expect(document.activeElement).toBe($("#search-input"));
    // Typing a slash in the search box is just typing.
    key({ key: "/" }, $("#search-input"));
    key({ key: "1", altKey: true });
    expect(selected()).toBe("tab-library");
  });

  it("shows the library when files are dragged over the window", async () => {
    const api = fakeApi();
    const app = mountApp(root, api, document);
    await app.ready;
    key({ key: "3", altKey: true });
    api.fireDrag({ type: "enter" });
    expect(selected()).toBe("tab-library");
    expect($("#drop-overlay").hidden).toBe(false);
  });

  it("Ctrl+O opens the file picker, Ctrl+Shift+O the folder picker", async () => {
    const api = fakeApi();
    const app = mountApp(root, api, document);
    await app.ready;
    key({ key: "o", ctrlKey: true });
    key({ key: "O", ctrlKey: true, shiftKey: true });
    expect(api.calls.filter(([name]) => name === "pickAndIngest")).toEqual([
      ["pickAndIngest", [false]],
      ["pickAndIngest", [true]],
    ]);
  });

  it("a search hit opens the reader at its passage; a removed document leaves the reader", async () => {
    let docs = [record({ id: "abc", title: "Owls" })];
    const text = "Owls hoot at night.";
    const api = fakeApi({
      documents: () => Promise.resolve(docs),
      documentText: () =>
        Promise.resolve({ record: docs[0]!, document: { title: "Owls", author: null, language: null, text, chapters: [], pages: [] } }),
      search: () =>
        Promise.resolve([
          {
            doc_id: "abc",
            title: "Owls",
            passage_id: "abc:0",
            score: 1,
            page: null,
            chapter: null,
            chapter_title: null,
            range: { start: 5, end: 18 },
            snippet: { text, range: { start: 0, end: 19 }, highlights: [{ start: 5, end: 9 }] },
          },
        ]),
    });
    const app = mountApp(root, api, document);
    await app.ready;
    await app.search.search("hoot");
    ($("#search-results button") as HTMLButtonElement).click();
    expect(selected()).toBe("tab-reader");
    await settle();
    expect($("#reader-highlight").textContent).toBe("hoot at night");
    expect($("#reader-highlight mark.term").textContent).toBe("hoot");
    docs = [];
    await app.library.refresh();
    expect($("#reader-title").textContent).toBe("Reader");
  });
});

describe("the memory view's notes", () => {
  it("open the reader with the note highlighted, even where it sits just before its passage", async () => {
    const text = "NIGHT BIRDS\n\nOwls hoot at night.";
    const docs = [record({ id: "abc", title: "Owls" })];
    const app = mountApp(
      root,
      fakeApi({
        documents: () => Promise.resolve(docs),
        documentText: () =>
          Promise.resolve({ record: docs[0]!, document: { title: "Owls", author: null, language: null, text, chapters: [], pages: [] } }),
        memories: () =>
          Promise.resolve({ abc: { doc_id: "abc", title: "Owls", tokens_read: 9, total_tokens: 9, target_tokens: 9, seconds: 1, updated_at: 0 } }),
        notes: () =>
          Promise.resolve({
            doc_id: "abc",
            title: "Owls",
            tokens_read: 9,
            total_tokens: 9,
            bin_tokens: 1,
            histogram: [],
            layers: [
              { layer: 0, slots: 4, notes: [{ position: 1, score: 1, char_offset: 6, passage: { start: 13, end: 32 }, page: null, chapter: null, excerpt: "BIRDS" }] },
            ],
          }),
      }),
      document,
    );
    await app.ready;
    await settle();
    await app.memory.inspect("abc");
    ($("#notes-list button.note") as HTMLButtonElement).click();
    expect(selected()).toBe("tab-reader");
    await settle();
    expect($("#reader-highlight").textContent).toBe("BIRDS\n\nOwls hoot at night.");
    expect($("#reader-highlight mark.term").textContent).toBe("BIRDS");
  });
});
