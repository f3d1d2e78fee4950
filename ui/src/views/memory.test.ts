import { beforeEach, describe, expect, it } from "vitest";
import type { MemoryInfo, NotesReport, Range } from "../api";
import { $, fakeApi, record, settle } from "./fake-api";
import { BINS, density, level, mountMemory } from "./memory";

const info: MemoryInfo = {
  doc_id: "abc",
  title: "Owls",
  tokens_read: 600,
  total_tokens: 600,
  target_tokens: 600,
  seconds: 3,
  updated_at: 0,
};

const report: NotesReport = {
  doc_id: "abc",
  title: "Owls",
  tokens_read: 600,
  total_tokens: 600,
  bin_tokens: 10,
  histogram: [],
  layers: [
    {
      layer: 0,
      slots: 4,
      notes: [
        { position: 5, score: 0.9, char_offset: 20, passage: { start: 0, end: 100 }, page: null, chapter: 0, excerpt: "The tawny 🦉 owl" },
        { position: 7, score: 0.5, char_offset: 30, passage: { start: 0, end: 100 }, page: null, chapter: 0, excerpt: "calls" },
      ],
    },
    {
      layer: 1,
      slots: 4,
      notes: [{ position: 595, score: 0.1, char_offset: 580, passage: null, page: 2, chapter: null, excerpt: "end" }],
    },
  ],
};

beforeEach(() => document.body.replaceChildren());

function mount(over: Parameters<typeof fakeApi>[0] = {}) {
  const opened: Array<[string, Range, Range]> = [];
  const imports: number[] = [];
  const api = fakeApi(over);
  const view = mountMemory(document, api, {
    open: (id, passage, note) => opened.push([id, passage, note]),
    imported: () => imports.push(1),
  });
  document.body.append(view.element);
  return { api, view, opened, imports };
}

describe("density and level", () => {
  it("counts notes per slice, the last slice taking what is past the end", () => {
    expect(density([0, 9, 10, 25, 999], 10, 3)).toEqual([2, 1, 2]);
    expect(density([], 10, 2)).toEqual([0, 0]);
  });

  it("shades counts from 0 to 4 against the most", () => {
    expect([0, 1, 2, 5, 10].map((n) => level(n, 10))).toEqual([0, 1, 1, 2, 4]);
    expect(level(3, 0)).toBe(0);
  });
});

describe("memory view", () => {
  it("shows the strip per layer and the notes; a note opens the reader at its passage", async () => {
    const { view, opened, api } = mount({
      memories: () => Promise.resolve({ abc: info }),
      notes: () => Promise.resolve(report),
    });
    await view.ready;
    await view.setDocuments([record({ id: "abc", title: "Owls" })]);
    expect($("#memory-status").textContent).toBe("Read: 600 tokens in 0:03.");
    await view.inspect("abc");
    expect(api.calls.find(([name]) => name === "notes")).toEqual(["notes", ["abc", BINS]]);
    const rows = [...document.querySelectorAll("#notes-strip .strip-row")];
    expect(rows.map((r) => r.querySelector(".strip-label")!.textContent)).toEqual(["Layer 0", "Layer 1"]);
    const bins = rows.map((r) => [...r.querySelectorAll(".bin")].map((b) => b.className));
    expect(bins[0]).toHaveLength(BINS);
    expect(bins[0]![0]).toBe("bin l4");
    expect(bins[0]!.slice(1).every((c) => c === "bin l0")).toBe(true);
    expect(bins[1]![BINS - 1]).toBe("bin l2");
    const notes = [...document.querySelectorAll<HTMLButtonElement>("#notes-list button")];
    expect(notes.map((n) => n.textContent)).toEqual([
      "layer 0 token 5 · chapter 1 · score 0.90 The tawny 🦉 owl…",
      "layer 0 token 7 · chapter 1 · score 0.50 calls…",
      "layer 1 token 595 · p. 2 · score 0.10 end…",
    ]);
    expect(notes[2]!.disabled).toBe(true);
    notes[0]!.click();
    // The excerpt is 15 chars (the owl emoji is one), though 16 UTF-16 units.
    expect(opened).toEqual([["abc", { start: 0, end: 100 }, { start: 20, end: 35 }]]);
  });

  it("reads a document with live progress, then shows its notes", async () => {
    let memories: Record<string, MemoryInfo> = {};
    const { view, api } = mount({ memories: () => Promise.resolve(memories), notes: () => Promise.resolve(report) });
    await view.ready;
    await view.setDocuments([record({ id: "abc", title: "Owls" })]);
    expect($("#memory-status").textContent).toBe("Not read into memory yet.");
    expect($("#inspector").hidden).toBe(true);
    $("#read-doc").click();
    await settle();
    expect(api.calls.find(([name]) => name === "readDocuments")).toEqual(["readDocuments", [["abc"]]]);
    api.fireRead({ kind: "started", job: 1, titles: ["Owls"] });
    expect($("#read-title").textContent).toBe("Reading Owls");
    expect(($("#read-doc") as HTMLButtonElement).disabled).toBe(true);
    api.fireRead({ kind: "progress", job: 1, index: 0, count: 1, doc_id: "abc", done: 300, target: 600, resumed_from: 100, seconds: 2 });
    expect($("#read-counts").textContent).toBe("300 of 600 tokens · 100 tokens/s · about 0:03 left");
    api.fireRead({
      kind: "document",
      job: 1,
      index: 0,
      count: 1,
      doc_id: "abc",
      title: "Owls",
      report: {
        doc_id: "abc",
        title: "Owls",
        tokens_read: 600,
        total_tokens: 600,
        resumed_from: 100,
        seconds: 5,
        tokens_per_second: 100,
        up_to_date: false,
        cancelled: false,
        restarted: null,
        memory_bytes: 2048,
      },
      error: null,
    });
    expect($("#read-results").textContent).toBe("Owls: read 500 tokens in 0:05; memory 2.0 KB.");
    memories = { abc: info };
    api.fireRead({ kind: "finished", job: 1, read: 1, failed: 0, cancelled: false });
    expect($("#read-title").textContent).toBe("Reading finished");
    await settle();
    await settle();
    expect($("#inspector").hidden).toBe(false);
    expect(($("#read-doc") as HTMLButtonElement).disabled).toBe(false);
  });

  it("reports a document that failed and a stopped reading", async () => {
    const { view, api } = mount();
    await view.ready;
    api.fireRead({ kind: "started", job: 2, titles: ["A", "B"] });
    expect($("#read-title").textContent).toBe("Reading 2 documents");
    $("#cancel-read").click();
    expect(api.calls.at(-1)![0]).toBe("cancelJob");
    api.fireRead({ kind: "document", job: 2, index: 0, count: 2, doc_id: "a", title: "A", report: null, error: "the model is missing" });
    api.fireRead({ kind: "finished", job: 2, read: 0, failed: 1, cancelled: true });
    expect($("#read-results").textContent).toBe("A: the model is missing");
    expect($("#read-title").textContent).toBe("Reading was stopped");
    expect($("#read-counts").textContent).toBe("0 documents read, 1 failed.");
  });

  it("shows the errors of reading and of the notes", async () => {
    const { view } = mount({
      memories: () => Promise.resolve({ abc: info }),
      readDocuments: () => Promise.reject("Files are being added; wait for that to finish or cancel it first."),
      notes: () => Promise.reject("the model is missing: /m/config.json does not exist"),
    });
    await view.ready;
    await view.setDocuments([record({ id: "abc" })]);
    await view.inspect("abc");
    expect($("#memory-error").textContent).toBe("The notes could not be shown: the model is missing: /m/config.json does not exist");
    $("#read-doc").click();
    await settle();
    expect($("#memory-error").textContent).toBe("Files are being added; wait for that to finish or cancel it first.");
  });

  it("exports and imports snapshots, with their errors shown plainly", async () => {
    let fail = false;
    const { view, imports } = mount({
      exportSnapshot: () =>
        Promise.resolve({ path: "/home/me/s.memrsnap", bytes: 4096, session: "default", documents: [{ id: "a", title: "A", tokens_read: 5 }], questions: 2 }),
      importSnapshot: () =>
        fail
          ? Promise.reject("/home/me/s.memrsnap: the snapshot was made with different model weights (blake3 abc)")
          : Promise.resolve({
              session: "default",
              documents: [
                { id: "a", title: "A", tokens_read: 5, in_library: true },
                { id: "b", title: "Moby-Dick", tokens_read: 9, in_library: false },
              ],
              questions: 1,
            }),
    });
    await view.ready;
    $("#export-snapshot").click();
    await settle();
    expect($("#snapshot-result").textContent).toBe("Exported 1 memory and 2 questions to /home/me/s.memrsnap (4.1 KB).");
    $("#import-snapshot").click();
    await settle();
    await settle();
    expect($("#snapshot-result").textContent).toBe(
      "Imported 2 memories and 1 question. Not in this library yet (add their files to ask about them): Moby-Dick.",
    );
    expect(imports).toHaveLength(1);
    fail = true;
    $("#import-snapshot").click();
    await settle();
    expect($("#snapshot-error").hidden).toBe(false);
    expect($("#snapshot-error").textContent).toBe(
      "/home/me/s.memrsnap: the snapshot was made with different model weights (blake3 abc)",
    );
    expect($("#snapshot-result").textContent).toBe("");
    expect(imports).toHaveLength(1);
  });
});
