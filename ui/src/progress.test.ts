import { describe, expect, it } from "vitest";
import { describeRates, rates } from "./progress";

describe("rates", () => {
  it("gives the rates so far and the time left at that rate", () => {
    const r = rates({ total: 10, done: 4, bytes: 2_000_000, seconds: 2 });
    expect(r.filesPerSecond).toBe(2);
    expect(r.bytesPerSecond).toBe(1_000_000);
    expect(r.eta).toBe(3);
    expect(r.fraction).toBe(0.4);
    expect(describeRates(r)).toBe("2.0 files/s · 1.0 MB/s · about 0:03 left");
  });

  it("has no estimate before the first file or after the last", () => {
    expect(rates({ total: 10, done: 0, bytes: 0, seconds: 5 }).eta).toBeNull();
    const done = rates({ total: 3, done: 3, bytes: 3000, seconds: 0 });
    expect(done.eta).toBeNull();
    expect(done.fraction).toBe(1);
    expect(describeRates(done)).toBe("3,000 files/s · 3.0 MB/s");
    expect(rates({ total: 0, done: 0, bytes: 0, seconds: 0 }).fraction).toBe(0);
  });
});
