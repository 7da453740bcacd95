// Customer Overview: how contacts spread over tags, groups and attribute values. Clicking a value adds it
// as a criterion (clicking again removes it); with "Exclude" on, or Alt-click, it excludes instead. Values
// of one facet combine with or, facets with and; the live count follows and the result saves as a segment.

import { api } from "./api.js";
import { liveCount, saveAsSegment } from "./criteria-builder.js";
import { overviewCriteria } from "./criteria-model.js";
import { field, formatNumber, h, notice, show } from "./dom.js";

const DEFAULT_FACETS = ["tags", "group", "attributes.country", "attributes.city"];
const FACET_LABELS = { tags: "Tags", group: "Group" };

function facetLabel(name) {
  return FACET_LABELS[name] || name.replace(/^attributes\./, "Attribute: ");
}

export async function overviewScreen({ readOnly }) {
  const facets = [...DEFAULT_FACETS];
  const chosen = {};
  const count = liveCount();
  const board = h("div", { class: "facets" });
  const summary = h("p", { class: "muted" });
  const excludeMode = h("input", { type: "checkbox", id: "exclude-mode" });
  const problems = h("div", { "aria-live": "assertive" });

  function changed() {
    count.update(overviewCriteria(chosen));
    render(lastResult);
  }

  function toggle(facet, entry, exclude) {
    const key = JSON.stringify(entry.value);
    chosen[facet] = chosen[facet] || {};
    const existing = chosen[facet][key];
    if (existing && existing.exclude === exclude) delete chosen[facet][key];
    else chosen[facet][key] = { criteria: entry.criteria, exclude };
    changed();
  }

  let lastResult = null;
  function render(result) {
    if (!result) return;
    summary.textContent = `${formatNumber(result.total)} contacts. Values of one facet combine with or; facets combine with and.`;
    show(board, Object.entries(result.facets).map(([facet, data]) => h("section", { class: "facet card", "aria-label": facetLabel(facet) },
      h("h2", {}, facetLabel(facet)),
      data.values.length === 0 ? h("p", { class: "muted" }, "No values.") : h("ul", {}, data.values.map((entry) => {
        const pick = (chosen[facet] || {})[JSON.stringify(entry.value)];
        const label = String(entry.name ?? entry.value);
        return h("li", {}, h("button", {
          type: "button",
          class: `facet-value ${pick ? (pick.exclude ? "excluded" : "included") : ""}`,
          "aria-pressed": pick ? "true" : "false",
          "aria-label": `${pick && pick.exclude ? "Excluding" : ""}${pick && !pick.exclude ? "Including" : ""}${pick ? " " : ""}${label} (${entry.count})`,
          onclick: (event) => toggle(facet, entry, excludeMode.checked || event.altKey),
        }, h("span", {}, pick && pick.exclude ? `not ${label}` : label), h("span", { class: "facet-count" }, formatNumber(entry.count))));
      })),
      data.other ? h("p", { class: "muted" }, `${formatNumber(data.other)} more in values not shown`) : null,
      data.missing ? h("p", { class: "muted" }, `${formatNumber(data.missing)} without a value`) : null)));
  }

  async function load() {
    try {
      lastResult = await api("GET", `overview?facets=${encodeURIComponent(facets.join(","))}&top=20`);
      show(problems);
      render(lastResult);
    } catch (error) {
      show(problems, notice(`${error.message}`, "error"));
      facets.pop();
    }
  }

  const attribute = h("input", { placeholder: "lifetime_value" });
  const addFacet = h("form", {
    class: "row",
    onsubmit: (event) => {
      event.preventDefault();
      const name = attribute.value.trim();
      if (!name || facets.includes(`attributes.${name}`)) return;
      facets.push(`attributes.${name}`);
      attribute.value = "";
      load();
    },
  }, field("Attribute to count", attribute), h("button", { type: "submit" }, "Count attribute"));

  const saveForm = saveAsSegment({ readOnly, criteriaOf: () => overviewCriteria(chosen), missing: "Click at least one value first." });

  await load();
  return h("section", {},
    h("h1", {}, "Customer Overview"),
    summary,
    h("div", { class: "split" },
      h("div", {},
        h("div", { class: "check" }, excludeMode, h("label", { for: "exclude-mode" }, "Exclude the values I click (or Alt-click)")),
        addFacet,
        problems,
        board),
      h("aside", { class: "card sticky" }, h("h2", {}, "Your selection"), count.element, saveForm)));
}
