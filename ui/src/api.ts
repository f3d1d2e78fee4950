// The Rust commands of the desktop app (src-tauri/src/commands.rs), typed. Views call these and
// never `invoke` directly, so a test can hand a view a fake `Api`.
import { invoke } from "@tauri-apps/api/core";

/** `app_info`: what the header shows. */
export interface AppInfo {
  name: string;
  /** The version of the `memreader` library the app is built on. */
  version: string;
}

/** One book of a library, as `memreader::book::BookSummary` serializes it. */
export interface BookSummary {
  title: string;
  author: string | null;
  /** The file name, without its folder. */
  file: string;
  words: number;
  chapters: number;
  passages: number;
}

export interface Api {
  appInfo(): Promise<AppInfo>;
  /** Opens and summarizes the bundled demo books; rejects with the error's message. */
  demoBooks(): Promise<BookSummary[]>;
}

/** The real API, over Tauri's IPC. */
export const tauriApi: Api = {
  appInfo: () => invoke<AppInfo>("app_info"),
  demoBooks: () => invoke<BookSummary[]>("demo_books"),
};
