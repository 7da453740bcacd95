// Segment Mixer: pick segments, combine them with and/or, exclude some (not), see the exact count and the
// pairwise overlap (both, and the Jaccard index drawn as shading), and save the mix as a segment.

import { all, api } from "./api.js";
import { liveCount, saveAsSegment } from "./criteria-builder.js";
import { mixCriteria } from "./criteria-model.js";
import { formatNumber, h, notice, show } from "./dom.js";

export async function mixerScreen({ readOnly }) {
  // overlap compares stored members: only segments whose first evaluation has finished
  const segments = (await all("segments")).filter((segment) => segment.status !== "invalid" && segment.evaluated_version !== null);
  const picks = new Map(); // id → {id, exclude}
  let mode = "all";
  const count = liveCount();
  const overlap = h("div", { "aria-live": "polite" });
  const names = Object.fromEntries(segments.map((segment) => [segment.id, segment.name]));

  async function drawOverlap() {
    const ids = [...picks.keys()];
    if (ids.length < 2) return show(overlap, h("p", { class: "muted" }, "Pick two or more segments to see how they overlap."));
    try {
      const result = await api("GET", `segments/overlap?ids=${ids.map(encodeURIComponent).join(",")}`);
      if (ids.join() !== [...picks.keys()].join()) return; // a newer pick is on its way
      const pair = (a, b) => result.pairs.find((p) => (p.a === a && p.b === b) || (p.a === b && p.b === a));
      show(overlap, h("table", { class: "overlap" },
        h("caption", {}, "Pairwise overlap: members in both, and the Jaccard index (both ÷ either), darker when larger"),
        h("thead", {}, h("tr", {}, h("td", {}), ids.map((id) => h("th", { scope: "col" }, names[id])))),
        h("tbody", {}, ids.map((row) => h("tr", {}, h("th", { scope: "row" }, names[row]), ids.map((column) => {
          if (row === column) return h("td", { class: "diagonal" }, "—");
          const found = pair(row, column);
          const cell = h("td", { class: "overlap-cell" },
            h("span", { class: "both" }, `${formatNumber(found.both)} in both`),
            h("span", { class: "jaccard" }, `Jaccard ${found.jaccard.toFixed(2)}`));
          cell.style.setProperty("--share", String(found.jaccard));
          return cell;
        }))))));
    } catch (error) {
      show(overlap, notice(error.message, "error"));
    }
  }

  function changed() {
    count.update(mixCriteria([...picks.values()], mode));
    drawOverlap();
  }

  const list = h("ul", { class: "picks" }, segments.map((segment) => {
    const pick = h("input", { type: "checkbox", id: `mix-${segment.id}` });
    const exclude = h("input", { type: "checkbox", id: `mix-not-${segment.id}`, disabled: true });
    pick.addEventListener("change", () => {
      if (pick.checked) picks.set(segment.id, { id: segment.id, exclude: exclude.checked });
      else picks.delete(segment.id);
      exclude.disabled = !pick.checked;
      changed();
    });
    exclude.addEventListener("change", () => {
      picks.set(segment.id, { id: segment.id, exclude: exclude.checked });
      changed();
    });
    return h("li", {},
      h("span", { class: "check" }, pick, h("label", { for: pick.id }, `${segment.name} (${formatNumber(segment.member_count)})`)),
      h("span", { class: "check" }, exclude, h("label", { for: exclude.id }, `Exclude ${segment.name} (not)`)));
  }));

  const combine = h("fieldset", { class: "inline" }, h("legend", {}, "Combine the included segments with"),
    [["all", "and: members of every one"], ["any", "or: members of any"]].map(([value, label]) => h("label", {},
      h("input", { type: "radio", name: "mix-mode", value, checked: value === mode, onchange: () => { mode = value; changed(); } }), ` ${label}`)));

  const save = saveAsSegment({ readOnly, criteriaOf: () => mixCriteria([...picks.values()], mode), missing: "Include at least one segment." });

  drawOverlap();
  return h("section", {},
    h("h1", {}, "Segment Mixer"),
    segments.length === 0 ? h("p", { class: "empty" }, "No segments to mix yet.") : h("div", { class: "split" },
      h("div", { class: "card" }, combine, list),
      h("aside", { class: "card" }, h("h2", {}, "The mix"), count.element, save)),
    h("section", { class: "card" }, h("h2", {}, "Overlap"), overlap));
}
