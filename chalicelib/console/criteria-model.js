// The criteria builder's model and its two-way mapping to the API's criteria JSON. No DOM here: the
// functions are pure so `node --test` checks them (tests/console/criteria-model.test.mjs).
//
// A model is what the builder can show:
//   {tagMode: "all" | "any", tags: ["vip", ...], conditions: [{kind, negate, ...}]}
// and maps to {"all": [tag nodes or one {"any": [...]} of tags, condition nodes or {"not": node}]}.
// Criteria the builder cannot show (nested and/or beyond that shape) map to null: the JSON editor
// stays their only editor, and the builder says so.

export const ATTRIBUTE_OPS = [
  "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "contains", "starts_with",
  "exists", "not_exists", "between", "within_last", "older_than",
];
export const NO_VALUE_OPS = new Set(["exists", "not_exists"]);
export const EVENT_AGGREGATES = ["count", "sum", "avg", "min", "max", "share"];
export const COMPARISONS = ["gt", "gte", "lt", "lte", "eq", "ne"];

export function emptyModel() {
  return { tagMode: "all", tags: [], conditions: [] };
}

export function newCondition(kind) {
  switch (kind) {
    case "attr":
      return { kind, negate: false, attr: "", op: "eq", value: "" };
    case "event":
      return { kind, negate: false, event: "purchase", within: "60d", agg: "count", field: "", op: "gte", value: "1", whereProp: "", whereOp: "eq", whereValue: "" };
    case "group":
      return { kind, negate: false, group: "" };
    case "segment":
      return { kind, negate: false, segment: "" };
    default:
      throw new Error(`unknown condition kind ${kind}`);
  }
}

/** A typed value from what a person typed: a number, true/false, null, a quoted string or a JSON list are
 * read as JSON; anything else is the text itself. */
export function parseValue(text) {
  const trimmed = String(text).trim();
  if (/^(-?\d|"|\[|true$|false$|null$)/.test(trimmed)) {
    try {
      return JSON.parse(trimmed);
    } catch {
      return text;
    }
  }
  return text;
}

/** What to show for a value so that parseValue gives it back. */
export function valueText(value) {
  if (typeof value === "string") return parseValue(value) === value ? value : JSON.stringify(value);
  return value === undefined ? "" : JSON.stringify(value);
}

function conditionNode(condition) {
  switch (condition.kind) {
    case "attr": {
      const node = { attr: condition.attr.trim(), op: condition.op };
      if (!NO_VALUE_OPS.has(condition.op)) node.value = parseValue(condition.value);
      return node;
    }
    case "event": {
      const node = { event: condition.event.trim() };
      if (condition.within.trim()) node.within = condition.within.trim();
      node.agg = condition.agg;
      if (condition.agg !== "count" && condition.agg !== "share" && condition.field.trim()) node.field = condition.field.trim();
      node.op = condition.op;
      node.value = parseValue(condition.value);
      if (condition.whereProp.trim()) {
        node.where = [{ prop: condition.whereProp.trim(), op: condition.whereOp, value: parseValue(condition.whereValue) }];
      }
      return node;
    }
    case "group":
      return { group: condition.group };
    case "segment":
      return { segment: condition.segment };
    default:
      throw new Error(`unknown condition kind ${condition.kind}`);
  }
}

/** The criteria of a model; null when it selects nothing yet. */
export function toCriteria(model) {
  const nodes = [];
  if (model.tagMode === "any" && model.tags.length > 1) nodes.push({ any: model.tags.map((tag) => ({ tag })) });
  else nodes.push(...model.tags.map((tag) => ({ tag })));
  for (const condition of model.conditions) {
    const node = conditionNode(condition);
    nodes.push(condition.negate ? { not: node } : node);
  }
  if (nodes.length === 0) return null;
  return nodes.length === 1 ? nodes[0] : { all: nodes };
}

function isTagNode(node) {
  return node && typeof node === "object" && Object.keys(node).length === 1 && typeof node.tag === "string";
}

function conditionFrom(node, negate) {
  if (!node || typeof node !== "object" || Array.isArray(node)) return null;
  const keys = Object.keys(node);
  if (keys.length === 1 && typeof node.group === "string") return { kind: "group", negate, group: node.group };
  if (keys.length === 1 && typeof node.segment === "string") return { kind: "segment", negate, segment: node.segment };
  if (typeof node.attr === "string" && keys.every((key) => ["attr", "op", "value"].includes(key))) {
    return { kind: "attr", negate, attr: node.attr, op: node.op, value: "value" in node ? valueText(node.value) : "" };
  }
  if (typeof node.event === "string" && keys.every((key) => ["event", "within", "agg", "field", "op", "value", "where"].includes(key))) {
    const where = node.where || [];
    if (where.length > 1) return null;
    const [first] = where;
    return {
      kind: "event",
      negate,
      event: node.event,
      within: node.within || "",
      agg: node.agg || "count",
      field: node.field || "",
      op: node.op || "gte",
      value: "value" in node ? valueText(node.value) : "1",
      whereProp: first ? first.prop : "",
      whereOp: first ? first.op : "eq",
      whereValue: first ? valueText(first.value) : "",
    };
  }
  return null;
}

/** The model showing `criteria`, or null when the builder cannot show them. */
export function fromCriteria(criteria) {
  const model = emptyModel();
  if (criteria === null || criteria === undefined) return model;
  const nodes = criteria.all && Object.keys(criteria).length === 1 ? criteria.all : [criteria];
  let anyGroups = 0;
  for (const node of nodes) {
    if (isTagNode(node)) {
      model.tags.push(node.tag);
    } else if (node && Array.isArray(node.any) && Object.keys(node).length === 1 && node.any.length > 1 && node.any.every(isTagNode)) {
      anyGroups += 1;
      model.tagMode = "any";
      model.tags.push(...node.any.map((tagNode) => tagNode.tag));
    } else {
      const negate = Boolean(node && node.not && Object.keys(node).length === 1);
      const condition = conditionFrom(negate ? node.not : node, negate);
      if (condition === null) return null;
      model.conditions.push(condition);
    }
  }
  if (anyGroups > 1 || (anyGroups === 1 && nodes.filter(isTagNode).length > 0)) return null;
  return model;
}

/** The distinct tags that criteria name anywhere (the tenant's tags-per-segment limit counts these). */
export function tagsIn(criteria, found = new Set()) {
  if (Array.isArray(criteria)) criteria.forEach((node) => tagsIn(node, found));
  else if (criteria && typeof criteria === "object") {
    if (typeof criteria.tag === "string") found.add(criteria.tag);
    for (const value of Object.values(criteria)) if (typeof value === "object") tagsIn(value, found);
  }
  return found;
}

/** Customer Overview picks as criteria: {facet: {value key: {criteria, exclude}}}. A facet's included values
 * combine with or, facets with and, and each excluded value adds a not. */
export function overviewCriteria(chosen) {
  const nodes = [];
  for (const values of Object.values(chosen)) {
    const picks = Object.values(values);
    const included = picks.filter((pick) => !pick.exclude).map((pick) => pick.criteria);
    if (included.length === 1) nodes.push(included[0]);
    else if (included.length > 1) nodes.push({ any: included });
    for (const pick of picks.filter((candidate) => candidate.exclude)) nodes.push({ not: pick.criteria });
  }
  if (nodes.length === 0) return null;
  return nodes.length === 1 ? nodes[0] : { all: nodes };
}

/** Segment Mixer picks as criteria: [{id, exclude}], the included ones combined with `mode` ("all" or "any"). */
export function mixCriteria(picks, mode) {
  const included = picks.filter((pick) => !pick.exclude).map((pick) => ({ segment: pick.id }));
  const excluded = picks.filter((pick) => pick.exclude).map((pick) => ({ not: { segment: pick.id } }));
  if (included.length === 0) return null;
  const joined = included.length === 1 ? included[0] : { [mode]: included };
  if (excluded.length === 0) return joined;
  return { all: [...(mode === "all" && included.length > 1 ? included : [joined]), ...excluded] };
}
