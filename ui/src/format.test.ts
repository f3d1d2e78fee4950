import { describe, expect, it } from "vitest";
import { count, errorMessage, plural } from "./format";

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
});
