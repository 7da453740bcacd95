// Building the page: every piece of data becomes a text node, never markup, so an imported name such as
// `<img src=x onerror=…>` is shown as those characters and never runs.

/** An element: h("button", {type: "button", onclick: f}, "Save"). Props starting with "on" are listeners;
 * `false`, null and undefined props are left out; `true` sets an empty attribute. */
export function h(tag, props, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "value" || name === "checked" || name === "disabled" || name === "selected") element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** Replace what an element shows. */
export function show(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

let fieldCount = 0;
/** A labelled control: the label names it for assistive technology (and for the tests). */
export function field(label, control, hint) {
  const id = control.id || `field-${++fieldCount}`;
  control.id = id;
  const hintElement = hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintElement) control.setAttribute("aria-describedby", hintElement.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, hintElement);
}

/** An API error as a person reads it: its message, and the field it names. */
export function problemText(error) {
  return `${error.message}${error.details && error.details.field ? ` (${error.details.field})` : ""}`;
}

/** A short-lived, announced message. */
export function notice(text, kind = "info") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function formatNumber(n) {
  return n === null || n === undefined ? "—" : Number(n).toLocaleString("en");
}

export function formatTime(text) {
  if (!text) return "—";
  const at = new Date(text);
  return Number.isNaN(at.getTime()) ? text : at.toLocaleString("en", { dateStyle: "medium", timeStyle: "short" });
}

/** Call `work` once `delay` ms have passed without another call. */
export function debounce(work, delay) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => work(...args), delay);
  };
}

export function contactName(contact) {
  const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  return name || contact.email || contact.external_id || contact.id;
}

/** A datetime-local input's value (the person's own time) as RFC 3339 UTC; null when empty. */
export function localToRfc3339(local) {
  return local ? new Date(local).toISOString().replace(/\.\d{3}Z$/, "Z") : null;
}

/** An RFC 3339 time as a datetime-local input's value, in the person's own time. */
export function rfc3339ToLocal(text) {
  if (!text) return "";
  const at = new Date(text);
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

/** A fieldset of segment checkboxes: {element, value (the ticked ids)}. */
export function segmentBoxes(legend, segments, chosen, idPrefix, disabled, { counts = false } = {}) {
  const set = h("fieldset", { class: "group" }, h("legend", {}, legend),
    segments.length === 0 ? h("p", { class: "muted" }, "No segments yet.") : segments.map((segment) => {
      const box = h("input", { type: "checkbox", id: `${idPrefix}-${segment.id}`, value: segment.id, checked: chosen.includes(segment.id), disabled });
      const label = counts ? `${segment.name} (${formatNumber(segment.member_count)})` : segment.name;
      return h("div", { class: "check" }, box, h("label", { for: box.id }, label));
    }));
  return { element: set, get value() { return [...set.querySelectorAll("input:checked")].map((box) => box.value); } };
}
