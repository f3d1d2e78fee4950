import { describe, expect, it } from "vitest";
import { bytes, count, duration, errorMessage, fileName, plural } from "./format";

describe("format", () => {
  it("groups thousands", () => {
    expect(count(0)).toBe("0");
    expect(count(999)).toBe("999");
    expect(count(1234567)).toBe("1,234,567");
  });

  it("pluralizes by count", () => {
    expect(plural(1, "book")).toBe("1 book");
    expect(plural(2, "book")).toBe("2 books");
    expect(plural(0, "passage")).toBe("0 passages");
    expect(plural(12000, "word")).toBe("12,000 words");
  });

  it("turns what a command rejects with into one line", () => {
    expect(errorMessage("no such file")).toBe("no such file");
    expect(errorMessage(new Error("boom"))).toBe("boom");
    expect(errorMessage({ code: 3 })).toBe('{"code":3}');
  });

  it("writes sizes in powers of 1000", () => {
    expect(bytes(999)).toBe("999 B");
    expect(bytes(1500)).toBe("1.5 KB");
    expect(bytes(2_345_678)).toBe("2.3 MB");
    expect(bytes(7e15)).toBe("7,000.0 TB");
  });

  it("writes durations as a clock", () => {
    expect(duration(0)).toBe("0:00");
    expect(duration(7.4)).toBe("0:07");
    expect(duration(754)).toBe("12:34");
    expect(duration(3723)).toBe("1:02:03");
    expect(duration(-5)).toBe("0:00");
  });

  it("takes a path's file name", () => {
    expect(fileName("/home/me/books/moby.pdf")).toBe("moby.pdf");
    expect(fileName("C:\\books\\moby.epub")).toBe("moby.epub");
    expect(fileName("/home/me/books/")).toBe("books");
  });
});
