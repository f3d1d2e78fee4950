// Char offsets from Rust are counted in Unicode code points; JS strings are indexed in UTF-16
// code units, where a code point above U+FFFF (an emoji, a rare CJK ideograph) takes two.
// `CodePoints` converts between the two for one text.
import type { Range, Section } from "./api";

/** Code points between two checkpoints. */
const STEP = 64;

export class CodePoints {
  readonly text: string;
  /** The UTF-16 index of every STEP-th code point; empty when the text has no surrogates
   * (then the two offsets are the same). */
  private readonly checkpoints: number[] = [];
  /** The number of code points in the text. */
  readonly length: number;

  constructor(text: string) {
    this.text = text;
    if (!/[\uD800-\uDFFF]/.test(text)) {
      this.length = text.length;
      return;
    }
    let points = 0;
    for (let i = 0; i < text.length; points++) {
      if (points % STEP === 0) this.checkpoints.push(i);
      i += isHighSurrogate(text.charCodeAt(i)) && isLowSurrogate(text.charCodeAt(i + 1)) ? 2 : 1;
    }
    this.length = points;
  }

  /** The UTF-16 index where code point `offset` starts (clamped to the text's ends). */
  utf16(offset: number): number {
    if (offset <= 0) return 0;
    if (this.checkpoints.length === 0) return Math.min(offset, this.text.length);
    if (offset >= this.length) return this.text.length;
    let i = this.checkpoints[Math.floor(offset / STEP)]!;
    for (let left = offset % STEP; left > 0; left--) {
      i += isHighSurrogate(this.text.charCodeAt(i)) && isLowSurrogate(this.text.charCodeAt(i + 1)) ? 2 : 1;
    }
    return i;
  }

  /** The code point offset of UTF-16 index `index` (an index inside a pair counts as its
   * start). */
  codePoint(index: number): number {
    if (index <= 0) return 0;
    if (this.checkpoints.length === 0) return Math.min(index, this.text.length);
    if (index >= this.text.length) return this.length;
    let lo = 0;
    let hi = this.checkpoints.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.checkpoints[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    let points = lo * STEP;
    let i = this.checkpoints[lo]!;
    while (i < index) {
      const pair = isHighSurrogate(this.text.charCodeAt(i)) && isLowSurrogate(this.text.charCodeAt(i + 1));
      if (pair && i + 1 === index) break;
      i += pair ? 2 : 1;
      points++;
    }
    return points;
  }

  /** The text of a code point range. */
  slice(range: Range): string {
    return this.text.slice(this.utf16(range.start), this.utf16(range.end));
  }
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}

function isLowSurrogate(unit: number): boolean {
  return unit >= 0xdc00 && unit <= 0xdfff;
}

/** A part of the document the reader shows at once. */
export interface Part {
  title: string;
  range: Range;
}

/** How the reader divides a document: by page when it has pages (PDFs), else by chapter,
 * else as one part. The parts cover the whole text in order: text before the first section is
 * a part of its own ("Beginning"), text between or after sections joins the part before it.
 * `length` is the text's length in code points. */
export function parts(pages: Section[], chapters: Section[], length: number): Part[] {
  const byPage = pages.length > 0;
  const sorted = [...(byPage ? pages : chapters)].sort((a, b) => a.range.start - b.range.start);
  const out: Part[] = [];
  let at = 0;
  sorted.forEach((section, i) => {
    const start = Math.min(Math.max(section.range.start, at), length);
    const end = Math.min(Math.max(section.range.end, start), length);
    if (end === start) return;
    const last = out[out.length - 1];
    if (start > at) {
      if (last) last.range.end = start;
      else out.push({ title: "Beginning", range: { start: 0, end: start } });
    }
    const number = `${byPage ? "Page" : "Chapter"} ${i + 1}`;
    const title = section.title?.trim() ?? "";
    out.push({
      title: title === "" ? number : byPage ? `${number}: ${title}` : title,
      range: { start, end },
    });
    at = end;
  });
  const last = out[out.length - 1];
  if (!last) return [{ title: "Whole text", range: { start: 0, end: length } }];
  last.range.end = length;
  return out;
}

/** Splits every part longer than `max` code points at the first line break at or after each
 * `max` code points (or at `max` exactly when there is none), so that the reader never lays out
 * a whole long book at once: "Title (2 of 3)". */
export function splitLong(list: Part[], points: CodePoints, max: number): Part[] {
  return list.flatMap((part) => {
    const cuts = [part.range.start];
    for (let at = part.range.start + max; at < part.range.end; at += max) {
      const from = points.utf16(Math.max(at, cuts[cuts.length - 1]! + 1));
      const newline = points.text.indexOf("\n", from);
      const cut = newline === -1 ? at : Math.min(points.codePoint(newline) + 1, part.range.end);
      if (cut >= part.range.end) break;
      cuts.push(cut);
      at = cut;
    }
    if (cuts.length === 1) return [part];
    cuts.push(part.range.end);
    return cuts.slice(0, -1).map((start, i) => ({
      title: `${part.title} (${i + 1} of ${cuts.length - 1})`,
      range: { start, end: cuts[i + 1]! },
    }));
  });
}

/** The index of the part that holds code point `offset` (the last part for the text's end). */
export function partAt(list: Part[], offset: number): number {
  const i = list.findIndex((p) => offset >= p.range.start && offset < p.range.end);
  return i >= 0 ? i : Math.max(0, list.length - 1);
}
