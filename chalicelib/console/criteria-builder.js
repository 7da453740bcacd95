// The criteria builder (tags with and/or, advanced conditions) beside the Criteria JSON editor: two views
// of the same criteria, each following the other. Used by segment editing and by trigger conditions.

import { api } from "./api.js";
import { contactName, debounce, field, h, notice, show } from "./dom.js";
import {
  ATTRIBUTE_OPS, COMPARISONS, EVENT_AGGREGATES, NO_VALUE_OPS,
  emptyModel, fromCriteria, newCondition, tagsIn, toCriteria,
} from "./criteria-model.js";

const KINDS = { attr: "Attribute", event: "Event (purchases…)", group: "Group", segment: "Another segment" };

function select(options, value, props = {}) {
  return h("select", props, options.map(([optionValue, label]) => h("option", { value: optionValue, selected: optionValue === value }, label)));
}

/**
 * catalog: {tags: [{name}], groups: [{id, name}], segments: [{id, name}], tagLimit}
 * onChange(criteria | undefined): undefined while the JSON does not parse.
 */
export function criteriaEditor({ catalog, criteria, readOnly = false, onChange }) {
  let model = fromCriteria(criteria) || emptyModel();
  let jsonOnly = fromCriteria(criteria) === null;
  let current = criteria ?? null;
  const builder = h("div", { class: "builder" });
  const json = h("textarea", { rows: 8, spellcheck: "false", class: "code", readonly: readOnly });
  const jsonProblem = h("p", { class: "hint error-text", "aria-live": "polite" });
  json.value = current === null ? "" : JSON.stringify(current, null, 2);

  function emit() {
    current = toCriteria(model);
    json.value = current === null ? "" : JSON.stringify(current, null, 2);
    jsonProblem.textContent = "";
    onChange(current);
  }

  json.addEventListener("input", () => {
    const text = json.value.trim();
    let parsed = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch (problem) {
        jsonProblem.textContent = `Not valid JSON yet: ${problem.message}`;
        onChange(undefined);
        return;
      }
    }
    jsonProblem.textContent = "";
    current = parsed;
    const shown = fromCriteria(parsed);
    jsonOnly = shown === null;
    if (shown) model = shown;
    render();
    onChange(current);
  });

  function tagSection() {
    const limit = catalog.tagLimit;
    const used = tagsIn(current || {}).size;
    const atLimit = used >= limit;
    const available = catalog.tags.map((tag) => tag.name).filter((name) => !model.tags.includes(name));
    const picker = select([["", "Choose a tag…"], ...available.map((name) => [name, name])], "", { disabled: readOnly || atLimit });
    const add = h("button", {
      type: "button",
      disabled: readOnly || atLimit || available.length === 0,
      onclick: () => {
        if (!picker.value) return;
        model.tags.push(picker.value);
        emit();
        render();
      },
    }, "Add tag");
    const mode = h("fieldset", { class: "inline" },
      h("legend", {}, "Contacts must have"),
      ["all", "any"].map((value) => h("label", {},
        h("input", {
          type: "radio", name: "tag-mode", value, checked: model.tagMode === value, disabled: readOnly,
          onchange: () => { model.tagMode = value; emit(); },
        }),
        value === "all" ? " all of these tags (and)" : " any of these tags (or)")));
    return h("fieldset", { class: "group" },
      h("legend", {}, "Tags"),
      mode,
      h("ul", { class: "chips", "aria-label": "Chosen tags" }, model.tags.map((name) => h("li", {},
        h("span", {}, name),
        h("button", {
          type: "button", class: "chip-remove", "aria-label": `Remove tag ${name}`, disabled: readOnly,
          onclick: () => { model.tags = model.tags.filter((tag) => tag !== name); emit(); render(); },
        }, "×")))),
      readOnly ? null : h("div", { class: "row" }, field("Tag to add", picker), add),
      atLimit ? h("p", { class: "notice warn", role: "status" }, `This segment names ${used} tags: the limit is ${limit}. Remove one to add another.`) : null,
      catalog.tags.length === 0 ? h("p", { class: "hint" }, "No tags yet. Tags are created on the Contacts screen, before they are used here.") : null);
  }

  function conditionRow(condition, index) {
    const set = (name) => (event) => {
      condition[name] = event.target.type === "checkbox" ? event.target.checked : event.target.value;
      emit();
      if (name === "op" || name === "agg") render();
    };
    const number = index + 1;
    const parts = [];
    if (condition.kind === "attr") {
      parts.push(field(`Attribute ${number}`, h("input", { value: condition.attr, placeholder: "country", oninput: set("attr"), disabled: readOnly })));
      parts.push(field(`Comparison ${number}`, select(ATTRIBUTE_OPS.map((op) => [op, op]), condition.op, { onchange: set("op"), disabled: readOnly })));
      if (!NO_VALUE_OPS.has(condition.op)) {
        parts.push(field(`Value ${number}`, h("input", { value: condition.value, oninput: set("value"), disabled: readOnly }),
          "Numbers, true/false and [lists] are read as JSON; quote \"123\" to compare as text; durations like 60d."));
      }
    } else if (condition.kind === "event") {
      parts.push(field(`Event type ${number}`, h("input", { value: condition.event, oninput: set("event"), disabled: readOnly })));
      parts.push(field(`Within ${number}`, h("input", { value: condition.within, placeholder: "60d", oninput: set("within"), disabled: readOnly })));
      parts.push(field(`Aggregate ${number}`, select(EVENT_AGGREGATES.map((agg) => [agg, agg]), condition.agg, { onchange: set("agg"), disabled: readOnly })));
      if (!["count", "share"].includes(condition.agg)) {
        parts.push(field(`Field ${number}`, h("input", { value: condition.field, placeholder: "amount", oninput: set("field"), disabled: readOnly })));
      }
      parts.push(field(`Compare ${number}`, select(COMPARISONS.map((op) => [op, op]), condition.op, { onchange: set("op"), disabled: readOnly })));
      parts.push(field(`Amount ${number}`, h("input", { value: condition.value, oninput: set("value"), disabled: readOnly })));
      parts.push(field(`Where property ${number}`, h("input", { value: condition.whereProp, placeholder: "category", oninput: set("whereProp"), disabled: readOnly })));
      parts.push(field(`Where value ${number}`, h("input", { value: condition.whereValue, oninput: set("whereValue"), disabled: readOnly })));
    } else if (condition.kind === "group") {
      parts.push(field(`Group ${number}`, select([["", "Choose a group…"], ...catalog.groups.map((group) => [group.id, group.name])], condition.group, { onchange: set("group"), disabled: readOnly })));
    } else {
      parts.push(field(`Segment ${number}`, select([["", "Choose a segment…"], ...catalog.segments.map((segment) => [segment.id, segment.name])], condition.segment, { onchange: set("segment"), disabled: readOnly })));
    }
    return h("li", { class: "condition" },
      h("span", { class: "kind" }, KINDS[condition.kind]),
      h("div", { class: "row wrap" }, parts),
      h("label", { class: "inline" }, h("input", { type: "checkbox", checked: condition.negate, onchange: set("negate"), disabled: readOnly }), ` Exclude (not) ${number}`),
      readOnly ? null : h("button", {
        type: "button", class: "link", onclick: () => { model.conditions.splice(index, 1); emit(); render(); },
      }, `Remove condition ${number}`));
  }

  function conditionSection() {
    const kind = select(Object.entries(KINDS), "attr");
    return h("fieldset", { class: "group" },
      h("legend", {}, "Advanced conditions (all must hold)"),
      h("ol", { class: "conditions" }, model.conditions.map(conditionRow)),
      readOnly ? null : h("div", { class: "row" }, field("Condition kind", kind),
        h("button", { type: "button", onclick: () => { model.conditions.push(newCondition(kind.value)); emit(); render(); } }, "Add condition")));
  }

  function render() {
    if (jsonOnly) {
      show(builder, h("p", { class: "notice info" }, "These criteria go beyond what the builder shows (nested and/or): edit them in Criteria JSON."));
      return;
    }
    show(builder, tagSection(), conditionSection());
  }

  render();
  const element = h("div", { class: "criteria" },
    builder,
    h("details", { class: "json", open: true },
      h("summary", {}, "Criteria JSON"),
      field("Criteria JSON", json, "The same criteria as JSON (the API's grammar). Edits here update the builder."),
      jsonProblem));
  return { element, get criteria() { return current; } };
}

/** The live exact count and a sample: debounced, and an older answer never replaces a newer one. */
export function liveCount({ delay = 300 } = {}) {
  const status = h("p", { role: "status", class: "count", "aria-live": "polite" }, "Add criteria to count members.");
  const sample = h("ul", { class: "sample", "aria-label": "Sample members" });
  let asked = 0;
  let controller = null;
  const run = debounce(async (criteria, number) => {
    if (controller) controller.abort();
    controller = new AbortController();
    try {
      const result = await api("POST", "segments/preview", { criteria, sample_size: 5 }, { signal: controller.signal });
      if (number !== asked) return;
      status.textContent = `${result.count} members match now`;
      status.dataset.count = String(result.count);
      show(sample, result.sample.map((contact) => h("li", {}, contactName(contact), contact.email ? h("span", { class: "muted" }, ` ${contact.email}`) : null)));
    } catch (problem) {
      if (problem.name === "AbortError" || number !== asked) return;
      status.textContent = `Cannot count: ${problem.message}`;
      delete status.dataset.count;
      show(sample);
    }
  }, delay);
  return {
    element: h("section", { class: "live", "aria-label": "Live count" }, status, sample),
    update(criteria) {
      asked += 1;
      if (criteria === undefined) return;
      if (criteria === null) {
        status.textContent = "Add criteria to count members.";
        delete status.dataset.count;
        show(sample);
        return;
      }
      status.textContent = "Counting…";
      delete status.dataset.count;
      run(criteria, asked);
    },
  };
}

/** What the builder offers: the tenant's tags, groups and segments, and its tags-per-segment limit. */
export async function loadCatalog(me, all) {
  const [tags, groups, segments] = await Promise.all([all("tags"), all("groups"), all("segments")]);
  return { tags, groups, segments, tagLimit: me.limits.tags_per_segment ?? 10 };
}

/** "Save as segment" for criteria built elsewhere (Customer Overview, Segment Mixer): a name, then the new
 * segment's page. `criteriaOf()` gives the criteria, or null with `missing` said instead. */
export function saveAsSegment({ readOnly, criteriaOf, missing }) {
  if (readOnly) return h("p", { class: "muted" }, "Viewer keys cannot save segments.");
  const name = h("input", { required: true, maxlength: 200 });
  const outcome = h("div", { "aria-live": "polite" });
  return h("div", {}, h("form", {
    class: "row",
    onsubmit: async (event) => {
      event.preventDefault();
      const criteria = criteriaOf();
      if (!criteria) return show(outcome, notice(missing, "error"));
      try {
        const segment = await api("POST", "segments", { name: name.value.trim(), criteria });
        location.hash = `#/segments/${encodeURIComponent(segment.id)}`;
      } catch (error) {
        show(outcome, notice(error.message, "error"));
      }
    },
  }, field("Segment name", name), h("button", { type: "submit", class: "primary" }, "Save as segment")), outcome);
}
