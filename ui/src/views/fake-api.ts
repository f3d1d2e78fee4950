// A fake `Api` for the views' tests: every command answers from the overrides given (else a
// harmless default), calls are recorded, and the test fires `ingest` and drag events itself.
import type { Api, DocumentRecord, DragEvent, IngestEvent, ReadEvent } from "../api";

export type FakeApi = Api & {
  calls: Array<[string, unknown[]]>;
  fireIngest(event: IngestEvent): void;
  fireRead(event: ReadEvent): void;
  fireDrag(event: DragEvent): void;
};

export function record(over: Partial<DocumentRecord> & { id: string }): DocumentRecord {
  return {
    path: `/books/${over.id}.txt`,
    format: "text",
    title: null,
    author: null,
    language: null,
    status: "ready",
    bytes: 1000,
    pages: 0,
    chapters: 1,
    passages: 3,
    words: 500,
    error: null,
    added_at: 0,
    updated_at: 0,
    ...over,
  };
}

export function fakeApi(over: Partial<Api> = {}): FakeApi {
  const ingestListeners = new Set<(e: IngestEvent) => void>();
  const readListeners = new Set<(e: ReadEvent) => void>();
  const dragListeners = new Set<(e: DragEvent) => void>();
  const calls: Array<[string, unknown[]]> = [];
  const base: Api = {
    appInfo: () => Promise.resolve({ name: "MemReader", version: "1.2.3" }),
    documents: () => Promise.resolve([]),
    documentText: () => Promise.reject("no document"),
    search: () => Promise.resolve([]),
    removeDocument: (id) => Promise.resolve(record({ id })),
    pickAndIngest: () => Promise.resolve(null),
    cancelJob: () => Promise.resolve(true),
    runningJob: () => Promise.resolve(null),
    modelInfo: () => Promise.reject("no model"),
    memories: () => Promise.resolve({}),
    readDocuments: () => Promise.resolve(1),
    ask: () => Promise.reject("no answer"),
    history: () => Promise.resolve([]),
    notes: () => Promise.reject("no notes"),
    exportSnapshot: () => Promise.resolve(null),
    importSnapshot: () => Promise.resolve(null),
    settings: () => Promise.reject("no settings"),
    setDevice: () => Promise.reject("no settings"),
    chooseLibrary: () => Promise.resolve(null),
    onIngest: (listener) => {
      ingestListeners.add(listener);
      return Promise.resolve(() => ingestListeners.delete(listener));
    },
    onRead: (listener) => {
      readListeners.add(listener);
      return Promise.resolve(() => readListeners.delete(listener));
    },
    onDrag: (listener) => {
      dragListeners.add(listener);
      return Promise.resolve(() => dragListeners.delete(listener));
    },
  };
  const merged = { ...base, ...over };
  const api = {} as FakeApi;
  for (const [name, fn] of Object.entries(merged) as Array<[keyof Api, (...args: unknown[]) => unknown]>) {
    (api as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
      calls.push([name, args]);
      return fn(...args);
    };
  }
  api.calls = calls;
  api.fireIngest = (event) => ingestListeners.forEach((l) => l(event));
  api.fireRead = (event) => readListeners.forEach((l) => l(event));
  api.fireDrag = (event) => dragListeners.forEach((l) => l(event));
  return api;
}

/** The element for `selector`; throws when there is none. */
export function $(selector: string): HTMLElement {
  const el = document.querySelector<HTMLElement>(selector);
  if (!el) throw new Error(`no element ${selector}`);
  return el;
}

/** Lets pending promise callbacks run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
