// Webhooks (admins): endpoints with the events they hear, the signing secret shown once, a test event, the
// delivery log, switching off and on, and deleting (triggers that post to it are reviewed first).

import { ApiError, api } from "./api.js";
import { field, formatTime, h, notice, problemText, show } from "./dom.js";

const EVENTS = [
  ["segment.entered", "A contact entered a segment"], ["segment.exited", "A contact left a segment"],
  ["campaign.sent", "A campaign finished sending"], ["email.*", "Mail delivered, opened or clicked (email.*)"],
  ["contact.unsubscribed", "A contact unsubscribed"], ["trigger.fired", "A trigger fired"],
  ["reward.granted", "A reward was granted"], ["*", "Everything (*)"],
];

export async function webhooksScreen({ readOnly, params }) {
  if (readOnly) {
    return h("section", { class: "card" }, h("h1", {}, "Webhooks"), h("p", {}, "Only admin keys see and manage webhooks: their log names your receivers."));
  }
  if (params[0]) return webhookView(params[0]);
  const list = h("div", {});
  const created = h("div", { "aria-live": "polite" });
  async function load() {
    const { items } = await api("GET", "webhooks");
    show(list, items.length === 0 ? h("p", { class: "empty" }, "No webhooks yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Webhooks"),
      h("thead", {}, h("tr", {}, ["Endpoint", "Events", "Status", "Failed in a row"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, items.map((hook) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/webhooks/${encodeURIComponent(hook.id)}` }, hook.url)),
        h("td", {}, hook.events.join(", ")),
        h("td", {}, hook.status === "enabled" ? "on" : `off: ${hook.disabled_reason || ""}`),
        h("td", { class: "number" }, String(hook.failures_in_a_row)))))));
  }

  const url = h("input", { type: "url", required: true, placeholder: "https://crm.example.com/segments-hook" });
  const description = h("input", { maxlength: 500 });
  const boxes = EVENTS.map(([value, label]) => {
    const box = h("input", { type: "checkbox", value, id: `event-${value.replace(/\W/g, "-")}` });
    return { box, row: h("div", { class: "check" }, box, h("label", { for: box.id }, label)) };
  });
  const problems = h("div", { "aria-live": "assertive" });
  const form = h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      const events = boxes.filter(({ box }) => box.checked).map(({ box }) => box.value);
      try {
        const hook = await api("POST", "webhooks", { url: url.value.trim(), events, description: description.value || null });
        show(problems);
        show(created, h("div", { class: "notice info", role: "status" },
          h("p", {}, `Webhook added. Its signing secret, shown only now: `),
          h("p", {}, h("code", { class: "secret" }, hook.secret)),
          h("p", { class: "hint" }, `Verify each delivery: HMAC-SHA256 of "<t>.<raw body>" with this secret equals the v1 of the Segments-Signature header (key ${hook.key_id}).`)));
        form.reset();
        await load();
      } catch (error) {
        show(problems, notice(problemText(error), "error"));
      }
    },
  },
  h("h2", {}, "Add a webhook"),
  field("Endpoint URL", url, "Deployed: https:// to a public address. Under make run, http://127.0.0.1:… works too."),
  field("Description", description),
  h("fieldset", {}, h("legend", {}, "Events"), boxes.map(({ row }) => row)),
  problems,
  h("button", { type: "submit", class: "primary" }, "Add webhook"));
  await load();
  return h("section", {}, h("h1", {}, "Webhooks"), created, list, form);
}

function deliveryRows(items) {
  if (items.length === 0) return h("p", { class: "empty" }, "No deliveries yet.");
  return h("table", {},
    h("caption", { class: "visually-hidden" }, "Deliveries"),
    h("thead", {}, h("tr", {}, ["Event", "When", "Status", "Attempts", "HTTP", "Time", "Problem"].map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, items.map((line) => h("tr", {},
      h("th", { scope: "row" }, line.type), h("td", {}, formatTime(line.created_at)), h("td", {}, line.status),
      h("td", { class: "number" }, String(line.attempts)), h("td", { class: "number" }, line.response_status === null ? "—" : String(line.response_status)),
      h("td", { class: "number" }, line.latency_ms === null ? "—" : `${line.latency_ms} ms`), h("td", {}, line.error || "—")))));
}

async function webhookView(id) {
  const path = `webhooks/${encodeURIComponent(id)}`;
  const header = h("div", {});
  const controls = h("div", { class: "row" });
  const outcome = h("div", { "aria-live": "polite" });
  const log = h("div", {});
  let hook = null;

  async function refresh() {
    hook = await api("GET", path);
    const deliveries = await api("GET", `${path}/deliveries?limit=50`);
    show(header,
      h("h1", {}, hook.url),
      h("dl", { class: "pairs" },
        h("dt", {}, "Status"), h("dd", {}, hook.status === "enabled" ? "on" : `off: ${hook.disabled_reason || ""}`),
        h("dt", {}, "Events"), h("dd", {}, hook.events.join(", ")),
        h("dt", {}, "Description"), h("dd", {}, hook.description || "—"),
        h("dt", {}, "Key id"), h("dd", {}, hook.key_id),
        h("dt", {}, "Failed deliveries in a row"), h("dd", {}, String(hook.failures_in_a_row))));
    show(controls,
      h("button", { type: "button", class: "primary", onclick: sendTest }, "Send test event"),
      h("button", { type: "button", onclick: toggle }, hook.status === "enabled" ? "Switch off" : "Switch on"),
      h("button", { type: "button", class: "danger-outline", onclick: () => remove(false) }, "Delete webhook"));
    show(log, deliveryRows(deliveries.items));
  }

  async function act(work) {
    try {
      await work();
      await refresh();
    } catch (error) {
      show(outcome, notice(error.message, "error"));
    }
  }

  const sendTest = () => act(async () => {
    const line = await api("POST", `${path}/test`);
    show(outcome, notice(line.status === "delivered"
      ? `Test event delivered: HTTP ${line.response_status} in ${line.latency_ms} ms.`
      : `Test event failed: ${line.error}.`, line.status === "delivered" ? "info" : "error"));
  });
  const toggle = () => act(async () => {
    await api("PATCH", path, { enabled: hook.status !== "enabled" });
    show(outcome, notice(hook.status === "enabled" ? "Switched off." : "Switched on again."));
  });
  const remove = async (confirm) => {
    try {
      await api("DELETE", `${path}${confirm ? "?confirm=true" : ""}`);
      location.hash = "#/webhooks";
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 409) return show(outcome, notice(error.message, "error"));
      const dependents = (error.details && error.details.dependents) || [];
      show(outcome, h("div", { class: "notice error", role: "alert" },
        h("p", {}, "Triggers post to this webhook; they lose that action (one left without actions is switched off):"),
        h("ul", {}, dependents.map((item) => h("li", {}, `${item.type} ${item.name}`))),
        h("button", { type: "button", class: "danger", onclick: () => remove(true) }, "Delete anyway")));
    }
  };

  await refresh();
  return h("section", {},
    h("p", {}, h("a", { href: "#/webhooks" }, "← Webhooks")),
    header,
    controls,
    outcome,
    h("section", { class: "card" }, h("div", { class: "heading" }, h("h2", {}, "Deliveries"), h("button", { type: "button", onclick: () => act(async () => {}) }, "Refresh")), log));
}
