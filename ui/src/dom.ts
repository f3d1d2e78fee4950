// A tiny DOM builder: views build elements with text nodes (never innerHTML), so a book title
// cannot inject markup.

type Attrs = Record<string, string | boolean>;
type Child = Node | string;

/** `h(doc, "p", { id: "status" }, "text", child)`; boolean attributes are set when true. */
export function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) el.setAttribute(name, "");
    else if (value !== false) el.setAttribute(name, value);
  }
  el.append(...children);
  return el;
}
