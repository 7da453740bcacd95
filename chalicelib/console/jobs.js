// Jobs: imports, evaluations and bulk tagging with their progress, and a CSV import from the browser whose
// row problems are shown by line.

import { api, query } from "./api.js";
import { field, formatNumber, formatTime, h, notice, show } from "./dom.js";

const FINISHED = new Set(["succeeded", "completed_with_errors", "failed"]);
const KINDS = [["", "Any kind"], ["import", "Imports"], ["segment_evaluate", "Segment evaluations"], ["bulk_tag", "Bulk tagging"], ["bulk_untag", "Bulk untagging"], ["tag_delete", "Tag deletions"], ["group_delete", "Group deletions"], ["snapshot_compact", "Snapshot compactions"]];

export function progressBar(job, label) {
  const bar = h("progress", { max: 100, value: job.progress.percent, "aria-label": label });
  return h("div", { class: "progress" }, bar, h("span", {}, `${job.progress.percent}% · ${formatNumber(job.progress.processed)} of ${formatNumber(job.progress.total)}`));
}

function countsText(job) {
  return Object.entries(job.counts).filter(([, n]) => n).map(([name, n]) => `${name} ${formatNumber(n)}`).join(" · ") || "—";
}

async function errorsList(job) {
  if (!job.counts.failed) return null;
  const page = await api("GET", `jobs/${encodeURIComponent(job.id)}/errors?limit=100`);
  return h("div", {},
    h("h3", {}, `Row problems (${formatNumber(job.counts.failed)})`),
    h("table", {},
      h("thead", {}, h("tr", {}, ["Line", "Field", "Problem"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, page.items.map((problem) => h("tr", {}, h("td", { class: "number" }, String(problem.line)), h("td", {}, problem.field || "—"), h("td", {}, problem.message))))),
    page.next_cursor ? h("p", { class: "muted" }, "The first 100 problems; GET /jobs/{id}/errors pages through the rest.") : null);
}

/** Show a job and follow it until it finishes. */
async function followJob(jobId, place) {
  for (;;) {
    const job = await api("GET", `jobs/${encodeURIComponent(jobId)}`);
    show(place, h("div", { class: "job" },
      h("p", {}, h("strong", {}, job.kind), ` · ${job.status}`),
      progressBar(job, `Progress of job ${job.id}`),
      h("p", { class: "muted" }, countsText(job))));
    if (FINISHED.has(job.status)) {
      place.append(await errorsList(job) || "");
      return job;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

export async function jobsScreen({ readOnly }) {
  const kind = h("select", {}, KINDS.map(([value, label]) => h("option", { value }, label)));
  const list = h("div", { "aria-live": "polite" });

  async function load() {
    const page = await api("GET", `jobs${query({ kind: kind.value, limit: 50 })}`);
    show(list, page.items.length === 0 ? h("p", { class: "empty" }, "No jobs yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Jobs"),
      h("thead", {}, h("tr", {}, ["Job", "Status", "Progress", "Counts", "Started", "Finished"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, page.items.map((job) => h("tr", {},
        h("th", { scope: "row" }, `${job.kind} ${job.id}`),
        h("td", {}, h("span", { class: `status ${job.status}` }, job.status)),
        h("td", {}, progressBar(job, `Progress of job ${job.id}`)),
        h("td", {}, countsText(job)),
        h("td", {}, formatTime(job.created_at)),
        h("td", {}, formatTime(job.finished_at)))))));
  }
  kind.addEventListener("change", load);

  const file = h("input", { type: "file", accept: ".csv,text/csv,.jsonl,application/x-ndjson" });
  const text = h("textarea", { rows: 6, class: "code", placeholder: "external_id,email,first_name,tags\np-1,ana@example.com,Ana,vip" });
  const importState = h("div", { "aria-live": "polite" });
  const importForm = readOnly ? null : h("form", {
    class: "card",
    onsubmit: async (event) => {
      event.preventDefault();
      const chosen = file.files[0];
      const body = chosen ? await chosen.text() : text.value;
      if (!body.trim()) return show(importState, notice("Choose a CSV file or paste rows first.", "error"));
      const jsonLines = chosen ? /\.jsonl$/i.test(chosen.name) : body.trimStart().startsWith("{");
      try {
        const job = await api("POST", "contacts/import", body, { contentType: jsonLines ? "application/x-ndjson" : "text/csv" });
        await followJob(job.id, importState);
        load();
      } catch (error) {
        const where = error.details && error.details.line ? ` (line ${error.details.line})` : "";
        show(importState, notice(`${error.message}${where}`, "error"));
      }
    },
  },
  h("h2", {}, "Import contacts"),
  h("p", { class: "muted" }, "CSV with a header row (external_id, email, first_name, last_name, group, tags, attributes.<name>), or JSON Lines; up to 10,000 rows. Good rows land even when others fail; each problem is shown by line."),
  field("CSV file", file),
  field("Or paste rows", text),
  h("button", { type: "submit", class: "primary" }, "Import contacts"),
  importState);

  await load();
  return h("section", {},
    h("h1", {}, "Jobs"),
    importForm,
    h("section", { class: "card" }, h("h2", {}, "Recent jobs"), field("Kind", kind), list));
}
