// Segments: the list, creating and managing one (criteria builder, live count, versions, what uses it),
// and deleting it after reviewing what is connected, as the seed describes.

import { all, api } from "./api.js";
import { criteriaEditor, liveCount, loadCatalog } from "./criteria-builder.js";
import { contactName, field, formatNumber, formatTime, h, notice, problemText, show } from "./dom.js";

const DEPENDENT_KINDS = [
  ["trigger", "Triggers"],
  ["campaign", "Campaigns"],
  ["announcement", "Announcements"],
  ["challenge", "Active challenges"],
  ["segment", "Segments that include it"],
];

function usedBy(items) {
  if (!items.length) return "Nothing";
  const counts = {};
  for (const item of items) counts[item.type] = (counts[item.type] || 0) + 1;
  return DEPENDENT_KINDS.filter(([type]) => counts[type]).map(([type, label]) => `${counts[type]} ${label.toLowerCase()}`).join(", ");
}

export async function segmentsScreen({ readOnly }) {
  const segments = await all("segments");
  const rows = segments.map((segment) => {
    const used = h("td", {}, "…");
    api("GET", `segments/${encodeURIComponent(segment.id)}/dependents`)
      .then((result) => show(used, usedBy(result.items)))
      .catch(() => show(used, "—"));
    return h("tr", {},
      h("th", { scope: "row" }, h("a", { href: `#/segments/${encodeURIComponent(segment.id)}` }, segment.name)),
      h("td", { class: "number" }, formatNumber(segment.member_count)),
      h("td", {}, h("span", { class: `status ${segment.status}` }, segment.status)),
      h("td", {}, formatTime(segment.evaluated_at)),
      used,
      h("td", {}, h("button", { type: "button", onclick: () => { location.hash = `#/segments/${encodeURIComponent(segment.id)}`; } }, "Manage")));
  });
  return h("section", {},
    h("div", { class: "heading" },
      h("h1", {}, "Segments"),
      readOnly ? null : h("button", { type: "button", class: "primary", onclick: () => { location.hash = "#/segments/new"; } }, "Create segment")),
    segments.length === 0
      ? h("p", { class: "empty" }, readOnly ? "No segments yet." : "No segments yet. Create one from tags, or click values on the Customer Overview.")
      : h("table", {},
        h("caption", { class: "visually-hidden" }, "Segments"),
        h("thead", {}, h("tr", {}, ["Name", "Members", "Status", "Last evaluated", "Used by", "Actions"].map((name) => h("th", { scope: "col" }, name)))),
        h("tbody", {}, rows)));
}

function statusLine(segment) {
  return h("p", { class: "muted", id: "segment-state" },
    `Version ${segment.version} · ${segment.status}`,
    segment.status_reason ? ` (${segment.status_reason})` : "",
    ` · ${formatNumber(segment.member_count)} members · last evaluated ${formatTime(segment.evaluated_at)}`);
}

/** Re-read a segment until its evaluation has finished, showing each state; then `finished(segment)`. */
async function followEvaluation(id, place, finished) {
  for (let attempt = 0; attempt < 300; attempt += 1) {
    const segment = await api("GET", `segments/${encodeURIComponent(id)}`);
    show(place, statusLine(segment));
    if (segment.status !== "evaluating") return finished(segment);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return null;
}

export async function segmentEditor({ me, readOnly, params }) {
  const creating = params[0] === "new";
  const catalog = await loadCatalog(me, all);
  const segment = creating ? null : await api("GET", `segments/${encodeURIComponent(params[0])}`);
  if (!creating) catalog.segments = catalog.segments.filter((other) => other.id !== segment.id);
  const name = h("input", { value: segment ? segment.name : "", required: true, maxlength: 200, readonly: readOnly });
  const description = h("textarea", { rows: 2, readonly: readOnly }, segment && segment.description ? segment.description : "");
  const count = liveCount();
  const editor = criteriaEditor({ catalog, criteria: segment ? segment.criteria : null, readOnly, onChange: (criteria) => count.update(criteria) });
  const problems = h("div", { "aria-live": "assertive" });
  const state = h("div", {}, segment ? statusLine(segment) : null);

  async function save(event) {
    event.preventDefault();
    show(problems);
    if (editor.criteria === null || editor.criteria === undefined) {
      show(problems, notice("Add criteria (tags or conditions) before saving, and fix the Criteria JSON if it does not parse.", "error"));
      return;
    }
    const body = { name: name.value.trim(), description: description.value.trim() || null, criteria: editor.criteria };
    try {
      const saved = creating ? await api("POST", "segments", body) : await api("PATCH", `segments/${encodeURIComponent(segment.id)}`, body);
      if (creating) {
        location.hash = `#/segments/${encodeURIComponent(saved.id)}`;
        return;
      }
      show(problems, notice(`Saved as version ${saved.version}.`));
      followEvaluation(saved.id, state, refreshMembers);
    } catch (error) {
      show(problems, notice(problemText(error), "error"));
    }
  }

  const form = h("form", { class: "card", onsubmit: save },
    field("Segment name", name),
    field("Description", description),
    editor.element,
    problems,
    readOnly ? h("p", { class: "muted" }, "Your key is a viewer key: you can look, not change.") : h("button", { type: "submit", class: "primary" }, "Save segment"));

  const sections = [
    h("p", {}, h("a", { href: "#/segments" }, "← All segments")),
    h("h1", {}, creating ? "Create segment" : segment.name),
    state,
    h("div", { class: "split" }, form, h("aside", { class: "card" }, h("h2", {}, "Who matches now"), count.element)),
  ];
  const members = h("section", { class: "card" });
  async function refreshMembers(latest) {
    show(members, ...(await membersSection(latest)));
  }
  if (!creating) {
    await refreshMembers(segment);
    sections.push(members, await historySection(segment), await versionsSection(segment), await dependentsSection(segment, readOnly));
    if (segment.status === "evaluating") followEvaluation(segment.id, state, refreshMembers);
  }
  count.update(editor.criteria);
  return h("section", {}, sections);
}

/** The first members of the latest finished evaluation (none before the first one finishes). */
async function membersSection(segment) {
  const heading = h("h2", {}, "Members");
  if (segment.evaluated_version === null || segment.evaluated_version === undefined) {
    return [heading, h("p", { class: "muted" }, "Members appear here when the first evaluation finishes.")];
  }
  const page = await api("GET", `segments/${encodeURIComponent(segment.id)}/members?limit=10`);
  return [heading,
    page.items.length === 0 ? h("p", { class: "empty" }, "No members in the latest evaluation.") : h("ul", {},
      page.items.map((contact) => h("li", {}, h("a", { href: `#/contacts/${encodeURIComponent(contact.id)}` }, contactName(contact))))),
    page.next_cursor ? h("p", { class: "muted" }, `The first 10 of ${formatNumber(segment.member_count)}.`) : null];
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  for (const child of children) element.append(child);
  return element;
}

/** The last 90 days: members as a line, who entered and left as bars under it, and the same as a table. */
async function historySection(segment) {
  const { items } = await api("GET", `segments/${encodeURIComponent(segment.id)}/history?days=90`);
  const heading = h("h2", {}, "Size over time");
  if (items.length === 0) return h("section", { class: "card" }, heading, h("p", { class: "muted" }, "The history starts with the first evaluation."));
  const width = 640;
  const height = 160;
  const top = Math.max(1, ...items.map((point) => point.members || 0));
  const moves = Math.max(1, ...items.map((point) => Math.max(point.entered, point.exited)));
  const step = width / Math.max(1, items.length - 1);
  const x = (index) => (items.length === 1 ? width / 2 : index * step);
  const y = (members) => 10 + (height - 60) * (1 - members / top);
  const line = items.map((point, index) => `${index ? "L" : "M"}${x(index).toFixed(1)},${y(point.members || 0).toFixed(1)}`).join(" ");
  const bars = items.flatMap((point, index) => [
    point.entered ? svg("rect", { class: "entered", x: x(index) - 2, y: height - 25 - (20 * point.entered) / moves, width: 4, height: (20 * point.entered) / moves }) : null,
    point.exited ? svg("rect", { class: "exited", x: x(index) - 2, y: height - 25, width: 4, height: (20 * point.exited) / moves }) : null,
  ].filter(Boolean));
  const first = items[0];
  const last = items[items.length - 1];
  const chart = svg("svg", { viewBox: `-10 0 ${width + 20} ${height}`, role: "img", class: "history",
    "aria-label": `Members from ${first.members} on ${first.date} to ${last.members} on ${last.date}` },
  svg("path", { class: "members", d: line }), ...bars);
  const rows = [...items].reverse().filter((point) => point.entered || point.exited || point === last);
  return h("section", { class: "card" }, heading, chart,
    h("p", { class: "hint" }, "Line: members at the end of each UTC day. Bars: contacts that entered (up) and left (down)."),
    h("details", {}, h("summary", {}, "Days with changes"), h("table", {},
      h("thead", {}, h("tr", {}, ["Day", "Members", "Entered", "Left"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((point) => h("tr", {}, h("th", { scope: "row" }, point.date),
        [point.members, point.entered, point.exited].map((value) => h("td", { class: "number" }, formatNumber(value)))))))));
}

async function versionsSection(segment) {
  const versions = await api("GET", `segments/${encodeURIComponent(segment.id)}/versions?limit=20`);
  return h("section", { class: "card" },
    h("h2", {}, "Versions"),
    h("ol", { reversed: true }, versions.items.map((version) => h("li", {},
      `Version ${version.version}: “${version.name}”, saved ${formatTime(version.saved_at)}`,
      h("details", {}, h("summary", {}, `Criteria of version ${version.version}`), h("pre", { class: "code" }, JSON.stringify(version.criteria, null, 2)))))));
}

async function dependentsSection(segment, readOnly) {
  const { items } = await api("GET", `segments/${encodeURIComponent(segment.id)}/dependents`);
  const grouped = DEPENDENT_KINDS.map(([type, label]) => [label, items.filter((item) => item.type === type)]);
  const review = h("div", {});
  const list = h("div", {}, grouped.map(([label, found]) => h("div", {},
    h("h3", {}, `${label} (${found.length})`),
    found.length ? h("ul", {}, found.map((item) => h("li", {}, item.name, item.status ? h("span", { class: "muted" }, ` · ${item.status}`) : null,
      item.enabled === false ? h("span", { class: "muted" }, " · disabled") : null))) : h("p", { class: "muted" }, "None."))));

  function openReview() {
    const confirm = h("input", { type: "checkbox", id: "confirm-delete" });
    const remove = h("button", { type: "button", class: "danger", disabled: true }, "Delete segment");
    const outcome = h("div", { "aria-live": "assertive" });
    confirm.addEventListener("change", () => { remove.disabled = !confirm.checked; });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await api("DELETE", `segments/${encodeURIComponent(segment.id)}?confirm=true`);
        location.hash = "#/segments";
      } catch (error) {
        show(outcome, notice(error.message, "error"));
        remove.disabled = !confirm.checked;
      }
    });
    show(review, h("div", { class: "review", role: "group", "aria-label": "Review before deleting" },
      h("p", {}, items.length
        ? `${items.length} connected item(s) above will lose “${segment.name}”. One left with no segment is paused or disabled, and says why.`
        : `Nothing is connected to “${segment.name}”.`),
      h("p", {}, "Its tags stay, and so do its contacts: only the segment goes."),
      h("div", { class: "check" }, confirm, h("label", { for: "confirm-delete" }, "I understand what deleting this segment changes")),
      remove,
      outcome));
    confirm.focus();
  }

  return h("section", { class: "card" },
    h("h2", {}, "Where it is used"),
    list,
    readOnly ? null : h("div", {}, h("button", { type: "button", class: "danger-outline", onclick: openReview }, "Review and delete…"), review));
}
