// Campaigns: the composer (sender, subject, HTML and text with the template variables), the audience count
// with exclusions, a preview as a chosen contact, a test send, then send or schedule, with a progress bar
// and live stats while sending, pause / resume / cancel, and who received what.

import { all, api, query } from "./api.js";
import { field, formatNumber, formatTime, h, localToRfc3339, notice, rfc3339ToLocal, segmentBoxes, show } from "./dom.js";

const VARIABLES = ["{{ contact.first_name }}", "{{ contact.last_name }}", "{{ contact.email }}", "{{ contact.external_id }}",
  "{{ contact.attributes.city }}", "{{ unsubscribe_url }}"];
const ACTIVE = new Set(["sending", "scheduled"]);
const RECIPIENT_STATES = ["", "sent", "failed", "suppressed", "unsubscribed", "capped", "skipped", "claimed", "released", "bounced", "complained"];

export async function campaignsScreen({ readOnly, params, me }) {
  if (params[0]) return campaignView({ readOnly, id: params[0], me });
  const campaigns = await all("campaigns", 500);
  return h("section", {},
    h("div", { class: "heading" }, h("h1", {}, "Campaigns"),
      readOnly ? null : h("button", { type: "button", class: "primary", onclick: () => { location.hash = "#/campaigns/new"; } }, "Create campaign")),
    campaigns.length === 0 ? h("p", { class: "empty" }, "No campaigns yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Campaigns"),
      h("thead", {}, h("tr", {}, ["Name", "Status", "Audience", "Sent", "Created"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, campaigns.map((campaign) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/campaigns/${encodeURIComponent(campaign.id)}` }, campaign.name)),
        h("td", {}, h("span", { class: `status ${campaign.status}` }, campaign.status)),
        h("td", { class: "number" }, formatNumber(campaign.stats.audience)),
        h("td", { class: "number" }, formatNumber(campaign.stats.sent)),
        h("td", {}, formatTime(campaign.created_at)))))));
}

async function campaignView({ readOnly, id, me }) {
  const creating = id === "new";
  const [segments, settings, campaign] = await Promise.all([
    all("segments"), api("GET", "settings"), creating ? null : api("GET", `campaigns/${encodeURIComponent(id)}`)]);
  const editable = !readOnly && (creating || ["draft", "scheduled"].includes(campaign.status));
  const value = (name, fallback = "") => (campaign && campaign[name] !== null && campaign[name] !== undefined ? campaign[name] : fallback);
  const name = h("input", { value: value("name"), required: true, maxlength: 200, readonly: !editable });
  const sender = h("input", { type: "email", value: value("from"), placeholder: "news@example.com", readonly: !editable });
  const subject = h("input", { value: value("subject"), required: true, readonly: !editable });
  const html = h("textarea", { rows: 8, class: "code", readonly: !editable }, value("html"));
  const text = h("textarea", { rows: 6, class: "code", readonly: !editable }, value("text"));
  const sendAt = h("input", { type: "datetime-local", value: rfc3339ToLocal(value("send_at", null)), readonly: !editable });
  const trackingChoice = { null: "", true: "on", false: "off" }[String(value("tracking", null))];
  const tracking = h("select", { disabled: !editable },
    [["", `As the tenant's settings say (${settings.tracking ? "on" : "off"})`], ["on", "On"], ["off", "Off"]]
      .map(([option, label]) => h("option", { value: option, selected: option === trackingChoice }, label)));
  const variants = value("variants", null) || [];
  const second = variants[1] || {};
  const abTest = value("ab_test", null) || {};
  const abOn = h("input", { type: "checkbox", id: "ab-on", checked: variants.length > 0, disabled: !editable || variants.length > 2 });
  const bSubject = h("input", { value: second.subject || "", readonly: !editable });
  const bHtml = h("textarea", { rows: 5, class: "code", readonly: !editable }, second.html || "");
  const bText = h("textarea", { rows: 4, class: "code", readonly: !editable }, second.text || "");
  const share = h("input", { type: "number", min: 1, max: 50, value: abTest.test_percent || 20, readonly: !editable });
  const wait = h("input", { value: abTest.wait || "PT4H", readonly: !editable });
  const metric = h("select", { disabled: !editable }, [["opens", "Unique opens"], ["clicks", "Unique clicks"]]
    .map(([option, label]) => h("option", { value: option, selected: abTest.metric === option }, label)));
  const audience = h("p", { role: "status", class: "count" }, "Choose segments to count the audience.");
  const include = segmentBoxes("Send to members of any of", segments, value("segments", []), "include", !editable, { counts: true });
  const exclude = segmentBoxes("Except members of any of", segments, value("exclude_segments", []), "exclude", !editable, { counts: true });
  const problems = h("div", { "aria-live": "assertive" });

  let asked = 0;
  async function countAudience() {
    const included = include.value;
    const excluded = exclude.value;
    const number = ++asked;
    if (included.length === 0) { audience.textContent = "Choose segments to count the audience."; return; }
    const anyOf = included.length === 1 ? { segment: included[0] } : { any: included.map((segment) => ({ segment })) };
    const criteria = excluded.length ? { all: [anyOf, ...excluded.map((segment) => ({ not: { segment } }))] } : anyOf;
    audience.textContent = "Counting…";
    try {
      const result = await api("POST", "segments/preview", { criteria, sample_size: 0 });
      if (number === asked) audience.textContent = `${result.count} contacts in the audience now (suppressed and unsubscribed addresses are left out when sending)`;
    } catch (error) {
      if (number === asked) audience.textContent = `Cannot count: ${error.message}`;
    }
  }
  include.element.addEventListener("change", countAudience);
  exclude.element.addEventListener("change", countAudience);

  async function save(event) {
    event.preventDefault();
    const body = {
      name: name.value.trim(), from: sender.value.trim() || null, subject: subject.value,
      html: html.value || null, text: text.value || null,
      segments: include.value, exclude_segments: exclude.value, send_at: localToRfc3339(sendAt.value),
      tracking: { "": null, on: true, off: false }[tracking.value],
    };
    if (abOn.checked && variants.length <= 2) {
      body.variants = [
        { name: "A", subject: subject.value, html: html.value || null, text: text.value || null },
        { name: "B", subject: bSubject.value, html: bHtml.value || null, text: bText.value || null },
      ];
      body.ab_test = { test_percent: Number(share.value), wait: wait.value.trim(), metric: metric.value };
    } else if (!abOn.checked) {
      body.variants = null;
      body.ab_test = null;
    }
    try {
      const saved = creating ? await api("POST", "campaigns", body) : await api("PATCH", `campaigns/${encodeURIComponent(campaign.id)}`, body);
      if (creating) location.hash = `#/campaigns/${encodeURIComponent(saved.id)}`;
      else show(problems, notice("Saved."));
    } catch (error) {
      const where = error.details && error.details.field ? ` (${error.details.field}${error.details.line ? `, line ${error.details.line}` : ""})` : "";
      show(problems, notice(`${error.message}${where}`, "error"));
    }
  }

  const composer = h("form", { class: "card", onsubmit: save },
    h("h2", {}, "Message"),
    field("Campaign name", name),
    field("From", sender, `Empty: the tenant's sender. ${me.stage === "local" ? "Locally, any …@example.com address works." : ""}`),
    field("Subject", subject),
    field("HTML body", html),
    field("Text body", text),
    h("p", { class: "hint" }, "Template variables: ", VARIABLES.map((variable, index) => [index ? ", " : "", h("code", {}, variable)])),
    h("h2", {}, "Audience"),
    include.element, exclude.element, audience,
    field("Send at (your time; empty: when you press Send)", sendAt),
    field("Track opens and clicks", tracking, "SES adds an open pixel and tracks the links; off sends the mail as written."),
    h("fieldset", {}, h("legend", {}, "A/B test"),
      h("div", { class: "check" }, abOn, h("label", { for: "ab-on" }, "Test a second version (B) on part of the audience first")),
      variants.length > 2 ? h("p", { class: "hint" }, `This campaign tests ${variants.length} variants (made through the API): edit them there.`) : null,
      field("B: subject", bSubject), field("B: HTML body", bHtml), field("B: text body", bText),
      field("Test share (% of the audience)", share),
      field("Wait before choosing the winner", wait, "ISO 8601: PT30M, PT4H, P1D (1 minute to 7 days)."),
      field("Winner by", metric)),
    problems,
    editable ? h("button", { type: "submit", class: "primary" }, "Save campaign") : null);

  const sections = [
    h("p", {}, h("a", { href: "#/campaigns" }, "← All campaigns")),
    h("h1", {}, creating ? "Create campaign" : campaign.name),
    composer,
  ];
  if (!creating) sections.push(previewSection(campaign), sendingSection(campaign, readOnly), await recipientsSection(campaign));
  countAudience();
  return h("section", {}, sections);
}

function previewSection(campaign) {
  const contact = h("input", { placeholder: "ctc_… or an external id" });
  const result = h("div", { "aria-live": "polite" });
  const emails = h("input", { type: "text", placeholder: "you@example.com, colleague@example.com" });
  const tested = h("div", { "aria-live": "polite" });
  return h("section", { class: "card" },
    h("h2", {}, "Preview and test"),
    h("form", {
      class: "row wrap",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const rendered = await api("POST", `campaigns/${encodeURIComponent(campaign.id)}/preview`, { contact_id: contact.value.trim() });
          const frame = h("iframe", { sandbox: "", title: "Preview of the HTML body", class: "mail-frame" });
          frame.srcdoc = rendered.html || "";
          show(result, h("p", {}, h("strong", {}, "Subject: "), rendered.subject), rendered.html ? frame : null, rendered.text ? h("pre", { class: "code" }, rendered.text) : null);
        } catch (error) {
          show(result, notice(error.message, "error"));
        }
      },
    }, field("Preview as contact", contact), h("button", { type: "submit" }, "Preview")),
    result,
    h("form", {
      class: "row wrap",
      onsubmit: async (event) => {
        event.preventDefault();
        const list = emails.value.split(/[\s,;]+/).filter(Boolean);
        try {
          await api("POST", `campaigns/${encodeURIComponent(campaign.id)}/test`, { emails: list });
          show(tested, notice(`Test sent to ${list.join(", ")} (not counted in the stats).`));
        } catch (error) {
          show(tested, notice(error.message, "error"));
        }
      },
    }, field("Test addresses (up to 5)", emails), h("button", { type: "submit" }, "Send test")),
    tested);
}

function sendingSection(campaign, readOnly) {
  const place = h("div", { "aria-live": "polite" });
  const problems = h("div", { "aria-live": "assertive" });
  let timer = null;

  async function act(verb) {
    try {
      draw(await api("POST", `campaigns/${encodeURIComponent(campaign.id)}/${verb}`));
      show(problems);
    } catch (error) {
      show(problems, notice(error.message, "error"));
    }
  }

  function draw(current) {
    const stats = current.stats;
    const audienceSize = stats.audience || 0;
    const done = ["sent", "failed", "suppressed", "unsubscribed", "capped", "skipped"].reduce((sum, key) => sum + (stats[key] || 0), 0);
    const percent = audienceSize ? Math.round((100 * done) / audienceSize) : (current.status === "sent" ? 100 : 0);
    const buttons = readOnly ? [] : [
      current.status === "draft" ? h("button", { type: "button", class: "primary", onclick: () => act("send") }, current.send_at ? "Schedule" : "Send now") : null,
      current.status === "sending" ? h("button", { type: "button", onclick: () => act("pause") }, "Pause") : null,
      current.status === "paused" ? h("button", { type: "button", onclick: () => act("resume") }, "Resume") : null,
      ["scheduled", "sending", "paused"].includes(current.status) ? h("button", { type: "button", class: "danger-outline", onclick: () => act("cancel") }, "Cancel campaign") : null,
    ];
    show(place,
      h("p", {}, "Status: ", h("strong", { class: `status ${current.status}` }, current.status),
        current.status_reason ? ` (${current.status_reason})` : "",
        current.send_at && current.status === "scheduled" ? ` · at ${formatTime(current.send_at)}` : ""),
      h("div", { class: "progress" },
        h("progress", { max: 100, value: percent, "aria-label": "Sending progress" }),
        h("span", {}, `${percent}% · ${formatNumber(done)} of ${formatNumber(stats.audience)}`)),
      h("dl", { class: "pairs stats", "aria-label": "Campaign stats" },
        Object.entries(stats).filter(([key]) => key !== "variants")
          .map(([key, amount]) => [h("dt", {}, key.replace("_", " ")), h("dd", {}, formatNumber(amount))])),
      stats.variants ? variantTable(current) : null,
      h("div", { class: "row" }, buttons));
    clearTimeout(timer);
    if (ACTIVE.has(current.status) && document.body.contains(place)) {
      timer = setTimeout(async () => draw(await api("GET", `campaigns/${encodeURIComponent(campaign.id)}`)), 1000);
    }
  }
  draw(campaign);
  setTimeout(() => ACTIVE.has(campaign.status) && draw(campaign), 0);
  return h("section", { class: "card" }, h("h2", {}, "Sending"), place, problems);
}

function variantTable(current) {
  const counters = ["sent", "delivered", "opened", "clicked", "opens", "clicks"];
  const test = current.ab_test || {};
  const by = test.winner ? `fixed: ${test.winner}` : `the best rate of unique ${test.metric === "clicks" ? "clicks" : "opens"} per mail`;
  return h("div", {},
    h("p", {}, current.winner
      ? `A/B test decided: ${current.winner} won (${formatTime(current.winner_at)}) and goes to the rest.`
      : `A/B test: ${test.test_percent}% of the audience first; after ${test.wait} the winner by ${by} goes to the rest.`),
    h("table", {},
      h("caption", {}, "Stats by variant"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Variant"), counters.map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, Object.entries(current.stats.variants).map(([name, counts]) => h("tr", {},
        h("th", { scope: "row" }, name === current.winner ? `${name} (winner)` : name),
        counters.map((counter) => h("td", { class: "number" }, formatNumber(counts[counter]))))))));
}

async function recipientsSection(campaign) {
  const status = h("select", {}, RECIPIENT_STATES.map((state) => h("option", { value: state }, state || "Any state")));
  const list = h("div", {});
  async function load() {
    const page = await api("GET", `campaigns/${encodeURIComponent(campaign.id)}/recipients${query({ status: status.value, limit: 50 })}`);
    show(list, page.items.length === 0 ? h("p", { class: "empty" }, "No recipients yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Recipients"),
      h("thead", {}, h("tr", {}, ["Email", "State", "At", "Delivered", "Opened", "Clicked", "Reason"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, page.items.map((item) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/contacts/${encodeURIComponent(item.contact_id)}` }, item.email)),
        h("td", {}, item.status), h("td", {}, formatTime(item.at)),
        [item.delivered_at, item.opened_at, item.clicked_at].map((at) => h("td", {}, formatTime(at))),
        h("td", {}, item.reason || "—"))))));
  }
  status.addEventListener("change", load);
  await load();
  return h("section", { class: "card" },
    h("div", { class: "heading" }, h("h2", {}, "Recipients"), h("button", { type: "button", onclick: load }, "Refresh recipients")),
    field("Recipient state", status), list);
}
