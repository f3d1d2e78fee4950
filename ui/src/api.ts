// The Rust commands and events of the desktop app (src-tauri/src/commands.rs, jobs.rs), typed.
// Views call these and never `invoke` or `listen` directly, so a test can hand a view a fake
// `Api`. Every range is a range of char (Unicode code point) offsets into a document's text:
// convert with `CodePoints` (text.ts) before indexing a JS string.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { getCurrentWebview } from "@tauri-apps/api/webview";

/** `app_info`: what the header shows. */
export interface AppInfo {
  name: string;
  /** The version of the `memreader` library the app is built on. */
  version: string;
}

/** `[start, end)` in char offsets, as serde writes a Rust `Range<usize>`. */
export interface Range {
  start: number;
  end: number;
}

export type Status = "indexing" | "ready" | "failed";

/** A document of the library's catalog (`ingest::DocumentRecord`). */
export interface DocumentRecord {
  /** The BLAKE3 hash of the file, 64 hex digits. */
  id: string;
  path: string;
  format: string | null;
  title: string | null;
  author: string | null;
  language: string | null;
  status: Status;
  bytes: number;
  pages: number;
  chapters: number;
  passages: number;
  words: number;
  error: string | null;
  added_at: number;
  updated_at: number;
}

export interface Section {
  title: string | null;
  range: Range;
}

/** A parsed document (`ingest::Document`). */
export interface DocumentBody {
  title: string | null;
  author: string | null;
  language: string | null;
  text: string;
  chapters: Section[];
  pages: Section[];
}

/** `document_text`. */
export interface DocumentText {
  record: DocumentRecord;
  document: DocumentBody;
}

/** A search result (`ingest::Hit`). */
export interface Hit {
  doc_id: string;
  title: string;
  passage_id: string;
  score: number;
  /** Counted from 1. */
  page: number | null;
  /** Counted from 0. */
  chapter: number | null;
  chapter_title: string | null;
  range: Range;
  snippet: { text: string; range: Range; highlights: Range[] };
}

export interface Failure {
  path: string;
  error: string;
}

/** What a bulk ingestion did (`ingest::IngestReport`). */
export interface IngestReport {
  ingested: Array<{ path: string; id: string; title: string; format: string; passages: number }>;
  skipped: Array<{ path: string; id: string; reason: string }>;
  failed: Failure[];
  recovered: number;
  cancelled: boolean;
  not_started: number;
  bytes: number;
  seconds: number;
}

export type Outcome = "ingested" | "skipped" | "failed" | "not_started";

/** The `ingest` event: `started`, then `progress` (with the files done since the last one),
 * then `finished`. */
export type IngestEvent =
  | { kind: "started"; job: number; paths: string[] }
  | {
      kind: "progress";
      job: number;
      total: number;
      done: number;
      ingested: number;
      skipped: number;
      failed: number;
      bytes: number;
      seconds: number;
      files: Array<{ path: string; outcome: Outcome }>;
    }
  | { kind: "finished"; job: number; report: IngestReport | null; error: string | null };

/** Files dragged over the window (the paths come with `drop` only). */
export type DragEvent = { type: "enter" | "over" | "leave" } | { type: "drop"; paths: string[] };

/** `settings`. */
export interface SettingsView {
  library_dir: string | null;
  library_error: string | null;
  library_is_default: boolean;
  settings_error: string | null;
  /** `auto`, `cpu`, `cuda` or `cuda:N`. */
  device: string;
  detected: { device: string; notice: string | null; cuda_built: boolean };
}

/** Stops listening. */
export type Unlisten = () => void;

export interface Api {
  appInfo(): Promise<AppInfo>;
  documents(): Promise<DocumentRecord[]>;
  documentText(id: string): Promise<DocumentText>;
  search(query: string, docs: string[], limit: number): Promise<Hit[]>;
  removeDocument(id: string): Promise<DocumentRecord>;
  /** Starts ingesting dropped files and folders; resolves with the job's id. */
  ingestPaths(paths: string[]): Promise<number>;
  /** Opens the native picker (files, or folders) and ingests the choice; null if cancelled. */
  pickAndIngest(folders: boolean): Promise<number | null>;
  cancelIngest(): Promise<boolean>;
  /** The id of the ingestion in progress, if any. */
  runningIngest(): Promise<number | null>;
  settings(): Promise<SettingsView>;
  setDevice(device: string): Promise<SettingsView>;
  /** Picks a library folder (or, with `useDefault`, goes back to the default); null if the
   * picker was cancelled. */
  chooseLibrary(useDefault: boolean): Promise<SettingsView | null>;
  onIngest(listener: (event: IngestEvent) => void): Promise<Unlisten>;
  onDrag(listener: (event: DragEvent) => void): Promise<Unlisten>;
}

/** The real API, over Tauri's IPC. */
export const tauriApi: Api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  documents: () => invoke<DocumentRecord[]>("documents"),
  documentText: (id) => invoke<DocumentText>("document_text", { id }),
  search: (query, docs, limit) => invoke<Hit[]>("search", { query, docs, limit }),
  removeDocument: (id) => invoke<DocumentRecord>("remove_document", { id }),
  ingestPaths: (paths) => invoke<number>("ingest_paths", { paths }),
  pickAndIngest: (folders) => invoke<number | null>("pick_and_ingest", { folders }),
  cancelIngest: () => invoke<boolean>("cancel_ingest"),
  runningIngest: () => invoke<number | null>("running_ingest"),
  settings: () => invoke<SettingsView>("settings"),
  setDevice: (device) => invoke<SettingsView>("set_device", { device }),
  chooseLibrary: (useDefault) =>
    invoke<SettingsView | null>("choose_library", { default: useDefault }),
  onIngest: (listener) => listen<IngestEvent>("ingest", (event) => listener(event.payload)),
  onDrag: (listener) =>
    getCurrentWebview().onDragDropEvent((event) => {
      const p = event.payload;
      listener(p.type === "drop" ? { type: "drop", paths: p.paths } : { type: p.type });
    }),
};
