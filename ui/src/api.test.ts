import { clearMocks, mockIPC, mockWindows } from "@tauri-apps/api/mocks";
import { emit } from "@tauri-apps/api/event";
import { afterEach, describe, expect, it } from "vitest";
import type { Channel } from "@tauri-apps/api/core";
import { tauriApi, type AskEvent, type DragEvent, type IngestEvent } from "./api";

afterEach(() => clearMocks());

describe("tauriApi", () => {
  it("calls the Rust commands by their names, with their arguments", async () => {
    const calls: Array<[string, unknown]> = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "app_info") return { name: "MemReader", version: "9.8.7" };
      if (cmd === "pick_and_ingest") return null;
      return [];
    });
    expect(await tauriApi.appInfo()).toEqual({ name: "MemReader", version: "9.8.7" });
    expect(await tauriApi.pickAndIngest(true)).toBeNull();
    await tauriApi.search("white whale", ["abcd"], 5);
    await tauriApi.documentText("abcdef");
    await tauriApi.removeDocument("abcdef");
    await tauriApi.chooseLibrary(true);
    await tauriApi.setDevice("cpu");
    expect(calls).toEqual([
      ["app_info", {}],
      ["pick_and_ingest", { folders: true }],
      ["search", { query: "white whale", docs: ["abcd"], limit: 5 }],
      ["document_text", { id: "abcdef" }],
      ["remove_document", { id: "abcdef" }],
      ["choose_library", { default: true }],
      ["set_device", { device: "cpu" }],
    ]);
  });

  it("streams `ask` through a channel of the call, in order, and resolves with the answer", async () => {
    const answer = { question: "Who?", text: "Vivian.", kind: "extracted" };
    mockIPC((cmd, args) => {
      expect(cmd).toBe("ask");
      const { question, docs, onEvent } = args as { question: string; docs: string[]; onEvent: Channel<AskEvent> };
      expect([question, docs]).toEqual(["Who?", ["abcd"]]);
      // as the Rust side sends (tauri's ipc/channel.rs): every message with its index, through
      // the callback the channel registered (here one message out of order)
      const internals = (window as unknown as { __TAURI_INTERNALS__: { runCallback(id: number, data: unknown): void } })
        .__TAURI_INTERNALS__;
      const send = (index: number, message: AskEvent) => internals.runCallback(onEvent.id, { index, message });
      send(0, { kind: "delta", text: "Viv" });
      send(2, { kind: "replace", text: "Vivian." });
      send(1, { kind: "delta", text: "ian" });
      return answer;
    });
    const heard: AskEvent[] = [];
    expect(await tauriApi.ask("Who?", ["abcd"], (event) => heard.push(event))).toEqual(answer);
    expect(heard).toEqual([
      { kind: "delta", text: "Viv" },
      { kind: "delta", text: "ian" },
      { kind: "replace", text: "Vivian." },
    ]);
  });

  it("rejects with the message a command failed with", async () => {
    mockIPC(() => {
      throw "/books/x.pdf: the file is encrypted";
    });
    await expect(tauriApi.documents()).rejects.toBe("/books/x.pdf: the file is encrypted");
  });

  it("hands the payloads of `ingest` events to the listener until it stops listening", async () => {
    mockIPC(() => undefined, { shouldMockEvents: true });
    const heard: IngestEvent[] = [];
    const unlisten = await tauriApi.onIngest((event) => heard.push(event));
    const started: IngestEvent = { kind: "started", job: 1, paths: ["/books"] };
    await emit("ingest", started);
    unlisten();
    await emit("ingest", { kind: "finished", job: 1, report: null, error: "x" });
    expect(heard).toEqual([started]);
  });

  it("tells the views how files are dragged over the window, not what was dropped", async () => {
    mockWindows("main");
    mockIPC(() => undefined, { shouldMockEvents: true });
    const heard: DragEvent[] = [];
    const unlisten = await tauriApi.onDrag((event) => heard.push(event));
    const at = { x: 10, y: 20 };
    await emit("tauri://drag-enter", { paths: ["/home/me/moby.epub"], position: at });
    await emit("tauri://drag-over", { position: at });
    await emit("tauri://drag-drop", { paths: ["/home/me/moby.epub"], position: at });
    await emit("tauri://drag-leave", null);
    unlisten();
    // Rust ingests what is dropped; the page gets no path to pass anywhere.
    expect(heard).toEqual([{ type: "enter" }, { type: "over" }, { type: "drop" }, { type: "leave" }]);
  });
});
