// Formatting shared by the views.

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** 12345 -> "12,345". */
export function count(n: number): string {
  return integer.format(n);
}

/** "1 book", "2 books". */
export function plural(n: number, one: string, many: string = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** What a rejected command gives (a string from Rust, or an Error) as one line of text. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  return JSON.stringify(err);
}
