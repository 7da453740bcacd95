// The console's pure criteria functions (chalicelib/console/criteria-model.js), run by `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  emptyModel, fromCriteria, mixCriteria, newCondition, overviewCriteria, parseValue, tagsIn, toCriteria, valueText,
} from "../../chalicelib/console/criteria-model.js";

test("tags combine with and, or with any, and an empty builder selects nothing", () => {
  assert.equal(toCriteria(emptyModel()), null);
  assert.deepEqual(toCriteria({ tagMode: "all", tags: ["vip"], conditions: [] }), { tag: "vip" });
  assert.deepEqual(toCriteria({ tagMode: "all", tags: ["vip", "local"], conditions: [] }), { all: [{ tag: "vip" }, { tag: "local" }] });
  assert.deepEqual(toCriteria({ tagMode: "any", tags: ["vip", "local"], conditions: [] }), { any: [{ tag: "vip" }, { tag: "local" }] });
});

test("conditions become criteria nodes, excluded ones under not", () => {
  const attr = { ...newCondition("attr"), attr: "country", op: "in", value: '["CA", "US"]' };
  const event = { ...newCondition("event"), within: "60d", agg: "sum", field: "amount", op: "gt", value: "100", whereProp: "category", whereValue: "family" };
  const model = { tagMode: "any", tags: ["vip", "local"], conditions: [attr, { ...newCondition("group"), group: "grp_1", negate: true }, event] };
  assert.deepEqual(toCriteria(model), {
    all: [
      { any: [{ tag: "vip" }, { tag: "local" }] },
      { attr: "country", op: "in", value: ["CA", "US"] },
      { not: { group: "grp_1" } },
      { event: "purchase", within: "60d", agg: "sum", field: "amount", op: "gt", value: 100, where: [{ prop: "category", op: "eq", value: "family" }] },
    ],
  });
});

test("criteria the builder made come back as the same model, so the JSON editor and the builder agree", () => {
  const models = [
    { tagMode: "all", tags: ["vip", "local"], conditions: [] },
    { tagMode: "any", tags: ["a", "b", "c"], conditions: [{ ...newCondition("segment"), segment: "seg_1", negate: true }] },
    { tagMode: "all", tags: [], conditions: [{ ...newCondition("attr"), attr: "zip", op: "eq", value: '"01234"' }, { ...newCondition("attr"), attr: "vip", op: "exists", value: "" }] },
  ];
  for (const model of models) {
    const criteria = toCriteria(model);
    assert.deepEqual(toCriteria(fromCriteria(criteria)), criteria);
  }
});

test("criteria beyond the builder's shape are JSON-only (null), never silently changed", () => {
  assert.equal(fromCriteria({ any: [{ tag: "a" }, { all: [{ tag: "b" }, { tag: "c" }] }] }), null);
  assert.equal(fromCriteria({ all: [{ tag: "a" }, { any: [{ tag: "b" }, { tag: "c" }] }] }), null); // and + or of tags
  assert.equal(fromCriteria({ not: { not: { tag: "a" } } }), null);
  assert.equal(fromCriteria({ event: "purchase", where: [{ prop: "a", op: "eq", value: 1 }, { prop: "b", op: "eq", value: 2 }] }), null);
  assert.deepEqual(fromCriteria(null), emptyModel());
});

test("typed values: numbers, booleans, lists and quoted text read as JSON; the rest is text", () => {
  assert.equal(parseValue("42"), 42);
  assert.equal(parseValue("true"), true);
  assert.deepEqual(parseValue('["a", 1]'), ["a", 1]);
  assert.equal(parseValue('"42"'), "42");
  assert.equal(parseValue("Toronto"), "Toronto");
  assert.equal(parseValue("60d"), "60d");
  assert.equal(parseValue("-"), "-");
  for (const value of ["42", "Toronto", "true", 7, false, ["x"], "[not json"]) assert.deepEqual(parseValue(valueText(value)), value);
});

test("tags named anywhere are counted once for the tags-per-segment limit", () => {
  assert.deepEqual([...tagsIn({ all: [{ tag: "a" }, { not: { any: [{ tag: "b" }, { tag: "a" }] } }] })].sort(), ["a", "b"]);
});

test("Customer Overview clicks: values of a facet with or, facets with and, exclusions as not", () => {
  const chosen = {
    tags: { '"vip"': { criteria: { tag: "vip" }, exclude: false }, '"churn"': { criteria: { tag: "churn" }, exclude: true } },
    "attributes.country": { '"CA"': { criteria: { attr: "country", op: "eq", value: "CA" }, exclude: false }, '"US"': { criteria: { attr: "country", op: "eq", value: "US" }, exclude: false } },
  };
  assert.deepEqual(overviewCriteria(chosen), {
    all: [{ tag: "vip" }, { not: { tag: "churn" } }, { any: [{ attr: "country", op: "eq", value: "CA" }, { attr: "country", op: "eq", value: "US" }] }],
  });
  assert.equal(overviewCriteria({ tags: {} }), null);
});

test("Segment Mixer: included segments with and or or, excluded ones under not", () => {
  assert.equal(mixCriteria([], "all"), null);
  assert.equal(mixCriteria([{ id: "s1", exclude: true }], "all"), null);
  assert.deepEqual(mixCriteria([{ id: "s1", exclude: false }], "any"), { segment: "s1" });
  assert.deepEqual(mixCriteria([{ id: "s1", exclude: false }, { id: "s2", exclude: false }], "any"), { any: [{ segment: "s1" }, { segment: "s2" }] });
  assert.deepEqual(mixCriteria([{ id: "s1", exclude: false }, { id: "s2", exclude: false }, { id: "s3", exclude: true }], "all"),
    { all: [{ segment: "s1" }, { segment: "s2" }, { not: { segment: "s3" } }] });
  assert.deepEqual(mixCriteria([{ id: "s1", exclude: false }, { id: "s2", exclude: false }, { id: "s3", exclude: true }], "any"),
    { all: [{ any: [{ segment: "s1" }, { segment: "s2" }] }, { not: { segment: "s3" } }] });
});
