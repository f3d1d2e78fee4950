// The window: a header with the version, tabs for the views, and the keyboard shortcuts that
// move between them.
import type { Api } from "../api";
import { h } from "../dom";
import { errorMessage } from "../format";
import { mountAsk, type AskView } from "./ask";
import { mountLibrary, type LibraryView } from "./library";
import { mountMemory, type MemoryView } from "./memory";
import { mountReader, type ReaderView } from "./reader";
import { mountSearch, type SearchView } from "./search";
import { mountSettings, type SettingsView } from "./settings";

type ViewName = "library" | "reader" | "search" | "ask" | "memory" | "settings";

export interface App {
  /** Resolves once the header and the library are shown. */
  ready: Promise<void>;
  library: LibraryView;
  reader: ReaderView;
  search: SearchView;
  ask: AskView;
  memory: MemoryView;
  settings: SettingsView;
}

const TABS: Array<[ViewName, string]> = [
  ["library", "Library"],
  ["reader", "Reader"],
  ["search", "Search"],
  ["ask", "Ask"],
  ["memory", "Memory"],
  ["settings", "Settings"],
];

export function mountApp(root: HTMLElement, api: Api, doc: Document): App {
  const name = h(doc, "h1", { id: "app-name" }, "MemReader");
  const version = h(doc, "span", { id: "app-version", class: "version" }, "…");
  const error = h(doc, "p", { id: "app-error", class: "error", role: "alert", hidden: true });

  let known = new Set<string>();
  const reader = mountReader(doc, api);
  const ask = mountAsk(doc, api, (c) => {
    show("reader");
    void reader.open(c.doc_id, { range: c.passage, highlights: [c.range] });
  });
  const memory = mountMemory(doc, api, {
    open: (id, passage, note) => {
      show("reader");
      // A note's token can sit just outside its passage (in a heading): show both.
      const range = { start: Math.min(passage.start, note.start), end: Math.max(passage.end, note.end) };
      void reader.open(id, { range, highlights: [note] });
    },
    imported: () => void ask.reload(),
  });
  const library = mountLibrary(doc, api, {
    open: (id) => {
      show("reader");
      void reader.open(id);
    },
    changed: (documents) => {
      const now = new Set(documents.map((d) => d.id));
      for (const id of known) if (!now.has(id)) reader.forget(id);
      known = now;
      ask.setDocuments(documents);
      void memory.setDocuments(documents);
    },
  });
  const search = mountSearch(doc, api, (hit) => {
    show("reader");
    void reader.open(hit.doc_id, { range: hit.range, highlights: hit.snippet.highlights });
  });
  const settings = mountSettings(doc, api, () => void library.refresh());
  const views: Record<ViewName, { element: HTMLElement; focus(): void }> = {
    library,
    reader,
    search,
    ask,
    memory,
    settings,
  };

  const tabs = TABS.map(([view, label], i) => {
    const tab = h(
      doc,
      "button",
      {
        type: "button",
        role: "tab",
        id: `tab-${view}`,
        "aria-controls": `view-${view}`,
        "aria-keyshortcuts": `Alt+${i + 1}`,
        title: `${label} (Alt+${i + 1})`,
      },
      label,
    );
    tab.addEventListener("click", () => show(view, true));
    return tab;
  });
  const tablist = h(doc, "nav", { class: "tabs", role: "tablist", "aria-label": "Views" }, ...tabs);
  for (const [view] of TABS) {
    const el = views[view].element;
    el.setAttribute("role", "tabpanel");
    el.setAttribute("aria-labelledby", `tab-${view}`);
  }

  root.replaceChildren(
    h(
      doc,
      "header",
      { class: "app-header" },
      h(doc, "div", { class: "brand" }, name, version),
      tablist,
    ),
    error,
    h(doc, "main", {}, ...TABS.map(([view]) => views[view].element)),
  );

  let current: ViewName = "library";
  function show(view: ViewName, focus = false): void {
    current = view;
    TABS.forEach(([v], i) => {
      const selected = v === view;
      tabs[i]!.setAttribute("aria-selected", String(selected));
      tabs[i]!.tabIndex = selected ? 0 : -1;
      views[v].element.hidden = !selected;
    });
    if (view === "settings") void settings.load();
    if (focus) views[view].focus();
  }

  tablist.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    const i = TABS.findIndex(([v]) => v === current);
    const next = TABS[(i + (event.key === "ArrowRight" ? 1 : TABS.length - 1)) % TABS.length]![0];
    show(next);
    tabs[TABS.findIndex(([v]) => v === next)]!.focus();
  });

  doc.addEventListener("keydown", (event) => {
    const typing = event.target instanceof Element && event.target.closest("input, textarea, select, [contenteditable]");
    if (event.altKey && !event.ctrlKey && !event.metaKey && /^[1-6]$/.test(event.key)) {
      event.preventDefault();
      show(TABS[Number(event.key) - 1]![0], true);
    } else if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "o") {
      event.preventDefault();
      show("library");
      void library.add(event.shiftKey);
    } else if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      show("search", true);
    }
  });

  show("library");
  library.focus();
  // Files dragged over the window go to the library, whose panel shows their progress.
  const dragging = api
    .onDrag((event) => {
      if (event.type === "enter") show("library");
    })
    .catch((err: unknown) => {
      error.textContent = `Files dropped on the window cannot be heard: ${errorMessage(err)}`;
      error.hidden = false;
    });

  const ready = Promise.all([
    api.appInfo().then(
      (info) => {
        name.textContent = info.name;
        version.textContent = `v${info.version}`;
        doc.title = info.name;
      },
      (err: unknown) => {
        version.textContent = "version unknown";
        error.textContent = `Cannot reach the MemReader core: ${errorMessage(err)}`;
        error.hidden = false;
      },
    ),
    library.ready,
    dragging,
    ask.ready,
    memory.ready,
  ]).then(() => undefined);

  return { ready, library, reader, search, ask, memory, settings };
}
