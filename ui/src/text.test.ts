import { describe, expect, it } from "vitest";
import { CodePoints, partAt, parts, splitLong } from "./text";

describe("CodePoints", () => {
  it("is the identity on text without astral characters, accents included", () => {
    const text = "Café — naïve “quotes”";
    const cp = new CodePoints(text);
    expect(cp.length).toBe(text.length);
    for (let i = 0; i <= text.length; i++) {
      expect(cp.utf16(i)).toBe(i);
      expect(cp.codePoint(i)).toBe(i);
    }
    expect(cp.slice({ start: 5, end: 6 })).toBe("—");
  });

  it("counts an astral character as one code point and two UTF-16 units", () => {
    // Rust's char offsets: a=0 😀=1 b=2 𝄞=3 c=4, end=5.
    const text = "a😀b𝄞c";
    const cp = new CodePoints(text);
    expect(text.length).toBe(7);
    expect(cp.length).toBe(5);
    expect([0, 1, 2, 3, 4, 5].map((i) => cp.utf16(i))).toEqual([0, 1, 3, 4, 6, 7]);
    expect([0, 1, 3, 4, 6, 7].map((i) => cp.codePoint(i))).toEqual([0, 1, 2, 3, 4, 5]);
    // An index inside a pair belongs to the character it is part of.
    expect(cp.codePoint(2)).toBe(1);
    expect(cp.slice({ start: 1, end: 2 })).toBe("😀");
    expect(cp.slice({ start: 2, end: 5 })).toBe("b𝄞c");
    expect(cp.utf16(-3)).toBe(0);
    expect(cp.utf16(99)).toBe(7);
    expect(cp.codePoint(99)).toBe(5);
  });

  it("agrees with a plain walk over long text, across its checkpoints", () => {
    const pieces = ["word ", "😀", "é", "𝄞𝄞", "\n", "αβγ "];
    let text = "";
    for (let i = 0; i < 1000; i++) text += pieces[(i * 7) % pieces.length];
    const cp = new CodePoints(text);
    const points = [...text];
    expect(cp.length).toBe(points.length);
    let unit = 0;
    points.forEach((ch, i) => {
      expect(cp.utf16(i)).toBe(unit);
      expect(cp.codePoint(unit)).toBe(i);
      unit += ch.length;
    });
    expect(cp.slice({ start: 300, end: 340 })).toBe(points.slice(300, 340).join(""));
  });

  it("treats a lone surrogate as one code point, as Rust never sees one", () => {
    const cp = new CodePoints("a\uD800b");
    expect(cp.length).toBe(3);
    expect(cp.utf16(2)).toBe(2);
  });
});

describe("parts", () => {
  const chapters = [
    { title: "THE DECAY OF LYING", range: { start: 10, end: 50 } },
    { title: null, range: { start: 52, end: 90 } },
  ];

  it("divides by chapter, with the front matter as a beginning and gaps joined before", () => {
    expect(parts([], chapters, 100)).toEqual([
      { title: "Beginning", range: { start: 0, end: 10 } },
      { title: "THE DECAY OF LYING", range: { start: 10, end: 52 } },
      { title: "Chapter 2", range: { start: 52, end: 100 } },
    ]);
  });

  it("divides by page when there are pages", () => {
    const pages = [
      { title: null, range: { start: 0, end: 40 } },
      { title: "Index", range: { start: 40, end: 80 } },
    ];
    expect(parts(pages, chapters, 80).map((p) => p.title)).toEqual(["Page 1", "Page 2: Index"]);
  });

  it("is the whole text without sections, and ignores empty ones", () => {
    expect(parts([], [], 12)).toEqual([{ title: "Whole text", range: { start: 0, end: 12 } }]);
    expect(parts([], [{ title: "x", range: { start: 5, end: 5 } }], 12)).toHaveLength(1);
  });

  it("finds the part of an offset", () => {
    const list = parts([], chapters, 100);
    expect(partAt(list, 0)).toBe(0);
    expect(partAt(list, 10)).toBe(1);
    expect(partAt(list, 51)).toBe(1);
    expect(partAt(list, 99)).toBe(2);
    expect(partAt(list, 100)).toBe(2);
  });
});

describe("splitLong", () => {
  it("cuts long parts after the first line break past each limit, counting code points", () => {
    // 🦉 is one code point: the cuts fall after the newlines, whatever the UTF-16 length.
    const text = "🦉🦉🦉\n🦉🦉\n🦉🦉🦉🦉\nend";
    const points = new CodePoints(text);
    const list = splitLong([{ title: "Owls", range: { start: 0, end: points.length } }], points, 4);
    expect(list.map((p) => p.title)).toEqual(["Owls (1 of 3)", "Owls (2 of 3)", "Owls (3 of 3)"]);
    expect(list.map((p) => points.slice(p.range))).toEqual(["🦉🦉🦉\n🦉🦉\n", "🦉🦉🦉🦉\n", "end"]);
  });

  it("cuts at the limit itself without line breaks, and leaves short parts alone", () => {
    const points = new CodePoints("abcdefghij");
    const short = { title: "A", range: { start: 0, end: 3 } };
    const long = { title: "B", range: { start: 3, end: 10 } };
    const list = splitLong([short, long], points, 3);
    expect(list).toEqual([
      short,
      { title: "B (1 of 3)", range: { start: 3, end: 6 } },
      { title: "B (2 of 3)", range: { start: 6, end: 9 } },
      { title: "B (3 of 3)", range: { start: 9, end: 10 } },
    ]);
  });
});
