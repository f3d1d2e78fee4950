import { beforeEach, describe, expect, it } from "vitest";
import type { Api, AppInfo, BookSummary } from "../api";
import { mountHome } from "./home";

const books: BookSummary[] = [
  {
    title: "Household Stories",
    author: "Jacob and Wilhelm Grimm",
    file: "household-stories-grimm.txt",
    words: 104321,
    chapters: 60,
    passages: 470,
  },
  {
    title: "Intentions",
    author: null,
    file: "intentions-wilde.txt",
    words: 61234,
    chapters: 4,
    passages: 280,
  },
];

/** A fake core whose answers the test controls; counts the calls. */
function fakeApi(opts: {
  info?: () => Promise<AppInfo>;
  books?: () => Promise<BookSummary[]>;
} = {}): Api & { bookCalls: number } {
  const api = {
    bookCalls: 0,
    appInfo: opts.info ?? (() => Promise.resolve({ name: "MemReader", version: "1.2.3" })),
    demoBooks: () => {
      api.bookCalls += 1;
      return (opts.books ?? (() => Promise.resolve(books)))();
    },
  };
  return api;
}

function $(selector: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`no element ${selector}`);
  return el;
}

function rowTexts(): string[][] {
  return [...document.querySelectorAll("#books tbody tr")].map((tr) =>
    [...tr.children].map((cell) => cell.textContent ?? ""),
  );
}

let root: HTMLElement;
beforeEach(() => {
  document.body.replaceChildren();
  root = document.createElement("div");
  document.body.append(root);
});

describe("home view", () => {
  it("shows the name and version from the core and focuses the button", async () => {
    const home = mountHome(root, fakeApi(), document);
    await home.ready;
    expect($("#app-name").textContent).toBe("MemReader");
    expect($("#app-version").textContent).toBe("v1.2.3");
    expect(document.title).toBe("MemReader");
    expect(document.activeElement).toBe($("#open-library"));
    expect($("#books").hidden).toBe(true);
  });

  it("says so when the core cannot be reached", async () => {
    const api = fakeApi({ info: () => Promise.reject("IPC is down") });
    const home = mountHome(root, api, document);
    await home.ready;
    expect($("#app-version").textContent).toBe("version unknown");
    expect($("#error").hidden).toBe(false);
    expect($("#error").textContent).toContain("IPC is down");
  });

  it("lists the books the core returns when the button is clicked", async () => {
    const api = fakeApi();
    const home = mountHome(root, api, document);
    await home.ready;
    $("#open-library").click();
    await home.openLibrary(); // already running: waits for nothing, calls nothing more
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(api.bookCalls).toBe(1);
    expect($("#books").hidden).toBe(false);
    expect(rowTexts()).toEqual([
      ["Household Stories", "Jacob and Wilhelm Grimm", "104,321", "60", "470"],
      ["Intentions", "Unknown author", "61,234", "4", "280"],
    ]);
    expect($("#status").textContent).toMatch(/^2 books, 165,555 words, opened in \d+\.\d s\.$/);
    expect(($("#open-library") as HTMLButtonElement).disabled).toBe(false);
  });

  it("is busy while the core works and ignores a second request", async () => {
    let finish: (value: BookSummary[]) => void = () => {};
    const api = fakeApi({ books: () => new Promise((resolve) => (finish = resolve)) });
    const home = mountHome(root, api, document);
    const first = home.openLibrary();
    expect(($("#open-library") as HTMLButtonElement).disabled).toBe(true);
    expect($(".library").getAttribute("aria-busy")).toBe("true");
    expect($("#status").textContent).toBe("Opening the demo books…");
    await home.openLibrary();
    expect(api.bookCalls).toBe(1);
    finish(books.slice(1));
    await first;
    expect($(".library").hasAttribute("aria-busy")).toBe(false);
    expect(rowTexts()).toHaveLength(1);
    expect($("#status").textContent).toMatch(/^1 book, 61,234 words/);
  });

  it("opens the library with the O key, but not while typing or with a modifier", async () => {
    const api = fakeApi();
    mountHome(root, api, document);
    const input = document.createElement("input");
    document.body.append(input);
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "o", bubbles: true }));
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "o", ctrlKey: true }));
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "p" }));
    expect(api.bookCalls).toBe(0);
    document.dispatchEvent(new KeyboardEvent("keydown", { key: "O" }));
    expect(api.bookCalls).toBe(1);
  });

  it("shows the core's error and lets the user try again", async () => {
    let fail = true;
    const api = fakeApi({
      books: () =>
        fail ? Promise.reject("assets/demo/x.txt: the file contains no text") : Promise.resolve(books),
    });
    const home = mountHome(root, api, document);
    await home.openLibrary();
    expect($("#error").hidden).toBe(false);
    expect($("#error").textContent).toBe("assets/demo/x.txt: the file contains no text");
    expect($("#status").textContent).toBe("The demo books could not be opened.");
    expect($("#books").hidden).toBe(true);
    fail = false;
    await home.openLibrary();
    expect($("#error").hidden).toBe(true);
    expect(rowTexts()).toHaveLength(2);
  });

  it("says when the library is empty", async () => {
    const home = mountHome(root, fakeApi({ books: () => Promise.resolve([]) }), document);
    await home.openLibrary();
    expect($("#books").hidden).toBe(true);
    expect($("#status").textContent).toBe("The demo library has no books.");
  });

  it("renders a title as text, never as markup", async () => {
    const evil = { ...books[0]!, title: "<img src=x onerror=alert(1)>" };
    const home = mountHome(root, fakeApi({ books: () => Promise.resolve([evil]) }), document);
    await home.openLibrary();
    expect(document.querySelector("#books img")).toBeNull();
    expect(rowTexts()[0]![0]).toBe("<img src=x onerror=alert(1)>");
  });
});
