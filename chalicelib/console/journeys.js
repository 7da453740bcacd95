// Journeys: the list with who entered and converted, and a journey's page: its steps as a vertical flow from
// the start with each step's counts, the treated vs holdout conversion, pause and resume, where a contact is,
// and the definition as JSON (saving a changed one makes a new version; contacts inside finish on theirs).

import { all, api, ApiError } from "./api.js";
import { field, formatNumber, formatTime, h, notice, problemText, show } from "./dom.js";

const EDITABLE = ["name", "entry", "reentry", "exit", "holdout_percent", "goal", "start", "steps"];

/** A first journey to edit: welcome, wait for a purchase, reward buyers, tip the rest. */
function starter(segments) {
  return {
    name: "Welcome partners",
    entry: segments.length ? { type: "segment.entered", segments: [segments[0].id] } : { type: "contact.created" },
    reentry: { mode: "never" },
    holdout_percent: 10,
    goal: { event: "purchase", within: "P14D" },
    start: "welcome",
    steps: {
      welcome: { type: "send_email", subject: "Welcome, {{ contact.first_name }}", text: "Glad you are here.", next: "wait" },
      wait: { type: "wait_for_event", event: "purchase", timeout: "P3D", then: "reward", timed_out: "tip" },
      tip: { type: "send_email", subject: "A tip to get started", text: "Try this first.", next: null },
      reward: { type: "reward", amount: 20, currency: "USD", next: null },
    },
  };
}

function rate(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`;
}

export async function journeysScreen(context) {
  if (context.params[0]) return journeyPage(context, context.params[0]);
  const journeys = await all("journeys");
  const stats = await Promise.all(journeys.map((journey) => api("GET", `journeys/${encodeURIComponent(journey.id)}/stats`)));
  return h("section", {},
    h("div", { class: "heading" }, h("h1", {}, "Journeys"),
      context.readOnly ? null : h("button", { type: "button", class: "primary", onclick: () => { location.hash = "#/journeys/new"; } }, "Create journey")),
    journeys.length === 0 ? h("p", { class: "empty" }, "No journeys yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Journeys"),
      h("thead", {}, h("tr", {}, ["Name", "Status", "Entry", "Version", "Entered", "Converted", "Holdout converted"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, journeys.map((journey, index) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/journeys/${encodeURIComponent(journey.id)}` }, journey.name)),
        h("td", {}, journey.status_reason ? `${journey.status}: ${journey.status_reason}` : journey.status),
        h("td", {}, journey.entry.type),
        h("td", { class: "number" }, String(journey.version)),
        h("td", { class: "number" }, formatNumber(stats[index].entered)),
        h("td", { class: "number" }, rate(stats[index].conversion_rate)),
        h("td", { class: "number" }, rate(stats[index].holdout.conversion_rate)))))));
}

/** What a step does, in words. */
function describe(step) {
  switch (step.type) {
    case "send_email": return `Send email “${step.subject}”`;
    case "add_tag": return `Add tag ${step.tag}`;
    case "remove_tag": return `Remove tag ${step.tag}`;
    case "reward": return `Reward ${step.amount} ${step.currency || "points"}`;
    case "announce": return `Show announcement ${step.announcement_id}`;
    case "webhook": return `Post to webhook ${step.webhook_id}`;
    case "wait": return step.duration ? `Wait ${step.duration}` : `Wait until ${step.until} (${step.time_zone || "tenant"} time)`;
    case "wait_for_event": return `Wait for a ${step.event} event, at most ${step.timeout}`;
    case "branch": return `If ${JSON.stringify(step.criteria)}`;
    case "split": return `Random split ${step.branches.map((branch) => `${branch.percent} %`).join(" / ")}`;
    default: return step.type;
  }
}

/** Where a step leads: [label, next step or null (the end)]. */
function exits(step) {
  if (step.type === "wait_for_event") return [["happened", step.then], ["timed out", step.timed_out]];
  if (step.type === "branch") return [["then", step.then], ["else", step.else]];
  if (step.type === "split") return step.branches.map((branch) => [`${branch.percent} %`, branch.next]);
  return [["next", step.next]];
}

/** The steps in the order a contact meets them (breadth first from the start): a vertical flow. */
function flowOrder(journey) {
  const order = [];
  const queue = [journey.start];
  while (queue.length) {
    const id = queue.shift();
    if (id === null || order.includes(id) || !journey.steps[id]) continue;
    order.push(id);
    queue.push(...exits(journey.steps[id]).map(([, next]) => next));
  }
  return order;
}

function flow(journey, stats) {
  return h("ol", { class: "flow", "aria-label": "Steps" }, flowOrder(journey).map((id) => {
    const step = journey.steps[id];
    const counts = stats.steps[id] || { entered: 0, completed: 0, waiting: 0, exited: 0, converted: 0 };
    return h("li", { class: "card step", "aria-label": `Step ${id}` },
      h("h3", {}, id), h("p", {}, describe(step)),
      h("p", { class: "counts" }, `${formatNumber(counts.entered)} entered · ${formatNumber(counts.completed)} completed · `
        + `${formatNumber(counts.waiting)} waiting · ${formatNumber(counts.exited)} exited · ${formatNumber(counts.converted)} converted here`),
      h("ul", { class: "exits" }, exits(step).map(([label, next]) => h("li", {}, `${label} → ${next === null ? "end" : next}`))));
  }));
}

async function journeyPage({ readOnly }, id) {
  if (id === "new") {
    return h("section", {}, h("p", {}, h("a", { href: "#/journeys" }, "← Journeys")), h("h1", {}, "Create journey"),
      await definitionEditor(null, readOnly));
  }
  const path = `journeys/${encodeURIComponent(id)}`;
  const header = h("div", {});
  const controls = h("div", { class: "row" });
  const outcome = h("div", { "aria-live": "polite" });
  const steps = h("div", {});
  let journey = null;

  async function refresh() {
    const [current, stats] = await Promise.all([api("GET", path), api("GET", `${path}/stats`)]);
    journey = current;
    show(header,
      h("h1", {}, journey.name),
      h("dl", { class: "pairs" },
        h("dt", {}, "Status"), h("dd", {}, journey.status_reason ? `${journey.status}: ${journey.status_reason}` : journey.status),
        h("dt", {}, "Version"), h("dd", {}, String(journey.version)),
        h("dt", {}, "Entry"), h("dd", {}, journey.entry.type + (journey.next_run_at ? `, next run ${formatTime(journey.next_run_at)}` : "")),
        h("dt", {}, "Entered"), h("dd", {}, `${formatNumber(stats.entered)}, converted ${formatNumber(stats.converted)} (${rate(stats.conversion_rate)})`),
        h("dt", {}, "Holdout"), h("dd", {}, `${formatNumber(stats.holdout.entered)} kept out (${journey.holdout_percent} %), converted ${formatNumber(stats.holdout.converted)} (${rate(stats.holdout.conversion_rate)})`)));
    show(controls, readOnly ? null : [
      journey.status === "running"
        ? h("button", { type: "button", onclick: () => act("pause", "Paused: no one enters or moves on.") }, "Pause journey")
        : h("button", { type: "button", class: "primary", onclick: () => act("resume", "Resumed.") }, "Resume journey"),
      h("button", { type: "button", class: "danger-outline", onclick: remove }, "Delete journey")]);
    show(steps, flow(journey, stats));
  }

  async function act(verb, done) {
    try {
      await api("POST", `${path}/${verb}`);
      show(outcome, notice(done));
    } catch (error) {
      show(outcome, notice(problemText(error), "error"));
    }
    await refresh();
  }

  async function remove() {
    try {
      await api("DELETE", path);
      location.hash = "#/journeys";
    } catch (error) {
      show(outcome, notice(problemText(error), "error"));
    }
  }

  await refresh();
  return h("section", {},
    h("p", {}, h("a", { href: "#/journeys" }, "← Journeys")),
    header, controls, outcome,
    h("section", { class: "flow-section" }, h("div", { class: "heading" }, h("h2", {}, "Flow"),
      h("button", { type: "button", onclick: () => refresh() }, "Refresh counts")), steps),
    contactLookup(path),
    await definitionEditor(journey, readOnly, refresh));
}

function contactLookup(path) {
  const reference = h("input", { required: true, placeholder: "ctc_… or an external id" });
  const found = h("div", { "aria-live": "polite" });
  return h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      try {
        const where = await api("GET", `${path}/contacts/${encodeURIComponent(reference.value.trim())}`);
        show(found,
          h("p", { role: "status" }, `${where.contact_id}: ${where.state}${where.step ? ` at ${where.step}` : ""}`
            + `${where.due_at ? ` until ${formatTime(where.due_at)}` : ""} (entry ${where.entry}, version ${where.version})`),
          h("table", {}, h("caption", {}, "History"),
            h("thead", {}, h("tr", {}, ["Step", "Outcome", "When"].map((name) => h("th", { scope: "col" }, name)))),
            h("tbody", {}, where.history.map((line) => h("tr", {},
              h("td", {}, line.step || "—"), h("td", {}, line.outcome), h("td", {}, formatTime(line.at)))))));
      } catch (error) {
        show(found, notice(error instanceof ApiError && error.status === 404 ? "That contact has not entered this journey." : problemText(error), "error"));
      }
    },
  },
  h("h2", {}, "Where is a contact?"),
  field("Contact", reference, "Its id or external id."),
  h("button", { type: "submit" }, "Find contact"),
  found);
}

async function definitionEditor(journey, readOnly, saved) {
  const body = journey ? Object.fromEntries(EDITABLE.map((name) => [name, journey[name]])) : starter(await all("segments"));
  const text = h("textarea", { rows: 24, class: "code", spellcheck: "false", readonly: readOnly }, JSON.stringify(body, null, 2));
  const problems = h("div", { "aria-live": "assertive" });
  const hint = "Steps: send_email, add_tag, remove_tag, reward, announce, webhook (each with next), wait (duration or until), "
    + "wait_for_event (event, timeout, then, timed_out), branch (criteria, then, else), split (branches). next: null ends.";
  return h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      let definition;
      try {
        definition = JSON.parse(text.value);
      } catch (error) {
        return show(problems, notice(`That is not JSON: ${error.message}`, "error"));
      }
      try {
        if (!journey) {
          const made = await api("POST", "journeys", definition);
          location.hash = `#/journeys/${encodeURIComponent(made.id)}`;
          return;
        }
        const after = await api("PATCH", `journeys/${encodeURIComponent(journey.id)}`, definition);
        show(problems, notice(`Saved (version ${after.version}).`));
        journey = after;
        await saved();
      } catch (error) {
        show(problems, notice(problemText(error), "error"));
      }
    },
  },
  h("h2", {}, "Definition"),
  field("Definition (JSON)", text, hint),
  problems,
  readOnly ? null : h("button", { type: "submit", class: "primary" }, journey ? "Save journey" : "Create journey"));
}
