// The Rust commands and events of the desktop app (src-tauri/src/commands.rs, jobs.rs), typed.
// Views call these and never `invoke`, `listen` or open a `Channel` directly, so a test can hand
// a view a fake `Api`. Every range is a range of char (Unicode code point) offsets into a
// document's text: convert with `CodePoints` (text.ts) before indexing a JS string.
import { Channel, invoke } from "@tauri-apps/api/core";
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
 * then `finished`; or `refused` alone, when files dropped on the window cannot be added now
 * (Rust ingests what is dropped: the page never names a path). */
export type IngestEvent =
  | { kind: "refused"; error: string }
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

/** Files dragged over the window. What is dropped, Rust ingests itself (an `ingest` job). */
export interface DragEvent {
  type: "enter" | "over" | "leave" | "drop";
}

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

/** The model in use (`model_info`); `error` says why there is none. */
export interface ModelView {
  dir: string;
  error: string | null;
  device: string | null;
  weights_blake3: string | null;
  layers: number | null;
  d_model: number | null;
  vocab_size: number | null;
  pool_slots: number | null;
}

/** What is known about a document's memory (`memreader::memory::MemoryInfo`). */
export interface MemoryInfo {
  doc_id: string;
  title: string;
  tokens_read: number;
  total_tokens: number;
  target_tokens: number;
  seconds: number;
  updated_at: number;
}

/** What reading one document did (`memreader::memory::ReadReport`). */
export interface ReadReport {
  doc_id: string;
  title: string;
  tokens_read: number;
  total_tokens: number;
  resumed_from: number;
  seconds: number;
  tokens_per_second: number;
  up_to_date: boolean;
  cancelled: boolean;
  restarted: string | null;
  memory_bytes: number;
}

/** The `read` event: `started`, then per document `progress` and `document`, then
 * `finished`. */
export type ReadEvent =
  | { kind: "started"; job: number; titles: string[] }
  | {
      kind: "progress";
      job: number;
      index: number;
      count: number;
      doc_id: string;
      done: number;
      target: number;
      resumed_from: number;
      seconds: number;
    }
  | {
      kind: "document";
      job: number;
      index: number;
      count: number;
      doc_id: string;
      title: string;
      report: ReadReport | null;
      error: string | null;
    }
  | { kind: "finished"; job: number; read: number; failed: number; cancelled: boolean };

/** A cited sentence (`memreader::ask::Citation`). */
export interface Citation {
  doc_id: string;
  title: string;
  page: number | null;
  chapter: number | null;
  chapter_title: string | null;
  /** The passage's char range, and the quoted sentence with its char range. */
  passage: Range;
  quote: string;
  range: Range;
  score: number;
  bm25: number | null;
  memory: number | null;
  /** The question's words the passage holds, each weighted by its rarity among the candidates. */
  held: number | null;
  /** The question's PMI given the passage (nats); null where the model did not rerank it. */
  model: number | null;
}

/** `memreader::ask::Answer`. */
export interface Answer {
  question: string;
  text: string;
  kind: "generated" | "extracted" | "none";
  generated: string | null;
  confidence: number | null;
  citations: Citation[];
  notices: string[];
}

/** What `ask` streams while it answers (`memreader::ask::AskEvent`): `delta`, the next piece of
 * the answer's text as the model generates it; `replace`, the answer's text instead of what came
 * before (an extracted answer where the generated one is not used, or an answer that was not
 * generated). */
export type AskEvent = { kind: "delta"; text: string } | { kind: "replace"; text: string };

/** A question of the session's history. */
export interface HistoryEntry {
  asked_at: number;
  docs: string[];
  answer: Answer;
}

/** `memreader::notes::NotesReport`. */
export interface NotesReport {
  doc_id: string;
  title: string;
  tokens_read: number;
  total_tokens: number;
  layers: Array<{
    layer: number;
    slots: number;
    notes: Array<{
      position: number;
      score: number;
      char_offset: number;
      passage: Range | null;
      page: number | null;
      chapter: number | null;
      excerpt: string;
    }>;
  }>;
  histogram: number[];
  bin_tokens: number;
}

export interface ExportReport {
  path: string;
  bytes: number;
  session: string;
  documents: Array<{ id: string; title: string; tokens_read: number }>;
  questions: number;
}

export interface ImportReport {
  session: string;
  documents: Array<{ id: string; title: string; tokens_read: number; in_library: boolean }>;
  questions: number;
}

/** Stops listening. */
export type Unlisten = () => void;

export interface Api {
  appInfo(): Promise<AppInfo>;
  documents(): Promise<DocumentRecord[]>;
  documentText(id: string): Promise<DocumentText>;
  search(query: string, docs: string[], limit: number): Promise<Hit[]>;
  removeDocument(id: string): Promise<DocumentRecord>;
  /** Opens the native picker (files, or folders) and ingests the choice; null if cancelled. */
  pickAndIngest(folders: boolean): Promise<number | null>;
  /** Stops the background job (an ingestion, a reading); false when none runs. */
  cancelJob(): Promise<boolean>;
  /** The id of the background job in progress, if any. */
  runningJob(): Promise<number | null>;
  settings(): Promise<SettingsView>;
  setDevice(device: string): Promise<SettingsView>;
  /** Picks a library folder (or, with `useDefault`, goes back to the default); null if the
   * picker was cancelled. */
  chooseLibrary(useDefault: boolean): Promise<SettingsView | null>;
  modelInfo(): Promise<ModelView>;
  /** The memory of each document that has one, by id. */
  memories(): Promise<Record<string, MemoryInfo>>;
  /** Starts reading documents into memory; resolves with the job's id. */
  readDocuments(ids: string[]): Promise<number>;
  /** Answers a question from `docs` (all when empty), streaming the answer's text to `onEvent`
   * as it is generated; resolves with the answer and its citations, recorded in the session's
   * history. */
  ask(question: string, docs: string[], onEvent: (event: AskEvent) => void): Promise<Answer>;
  history(): Promise<HistoryEntry[]>;
  notes(id: string, bins: number): Promise<NotesReport>;
  /** Open the save / open dialogs; null when cancelled. */
  exportSnapshot(): Promise<ExportReport | null>;
  importSnapshot(): Promise<ImportReport | null>;
  onIngest(listener: (event: IngestEvent) => void): Promise<Unlisten>;
  onRead(listener: (event: ReadEvent) => void): Promise<Unlisten>;
  onDrag(listener: (event: DragEvent) => void): Promise<Unlisten>;
}

/** The real API, over Tauri's IPC. */
export const tauriApi: Api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  documents: () => invoke<DocumentRecord[]>("documents"),
  documentText: (id) => invoke<DocumentText>("document_text", { id }),
  search: (query, docs, limit) => invoke<Hit[]>("search", { query, docs, limit }),
  removeDocument: (id) => invoke<DocumentRecord>("remove_document", { id }),
  pickAndIngest: (folders) => invoke<number | null>("pick_and_ingest", { folders }),
  cancelJob: () => invoke<boolean>("cancel_job"),
  runningJob: () => invoke<number | null>("running_job"),
  settings: () => invoke<SettingsView>("settings"),
  setDevice: (device) => invoke<SettingsView>("set_device", { device }),
  chooseLibrary: (useDefault) =>
    invoke<SettingsView | null>("choose_library", { default: useDefault }),
  modelInfo: () => invoke<ModelView>("model_info"),
  memories: () => invoke<Record<string, MemoryInfo>>("memories"),
  readDocuments: (ids) => invoke<number>("read_documents", { ids }),
  ask: (question, docs, onEvent) => invoke<Answer>("ask", { question, docs, onEvent: new Channel(onEvent) }),
  history: () => invoke<HistoryEntry[]>("history"),
  notes: (id, bins) => invoke<NotesReport>("notes", { id, bins }),
  exportSnapshot: () => invoke<ExportReport | null>("export_snapshot"),
  importSnapshot: () => invoke<ImportReport | null>("import_snapshot"),
  onIngest: (listener) => listen<IngestEvent>("ingest", (event) => listener(event.payload)),
  onRead: (listener) => listen<ReadEvent>("read", (event) => listener(event.payload)),
  onDrag: (listener) => getCurrentWebview().onDragDropEvent((event) => listener({ type: event.payload.type })),
};
