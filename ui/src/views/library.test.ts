import { beforeEach, describe, expect, it, vi } from "vitest";
import type { DocumentRecord, IngestReport } from "../api";
import { $, fakeApi, record, settle } from "./fake-api";
import { mountLibrary } from "./library";

const report: IngestReport = {
  ingested: [{ path: "/books/a.txt", id: "a", title: "A", format: "text", passages: 3 }],
  skipped: [],
  failed: [{ path: "/books/broken.pdf", error: "the PDF is damaged: no trailer" }],
  recovered: 0,
  cancelled: false,
  not_started: 0,
  bytes: 3_000_000,
  seconds: 2,
};

function mount(api = fakeApi()) {
  const opened: string[] = [];
  const changes: DocumentRecord[][] = [];
  const view = mountLibrary(document, api, { open: (id) => opened.push(id), changed: (d) => changes.push(d) });
  document.body.replaceChildren(view.element);
  return { api, view, opened, changes };
}

function rows(): string[][] {
  return [...document.querySelectorAll("#documents tbody tr")].map((tr) =>
    [...tr.children].map((cell) => (cell.textContent ?? "").trim()),
  );
}

beforeEach(() => document.body.replaceChildren());

describe("library view", () => {
  it("says when the library is empty", async () => {
    const { view } = mount();
    await view.ready;
    expect($("#library-status").textContent).toBe("The library is empty. Add files or a folder to begin.");
    expect($("#documents").hidden).toBe(true);
    expect($("#progress").hidden).toBe(true);
  });

  it("lists documents with their status and errors; a ready one opens in the reader", async () => {
    const docs = [
      record({ id: "a1", title: "Moby-Dick", author: "Herman Melville", words: 200_000, passages: 900 }),
      record({ id: "b2", path: "/books/broken.pdf", format: "pdf", status: "failed", error: "encrypted", passages: 0, words: 0 }),
    ];
    const { view, opened, changes } = mount(fakeApi({ documents: () => Promise.resolve(docs) }));
    await view.ready;
    expect(rows()).toEqual([
      ["Moby-DickHerman Melville · TEXT · 1.0 KB", "ready", "–", "900", "200,000", "Remove"],
      ["broken.pdfPDF · 1.0 KB", "failedencrypted", "–", "0", "0", "Remove"],
    ]);
    expect($("#library-status").textContent).toBe("2 documents: 1 ready, 1 failed; 200,000 words.");
    expect(changes).toEqual([docs]);
    const [ready, failed] = document.querySelectorAll<HTMLButtonElement>("#documents button.open");
    expect(failed!.disabled).toBe(true);
    ready!.click();
    expect(opened).toEqual(["a1"]);
  });

  it("shows an ingestion live: per file, overall, rates, then the report with its failures", async () => {
    vi.useFakeTimers();
    try {
      const { api, view } = mount();
      await vi.runAllTimersAsync();
      await view.ready;
      api.fireIngest({ kind: "started", job: 4, paths: ["/books"] });
      expect($("#progress").hidden).toBe(false);
      expect($("#progress-title").textContent).toBe("Adding books");
      expect(($("#add-files") as HTMLButtonElement).disabled).toBe(true);
      expect($("#progress").getAttribute("aria-busy")).toBe("true");
      api.fireIngest({
        kind: "progress",
        job: 4,
        total: 4,
        done: 2,
        ingested: 1,
        skipped: 0,
        failed: 1,
        bytes: 2_000_000,
        seconds: 1,
        files: [
          { path: "/books/a.txt", outcome: "ingested" },
          { path: "/books/broken.pdf", outcome: "failed" },
        ],
      });
      expect($("#progress-counts").textContent).toBe("2 of 4 files: 1 added, 0 already there, 1 failed");
      expect($("#progress-rates").textContent).toBe("2.0 files/s · 2.0 MB/s · about 0:01 left · 2.0 MB read in 0:01");
      expect((($("#progress-bar") as HTMLProgressElement).value)).toBe(2);
      expect([...$("#progress-files").children].map((li) => li.textContent)).toEqual([
        "failed broken.pdf",
        "added a.txt",
      ]);
      const listed = api.calls.filter(([name]) => name === "documents").length;
      await vi.advanceTimersByTimeAsync(1000);
      expect(api.calls.filter(([name]) => name === "documents").length).toBe(listed + 1);

      api.fireIngest({ kind: "finished", job: 4, report, error: null });
      expect($("#progress-title").textContent).toBe("Files added");
      expect($("#progress-counts").textContent).toBe("1 added, 0 already there, 1 failed.");
      expect($("#progress-failures").hidden).toBe(false);
      expect($("#progress-failures").textContent).toBe("broken.pdf: the PDF is damaged: no trailer");
      expect($("#cancel-ingest").hidden).toBe(true);
      expect(($("#add-files") as HTMLButtonElement).disabled).toBe(false);
      expect(document.activeElement).toBe($("#dismiss-progress"));
      $("#dismiss-progress").click();
      expect($("#progress").hidden).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });

  it("cancels, and says what was left", async () => {
    const { api, view } = mount();
    await view.ready;
    api.fireIngest({ kind: "started", job: 1, paths: ["/a.pdf", "/b.pdf"] });
    expect($("#progress-title").textContent).toBe("Adding 2 items");
    $("#cancel-ingest").click();
    expect(api.calls.at(-1)![0]).toBe("cancelJob");
    expect(($("#cancel-ingest") as HTMLButtonElement).disabled).toBe(true);
    api.fireIngest({
      kind: "finished",
      job: 1,
      report: { ...report, failed: [], cancelled: true, not_started: 1 },
      error: null,
    });
    expect($("#progress-title").textContent).toBe("Adding files was cancelled");
    expect($("#progress-counts").textContent).toBe(
      "1 added, 0 already there, 0 failed; 1 file not started (add them again to go on).",
    );
    expect($("#progress-failures").hidden).toBe(true);
  });

  it("shows the error that stopped a whole ingestion", async () => {
    const { api, view } = mount();
    await view.ready;
    api.fireIngest({ kind: "finished", job: 9, report: null, error: "search index /lib/index: busy" });
    expect($("#progress").hidden).toBe(false);
    expect($("#progress-title").textContent).toBe("Adding files stopped");
    expect($("#progress-counts").textContent).toBe("search index /lib/index: busy");
  });

  it("adds what the picker gives, and shows why it could not", async () => {
    let fail = false;
    const { api, view } = mount(
      fakeApi({ pickAndIngest: () => (fail ? Promise.reject("Files are already being added") : Promise.resolve(3)) }),
    );
    await view.ready;
    $("#add-folder").click();
    await settle();
    expect(api.calls.at(-1)).toEqual(["pickAndIngest", [true]]);
    expect($("#progress").hidden).toBe(false);
    expect($("#progress-title").textContent).toBe("Adding folders");
    fail = true;
    await view.add(false);
    expect($("#library-error").hidden).toBe(false);
    expect($("#library-error").textContent).toBe("Files are already being added");
  });

  it("a cancelled picker starts nothing", async () => {
    const { view } = mount();
    await view.ready;
    await view.add(false);
    expect($("#progress").hidden).toBe(true);
    expect($("#library-error").hidden).toBe(true);
  });

  it("shows a hint while files hover; what is dropped, Rust ingests and the panel follows", async () => {
    const { api, view } = mount();
    await view.ready;
    api.fireDrag({ type: "enter" });
    expect($("#drop-overlay").hidden).toBe(false);
    api.fireDrag({ type: "leave" });
    expect($("#drop-overlay").hidden).toBe(true);
    api.fireDrag({ type: "over" });
    api.fireDrag({ type: "drop" });
    expect($("#drop-overlay").hidden).toBe(true);
    await settle();
    // The page calls nothing with the drop: Rust started the job, and its events tell the panel.
    const before = api.calls.length;
    api.fireIngest({ kind: "started", job: 4, paths: ["/home/me/moby.epub"] });
    expect(api.calls.length).toBe(before);
    expect($("#progress").hidden).toBe(false);
    expect($("#progress-title").textContent).toBe("Adding moby.epub");
    expect((($("#add-files") as HTMLButtonElement).disabled)).toBe(true);
  });

  it("says why dropped files were not added, and forgets it when the next job starts", async () => {
    const { api, view } = mount();
    await view.ready;
    api.fireIngest({
      kind: "refused",
      error: "The dropped files were not added. Files are being added; wait for that to finish or cancel it first.",
    });
    expect($("#library-error").hidden).toBe(false);
    expect($("#library-error").textContent).toBe(
      "The dropped files were not added. Files are being added; wait for that to finish or cancel it first.",
    );
    // A refusal starts no job.
    expect($("#progress").hidden).toBe(true);
    expect((($("#add-files") as HTMLButtonElement).disabled)).toBe(false);
    api.fireIngest({ kind: "started", job: 5, paths: ["/home/me/a.pdf", "/home/me/b.pdf"] });
    expect($("#library-error").hidden).toBe(true);
    expect($("#progress-title").textContent).toBe("Adding 2 items");
  });

  it("asks before removing, and can keep the document", async () => {
    let docs = [record({ id: "a1", title: "Moby-Dick" })];
    const { api, view } = mount(
      fakeApi({
        documents: () => Promise.resolve(docs),
        removeDocument: (id) => {
          docs = [];
          return Promise.resolve(record({ id }));
        },
      }),
    );
    await view.ready;
    $("#documents button.remove").click();
    expect($("#documents .confirm").textContent).toBe("Remove? RemoveKeep");
    expect(document.activeElement).toBe($("#documents button.confirm-remove"));
    ($("#documents .confirm button.secondary") as HTMLButtonElement).click();
    expect(document.querySelector("#documents .confirm")).toBeNull();
    expect(api.calls.some(([name]) => name === "removeDocument")).toBe(false);
    $("#documents button.remove").click();
    $("#documents button.confirm-remove").click();
    await settle();
    await settle();
    expect(api.calls.find(([name]) => name === "removeDocument")).toEqual(["removeDocument", ["a1"]]);
    expect(rows()).toEqual([]);
    expect($("#library-status").textContent).toMatch(/^The library is empty/);
  });

  it("shows why a document could not be removed", async () => {
    const { view } = mount(
      fakeApi({
        documents: () => Promise.resolve([record({ id: "a1", title: "Moby-Dick" })]),
        removeDocument: () => Promise.reject("catalog /lib/catalog.sqlite: disk I/O error"),
      }),
    );
    await view.ready;
    $("#documents button.remove").click();
    $("#documents button.confirm-remove").click();
    await settle();
    await settle();
    expect($("#library-error").textContent).toBe("Moby-Dick could not be removed: catalog /lib/catalog.sqlite: disk I/O error");
    expect(rows()).toHaveLength(1);
  });

  it("picks up an ingestion that was running when the window loaded", async () => {
    const { view } = mount(fakeApi({ runningJob: () => Promise.resolve(2) }));
    await view.ready;
    expect($("#progress").hidden).toBe(false);
    expect($("#progress-title").textContent).toBe("Adding files");
  });

  it("renders titles and errors as text, never as markup", async () => {
    const evil = "<img src=x onerror=alert(1)>";
    const { view } = mount(
      fakeApi({ documents: () => Promise.resolve([record({ id: "x", title: evil, status: "failed", error: evil })]) }),
    );
    await view.ready;
    expect(document.querySelector("#documents img")).toBeNull();
    expect($("#documents button.open").textContent).toBe(evil);
  });
});
