import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { tauriApi, type BookSummary } from "./api";

const grimm: BookSummary = {
  title: "Household Stories",
  author: "Jacob and Wilhelm Grimm",
  file: "household-stories-grimm.txt",
  words: 123456,
  chapters: 60,
  passages: 500,
};

afterEach(() => clearMocks());

describe("tauriApi", () => {
  it("calls the Rust commands by their names, without arguments", async () => {
    const calls: Array<[string, unknown]> = [];
    mockIPC((cmd, args) => {
      calls.push([cmd, args]);
      if (cmd === "app_info") return { name: "MemReader", version: "9.8.7" };
      if (cmd === "demo_books") return [grimm];
      throw new Error(`unexpected command ${cmd}`);
    });
    expect(await tauriApi.appInfo()).toEqual({ name: "MemReader", version: "9.8.7" });
    expect(await tauriApi.demoBooks()).toEqual([grimm]);
    expect(calls.map(([cmd]) => cmd)).toEqual(["app_info", "demo_books"]);
    expect(calls.every(([, args]) => args === undefined || Object.keys(args as object).length === 0)).toBe(true);
  });

  it("rejects with the message a command failed with", async () => {
    mockIPC(() => {
      throw "assets/demo: cannot read the file: No such file or directory";
    });
    await expect(tauriApi.demoBooks()).rejects.toBe(
      "assets/demo: cannot read the file: No such file or directory",
    );
  });
});
