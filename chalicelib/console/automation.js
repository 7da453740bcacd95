// Triggers, announcements and challenges: list, create, edit, enable or disable, and a trigger's runs. A
// trigger's conditions use the same criteria builder as segments.

import { all, api } from "./api.js";
import { criteriaEditor, loadCatalog } from "./criteria-builder.js";
import { field, formatNumber, formatTime, h, localToRfc3339, notice, problemText, rfc3339ToLocal, segmentBoxes, show } from "./dom.js";

const EVENT_TYPES = [
  ["segment.entered", "A contact enters a segment"], ["segment.exited", "A contact leaves a segment"],
  ["contact.created", "A contact is created"], ["tag.added", "A tag is added to a contact"],
  ["event.received", "An event is received"], ["schedule", "On a schedule, for segment members"],
];
const ACTION_TYPES = [["add_tag", "Add a tag"], ["remove_tag", "Remove a tag"], ["send_email", "Send an email"], ["reward", "Grant a reward"], ["announce", "Show an announcement"]];

export async function automationScreen(context) {
  const [kind, id] = context.params;
  if (kind === "triggers" && id) return triggerEditor(context, id);
  if ((kind === "announcements" || kind === "challenges") && id) return engagementEditor(context, kind, id);
  const [triggers, announcements, challenges] = await Promise.all([all("triggers"), all("announcements"), all("challenges")]);
  const list = (title, rows, kindPath, columns, cells) => h("section", { class: "card" },
    h("div", { class: "heading" }, h("h2", {}, title),
      context.readOnly ? null : h("button", { type: "button", onclick: () => { location.hash = `#/triggers/${kindPath}/new`; } }, `Create ${kindPath.slice(0, -1)}`)),
    rows.length === 0 ? h("p", { class: "empty" }, `No ${title.toLowerCase()} yet.`) : h("table", {},
      h("thead", {}, h("tr", {}, columns.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, rows.map((row) => h("tr", {}, cells(row))))));
  return h("section", {},
    h("h1", {}, "Triggers, announcements and challenges"),
    list("Triggers", triggers, "triggers", ["Name", "When", "Enabled", "Actions", "Note"], (trigger) => [
      h("th", { scope: "row" }, h("a", { href: `#/triggers/triggers/${encodeURIComponent(trigger.id)}` }, trigger.name)),
      h("td", {}, trigger.event.type), h("td", {}, trigger.enabled ? "yes" : "no"),
      h("td", {}, trigger.actions.map((action) => action.type).join(", ")), h("td", {}, trigger.status_reason || "—")]),
    list("Announcements", announcements, "announcements", ["Title", "Window", "Active now"], (item) => [
      h("th", { scope: "row" }, h("a", { href: `#/triggers/announcements/${encodeURIComponent(item.id)}` }, item.title)),
      h("td", {}, `${formatTime(item.starts_at)} – ${formatTime(item.ends_at)}`), h("td", {}, item.active ? "yes" : "no")]),
    list("Challenges", challenges, "challenges", ["Name", "Window", "Goal", "Reward", "Active now"], (item) => [
      h("th", { scope: "row" }, h("a", { href: `#/triggers/challenges/${encodeURIComponent(item.id)}` }, item.name)),
      h("td", {}, `${formatTime(item.starts_at)} – ${formatTime(item.ends_at)}`),
      h("td", {}, item.goal.count ? `${item.goal.count} × ${item.goal.event_type}` : `${item.goal.amount} of ${item.goal.event_type}`),
      h("td", {}, `${item.reward.amount} ${item.reward.currency || "points"}`), h("td", {}, item.active ? "yes" : "no")]));
}

function actionRow(action, index, catalog, announcements, readOnly, changed) {
  const set = (name, transform = (value) => value) => (event) => { action[name] = transform(event.target.value); changed(false); };
  const number = index + 1;
  const type = h("select", { disabled: readOnly, onchange: (event) => {
    for (const key of Object.keys(action)) delete action[key];
    action.type = event.target.value;
    changed(true);
  } }, ACTION_TYPES.map(([value, label]) => h("option", { value, selected: value === action.type }, label)));
  const parts = [field(`Action ${number}`, type)];
  if (action.type === "add_tag" || action.type === "remove_tag") {
    parts.push(field(`Tag of action ${number}`, h("select", { disabled: readOnly, onchange: set("tag") },
      h("option", { value: "" }, "Choose a tag…"), catalog.tags.map((tag) => h("option", { value: tag.name, selected: tag.name === action.tag }, tag.name)))));
  } else if (action.type === "send_email") {
    parts.push(field(`From of action ${number}`, h("input", { value: action.from || "", oninput: set("from", (v) => v || null), readonly: readOnly })));
    parts.push(field(`Subject of action ${number}`, h("input", { value: action.subject || "", oninput: set("subject"), readonly: readOnly })));
    parts.push(field(`HTML of action ${number}`, h("textarea", { rows: 3, class: "code", oninput: set("html", (v) => v || null), readonly: readOnly }, action.html || "")));
    parts.push(field(`Text of action ${number}`, h("textarea", { rows: 3, class: "code", oninput: set("text", (v) => v || null), readonly: readOnly }, action.text || "")));
  } else if (action.type === "reward") {
    parts.push(field(`Amount of action ${number}`, h("input", { type: "number", min: "0", step: "any", value: action.amount ?? "", oninput: set("amount", Number), readonly: readOnly })));
    parts.push(field(`Currency of action ${number}`, h("input", { value: action.currency || "points", oninput: set("currency"), readonly: readOnly })));
    parts.push(field(`Note of action ${number}`, h("input", { value: action.note || "", oninput: set("note", (v) => v || null), readonly: readOnly })));
  } else if (action.type === "announce") {
    parts.push(field(`Announcement of action ${number}`, h("select", { disabled: readOnly, onchange: set("announcement_id") },
      h("option", { value: "" }, "Choose an announcement…"), announcements.map((item) => h("option", { value: item.id, selected: item.id === action.announcement_id }, item.title)))));
  }
  return h("li", { class: "condition" }, h("div", { class: "row wrap" }, parts),
    readOnly ? null : h("button", { type: "button", class: "link", onclick: () => changed(true, index) }, `Remove action ${number}`));
}

async function triggerEditor({ me, readOnly }, id) {
  const creating = id === "new";
  const [catalog, announcements, trigger] = await Promise.all([
    loadCatalog(me, all), all("announcements"), creating ? null : api("GET", `triggers/${encodeURIComponent(id)}`),
  ]);
  const event = trigger ? { ...trigger.event } : { type: "segment.entered", segments: [] };
  const actions = trigger ? trigger.actions.map((action) => ({ ...action })) : [{ type: "add_tag" }];
  let conditions = trigger ? trigger.conditions : null;
  const name = h("input", { value: trigger ? trigger.name : "", required: true, readonly: readOnly });
  const enabled = h("input", { type: "checkbox", id: "trigger-enabled", checked: trigger ? trigger.enabled : true, disabled: readOnly });
  const eventPlace = h("div", {});
  const actionList = h("ol", { class: "conditions" });
  const problems = h("div", { "aria-live": "assertive" });
  let segmentsChosen = null;

  function drawEvent() {
    const type = h("select", { disabled: readOnly, onchange: (change) => {
      event.type = change.target.value;
      for (const key of ["segments", "tag", "event_type", "min_amount", "expression"]) delete event[key];
      drawEvent();
    } }, EVENT_TYPES.map(([value, label]) => h("option", { value, selected: value === event.type }, label)));
    const parts = [field("When", type)];
    segmentsChosen = null;
    if (["segment.entered", "segment.exited", "schedule"].includes(event.type)) {
      segmentsChosen = segmentBoxes("Segments", catalog.segments, event.segments || [], "trigger-segment", readOnly);
      parts.push(segmentsChosen.element);
    }
    if (event.type === "tag.added") {
      parts.push(field("Tag", h("select", { disabled: readOnly, onchange: (change) => { event.tag = change.target.value; } },
        h("option", { value: "" }, "Choose a tag…"), catalog.tags.map((tag) => h("option", { value: tag.name, selected: tag.name === event.tag }, tag.name)))));
    }
    if (event.type === "event.received") {
      parts.push(field("Event type", h("input", { value: event.event_type || "", readonly: readOnly, oninput: (change) => { event.event_type = change.target.value; } })));
      parts.push(field("Minimum amount (optional)", h("input", { type: "number", step: "any", value: event.min_amount ?? "", readonly: readOnly,
        oninput: (change) => { if (change.target.value === "") delete event.min_amount; else event.min_amount = Number(change.target.value); } })));
    }
    if (event.type === "schedule") {
      parts.push(field("Schedule expression", h("input", { value: event.expression || "", placeholder: "rate(1 day) or cron(0 9 * * ? *)", readonly: readOnly,
        oninput: (change) => { event.expression = change.target.value; } })));
    }
    show(eventPlace, parts);
  }

  function drawActions(rebuild = true, removeIndex = undefined) {
    if (removeIndex !== undefined) actions.splice(removeIndex, 1);
    if (rebuild) show(actionList, actions.map((action, index) => actionRow(action, index, catalog, announcements, readOnly, drawActions)));
  }
  drawEvent();
  drawActions();

  const editor = criteriaEditor({ catalog, criteria: conditions, readOnly, onChange: (criteria) => { conditions = criteria; } });
  async function save(submit) {
    submit.preventDefault();
    if (segmentsChosen) event.segments = segmentsChosen.value;
    if (conditions === undefined) return show(problems, notice("Fix the conditions' JSON first.", "error"));
    const body = { name: name.value.trim(), enabled: enabled.checked, event, conditions, actions };
    try {
      const saved = creating ? await api("POST", "triggers", body) : await api("PATCH", `triggers/${encodeURIComponent(trigger.id)}`, body);
      if (creating) location.hash = `#/triggers/triggers/${encodeURIComponent(saved.id)}`;
      else show(problems, notice(`Saved (version ${saved.version}).`));
    } catch (error) {
      show(problems, notice(problemText(error), "error"));
    }
  }
  const form = h("form", { class: "card", onsubmit: save },
    field("Trigger name", name),
    h("div", { class: "check" }, enabled, h("label", { for: enabled.id }, "Enabled")),
    eventPlace,
    h("h2", {}, "Conditions (optional)"),
    h("p", { class: "hint" }, "Checked on the contact when the trigger fires; leave empty to act on every contact."),
    editor.element,
    h("h2", {}, "Actions"),
    actionList,
    readOnly ? null : h("button", { type: "button", onclick: () => { actions.push({ type: "add_tag" }); drawActions(); } }, "Add action"),
    problems,
    readOnly ? null : h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Save trigger")));
  const sections = [h("p", {}, h("a", { href: "#/triggers" }, "← Triggers")), h("h1", {}, creating ? "Create trigger" : trigger.name), form];
  if (!creating) sections.push(await runsSection(trigger, readOnly));
  return h("section", {}, sections);
}

async function runsSection(trigger, readOnly) {
  const runs = await api("GET", `triggers/${encodeURIComponent(trigger.id)}/runs?limit=20`);
  const outcome = h("div", { "aria-live": "polite" });
  return h("section", { class: "card" },
    h("div", { class: "heading" }, h("h2", {}, "Runs"),
      !readOnly && trigger.event.type === "schedule" ? h("button", { type: "button", onclick: async () => {
        try {
          await api("POST", `triggers/${encodeURIComponent(trigger.id)}/run`);
          show(outcome, notice("Run started."));
        } catch (error) {
          show(outcome, notice(problemText(error), "error"));
        }
      } }, "Run now") : null),
    outcome,
    runs.items.length === 0 ? h("p", { class: "empty" }, "No runs yet.") : h("table", {},
      h("thead", {}, h("tr", {}, ["Started", "Kind", "Status", "Contacts", "Actions applied"].map((label) => h("th", { scope: "col" }, label)))),
      h("tbody", {}, runs.items.map((run) => h("tr", {},
        h("td", {}, formatTime(run.started_at)), h("td", {}, run.kind), h("td", {}, run.status),
        h("td", { class: "number" }, formatNumber(run.contacts)), h("td", { class: "number" }, formatNumber(run.actions_applied)))))));
}

async function engagementEditor({ readOnly }, kind, id) {
  const creating = id === "new";
  const singular = kind.slice(0, -1);
  const [segments, item] = await Promise.all([all("segments"), creating ? null : api("GET", `${kind}/${encodeURIComponent(id)}`)]);
  const chosen = segmentBoxes("Shown to members of", segments, item ? item.segments : [], `${singular}-segment`, readOnly);
  const starts = h("input", { type: "datetime-local", required: true, value: rfc3339ToLocal(item && item.starts_at), readonly: readOnly });
  const ends = h("input", { type: "datetime-local", required: true, value: rfc3339ToLocal(item && item.ends_at), readonly: readOnly });
  const problems = h("div", { "aria-live": "assertive" });
  const fields = [];
  let body;
  if (kind === "announcements") {
    const title = h("input", { required: true, value: item ? item.title : "", readonly: readOnly });
    const text = h("textarea", { rows: 4, required: true, readonly: readOnly }, item ? item.body : "");
    fields.push(field("Title", title), field("Body", text));
    body = () => ({ title: title.value, body: text.value });
  } else {
    const name = h("input", { required: true, value: item ? item.name : "", readonly: readOnly });
    const eventType = h("input", { required: true, value: item ? item.goal.event_type : "purchase", readonly: readOnly });
    const goalCount = h("input", { type: "number", min: "1", value: item && item.goal.count ? item.goal.count : "", readonly: readOnly });
    const goalAmount = h("input", { type: "number", step: "any", value: item && item.goal.amount ? item.goal.amount : "", readonly: readOnly });
    const reward = h("input", { type: "number", step: "any", required: true, value: item ? item.reward.amount : "", readonly: readOnly });
    const currency = h("input", { value: item ? item.reward.currency || "points" : "points", readonly: readOnly });
    fields.push(field("Challenge name", name), field("Goal event type", eventType), field("Goal: number of events", goalCount, "Or a total amount below; one of the two."),
      field("Goal: total amount", goalAmount), field("Reward amount", reward), field("Reward currency", currency));
    body = () => ({
      name: name.value,
      goal: { event_type: eventType.value, ...(goalCount.value ? { count: Number(goalCount.value) } : { amount: Number(goalAmount.value) }) },
      reward: { amount: Number(reward.value), currency: currency.value || "points" },
    });
  }
  const form = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      const payload = { ...body(), segments: chosen.value, starts_at: localToRfc3339(starts.value), ends_at: localToRfc3339(ends.value) };
      try {
        const saved = creating ? await api("POST", kind, payload) : await api("PATCH", `${kind}/${encodeURIComponent(item.id)}`, payload);
        if (creating) location.hash = `#/triggers/${kind}/${encodeURIComponent(saved.id)}`;
        else show(problems, notice("Saved."));
      } catch (error) {
        show(problems, notice(problemText(error), "error"));
      }
    },
  }, fields, chosen.element, field("Starts", starts), field("Ends", ends), problems,
  readOnly ? null : h("button", { type: "submit", class: "primary" }, `Save ${singular}`));
  return h("section", {}, h("p", {}, h("a", { href: "#/triggers" }, "← Triggers, announcements and challenges")),
    h("h1", {}, creating ? `Create ${singular}` : (item.title || item.name)), form);
}
