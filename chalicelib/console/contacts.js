// Contacts: find and filter them, one contact's page (attributes, tags, events, rewards and — for admins —
// its segments), and the tags and groups they are organised by (a tag is created here before use).

import { all, api, query } from "./api.js";
import { contactName, field, formatNumber, formatTime, h, notice, show } from "./dom.js";

function select(label, options, value) {
  const control = h("select", {}, h("option", { value: "" }, "Any"), options.map(([optionValue, text]) => h("option", { value: optionValue, selected: optionValue === value }, text)));
  return [field(label, control), control];
}

export async function contactsScreen({ me, readOnly }) {
  const [tags, groups, segments] = await Promise.all([
    all("tags"), all("groups"), me.features.segments ? all("segments") : Promise.resolve([]),
  ]);
  const groupNames = Object.fromEntries(groups.map((group) => [group.id, group.name]));
  const search = h("input", { type: "search", placeholder: "email, name or external id" });
  const [tagField, tag] = select("Tag", tags.map((item) => [item.name, item.name]));
  const [groupField, group] = select("Group", groups.map((item) => [item.id, item.name]));
  const [segmentField, segment] = select("Segment", segments.map((item) => [item.id, item.name]));
  if (!me.features.segments) segmentField.hidden = true;
  const results = h("div", { "aria-live": "polite" });
  const pages = [null];

  async function load(cursor) {
    let path;
    if (segment.value) path = `segments/${encodeURIComponent(segment.value)}/members${query({ limit: 25, cursor })}`;
    else path = `contacts${query({ q: search.value.trim(), tag: tag.value, group: group.value, limit: 25, cursor })}`;
    try {
      const page = await api("GET", path);
      show(results,
        page.items.length === 0 ? h("p", { class: "empty" }, "No contacts match.") : h("table", {},
          h("caption", { class: "visually-hidden" }, "Contacts"),
          h("thead", {}, h("tr", {}, ["Name", "Email", "Group", "Tags"].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {}, page.items.map((contact) => h("tr", {},
            h("th", { scope: "row" }, h("a", { href: `#/contacts/${encodeURIComponent(contact.id)}` }, contactName(contact))),
            h("td", {}, contact.email || "—"),
            h("td", {}, contact.group ? groupNames[contact.group] || contact.group : "—"),
            h("td", {}, (contact.tags || []).join(", ") || "—"))))),
        h("div", { class: "row" },
          pages.length > 1 ? h("button", { type: "button", onclick: () => { pages.pop(); load(pages[pages.length - 1]); } }, "Previous page") : null,
          page.next_cursor ? h("button", { type: "button", onclick: () => { pages.push(page.next_cursor); load(page.next_cursor); } }, "Next page") : null));
    } catch (error) {
      show(results, notice(error.message, "error"));
    }
  }
  const filters = h("form", {
    class: "row wrap card",
    role: "search",
    onsubmit: (event) => { event.preventDefault(); pages.splice(1); load(null); },
  }, field("Search contacts", search), tagField, groupField, segmentField, h("button", { type: "submit" }, "Filter"));

  await load(null);
  return h("section", {},
    h("h1", {}, "Contacts"),
    filters,
    results,
    await tagsSection(tags, readOnly),
    await groupsSection(groups, readOnly));
}

function tagsSection(tags, readOnly) {
  const name = h("input", { required: true, maxlength: 64 });
  const description = h("input", { maxlength: 500 });
  const outcome = h("div", { "aria-live": "polite" });
  const list = h("ul", { class: "chips" }, tags.map((tag) => h("li", {}, h("span", {}, tag.name), h("span", { class: "muted" }, ` ${formatNumber(tag.contact_count)}`))));
  return h("section", { class: "card" },
    h("h2", {}, "Tags"),
    tags.length ? list : h("p", { class: "empty" }, "No tags yet."),
    readOnly ? null : h("form", {
      class: "row wrap",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const tag = await api("POST", "tags", { name: name.value.trim(), description: description.value.trim() || null });
          list.append(h("li", {}, h("span", {}, tag.name), h("span", { class: "muted" }, " 0")));
          show(outcome, notice(`Tag ${tag.name} created.`));
          name.value = "";
          description.value = "";
        } catch (error) {
          show(outcome, notice(error.message, "error"));
        }
      },
    }, field("Tag name", name), field("Tag description", description), h("button", { type: "submit" }, "Create tag")),
    outcome);
}

function groupsSection(groups, readOnly) {
  const name = h("input", { required: true, maxlength: 200 });
  const outcome = h("div", { "aria-live": "polite" });
  const list = h("ul", {}, groups.map((group) => h("li", {}, group.name)));
  return h("section", { class: "card" },
    h("h2", {}, "Groups"),
    groups.length ? list : h("p", { class: "empty" }, "No groups yet."),
    readOnly ? null : h("form", {
      class: "row",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const group = await api("POST", "groups", { name: name.value.trim() });
          list.append(h("li", {}, group.name));
          show(outcome, notice(`Group ${group.name} created.`));
          name.value = "";
        } catch (error) {
          show(outcome, notice(error.message, "error"));
        }
      },
    }, field("Group name", name), h("button", { type: "submit" }, "Create group")),
    outcome);
}

export async function contactScreen({ me, readOnly, params }) {
  const id = params[0];
  const contact = await api("GET", `contacts/${encodeURIComponent(id)}`);
  const [events, rewards, tags, groups] = await Promise.all([
    api("GET", `contacts/${encodeURIComponent(contact.id)}/events?limit=50`),
    api("GET", `contacts/${encodeURIComponent(contact.id)}/rewards?limit=50`).catch(() => null),
    all("tags"),
    all("groups"),
  ]);
  const group = groups.find((candidate) => candidate.id === contact.group);
  const tagList = h("ul", { class: "chips", "aria-label": "Tags of this contact" });
  const outcome = h("div", { "aria-live": "polite" });
  let current = [...(contact.tags || [])];

  async function changeTags(body) {
    try {
      const updated = await api("POST", `contacts/${encodeURIComponent(contact.id)}/tags`, body);
      current = updated.tags || [];
      drawTags();
      show(outcome);
    } catch (error) {
      show(outcome, notice(error.message, "error"));
    }
  }
  const picker = h("select", {});
  function drawTags() {
    show(tagList, current.map((name) => h("li", {}, h("span", {}, name),
      readOnly ? null : h("button", { type: "button", class: "chip-remove", "aria-label": `Remove tag ${name}`, onclick: () => changeTags({ remove: [name] }) }, "×"))));
    show(picker, h("option", { value: "" }, "Choose a tag…"), tags.filter((tag) => !current.includes(tag.name)).map((tag) => h("option", { value: tag.name }, tag.name)));
  }
  drawTags();

  const attributes = Object.entries(contact.attributes || {});
  const sections = [
    h("p", {}, h("a", { href: "#/contacts" }, "← All contacts")),
    h("h1", {}, contactName(contact)),
    h("section", { class: "card" },
      h("h2", {}, "Details"),
      h("dl", { class: "pairs" },
        [["Email", contact.email], ["External id", contact.external_id], ["Id", contact.id], ["Group", group ? group.name : contact.group],
          ["Created", formatTime(contact.created_at)], ["Updated", formatTime(contact.updated_at)]]
          .map(([term, value]) => [h("dt", {}, term), h("dd", {}, value === null || value === undefined || value === "" ? "—" : String(value))])),
      h("h3", {}, "Attributes"),
      attributes.length === 0 ? h("p", { class: "muted" }, "None.") : h("dl", { class: "pairs" },
        attributes.map(([name, value]) => [h("dt", {}, name), h("dd", {}, typeof value === "string" ? value : JSON.stringify(value))]))),
    h("section", { class: "card" },
      h("h2", {}, "Tags"),
      tagList,
      readOnly ? null : h("div", { class: "row" }, field("Tag to add", picker),
        h("button", { type: "button", onclick: () => picker.value && changeTags({ add: [picker.value] }) }, "Add tag")),
      outcome),
    h("section", { class: "card" },
      h("h2", {}, "Events"),
      events.items.length === 0 ? h("p", { class: "empty" }, "No events.") : h("ol", { class: "timeline" }, events.items.map((event) => h("li", {},
        h("time", { datetime: event.at }, formatTime(event.at)), " ",
        h("strong", {}, event.type),
        event.amount !== undefined && event.amount !== null ? ` · ${event.amount}` : "",
        event.properties && Object.keys(event.properties).length ? h("span", { class: "muted" }, ` ${JSON.stringify(event.properties)}`) : "")))),
    h("section", { class: "card" },
      h("h2", {}, "Rewards"),
      !rewards || rewards.items.length === 0 ? h("p", { class: "empty" }, "No rewards.") : h("ul", {}, rewards.items.map((reward) => h("li", {},
        `${reward.amount} ${reward.currency}`, reward.note ? ` · ${reward.note}` : "", h("span", { class: "muted" }, ` ${formatTime(reward.granted_at || reward.at)}`))))),
  ];
  if (me.key.role === "admin" && me.features.segments) {
    const inSegments = await api("GET", `contacts/${encodeURIComponent(contact.id)}/segments`);
    sections.push(h("section", { class: "card", "aria-label": "Segments of this contact" },
      h("h2", {}, "Segments"),
      inSegments.items.length === 0 ? h("p", { class: "empty" }, "In no segment.") : h("ul", {}, inSegments.items.map((segment) => h("li", {},
        h("a", { href: `#/segments/${encodeURIComponent(segment.id)}` }, segment.name))))));
  }
  return h("section", {}, sections);
}
