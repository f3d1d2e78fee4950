// The figures of the ingestion progress panel, from the counts a `progress` event carries.
import { bytes, count, duration } from "./format";

export interface Rates {
  /** Files done per second. */
  filesPerSecond: number;
  /** Bytes read per second. */
  bytesPerSecond: number;
  /** Seconds left at the rate so far; null until a file is done or when nothing is left. */
  eta: number | null;
  /** Done out of total, 0 to 1. */
  fraction: number;
}

export function rates(p: { total: number; done: number; bytes: number; seconds: number }): Rates {
  const seconds = Math.max(p.seconds, 1e-3);
  const filesPerSecond = p.done / seconds;
  const left = Math.max(0, p.total - p.done);
  return {
    filesPerSecond,
    bytesPerSecond: p.bytes / seconds,
    eta: p.done > 0 && left > 0 ? left / filesPerSecond : null,
    fraction: p.total > 0 ? Math.min(1, p.done / p.total) : 0,
  };
}

/** "2.5 files/s · 1.2 MB/s · about 0:12 left". */
export function describeRates(r: Rates): string {
  const perSecond = r.filesPerSecond >= 10 ? count(r.filesPerSecond) : r.filesPerSecond.toFixed(1);
  const parts = [`${perSecond} files/s`, `${bytes(r.bytesPerSecond)}/s`];
  if (r.eta !== null) parts.push(`about ${duration(r.eta)} left`);
  return parts.join(" · ");
}
