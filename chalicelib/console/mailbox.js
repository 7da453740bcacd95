// Mailbox (local stage only): every mail the local runtime sent for this tenant, with its headers, the HTML
// rendered in a sandbox (no scripts, no requests out but to this origin) and the text; the one-click unsubscribe
// can be pressed. Tracked mail is as SES delivers it: showing it loads the open pixel (an open), and its links
// are listed to follow (a click), both on this origin (infra/local/tracking.py).

import { api, query } from "./api.js";
import { formatTime, h, notice, show } from "./dom.js";

export async function mailboxScreen({ me, params }) {
  if (me.stage !== "local") {
    return h("section", { class: "card" }, h("h1", {}, "Mailbox"), h("p", {}, "The Mailbox exists only under make run: deployed stages send through SES."));
  }
  if (params[0]) return messageView(params[0]);
  const list = h("div", {});
  const pages = [null];
  async function load(cursor) {
    const page = await api("GET", `local/mail${query({ limit: 25, cursor })}`);
    show(list, page.items.length === 0 ? h("p", { class: "empty" }, "No mail sent yet.") : h("table", {},
      h("caption", { class: "visually-hidden" }, "Sent mail"),
      h("thead", {}, h("tr", {}, ["Subject", "To", "From", "Sent", "By"].map((name) => h("th", { scope: "col" }, name)))),
      h("tbody", {}, page.items.map((mail) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/mailbox/${encodeURIComponent(mail.id)}` }, mail.subject || "(no subject)")),
        h("td", {}, mail.to), h("td", {}, mail.from), h("td", {}, formatTime(mail.sent_at)),
        h("td", {}, Object.entries(mail.tags || {}).map(([name, value]) => `${name} ${value}`).join(", ") || "—"))))),
    h("div", { class: "row" },
      pages.length > 1 ? h("button", { type: "button", onclick: () => { pages.pop(); load(pages[pages.length - 1]); } }, "Newer mail") : null,
      page.next_cursor ? h("button", { type: "button", onclick: () => { pages.push(page.next_cursor); load(page.next_cursor); } }, "Older mail") : null));
  }
  await load(null);
  return h("section", {},
    h("div", { class: "heading" }, h("h1", {}, "Mailbox"), h("button", { type: "button", onclick: () => load(null) }, "Refresh")),
    h("p", { class: "muted" }, "What the local runtime sent for this tenant since it started (the local SES keeps no mailbox of its own)."),
    list);
}

async function messageView(id) {
  const mail = await api("GET", `local/mail/${encodeURIComponent(id)}`);
  const outcome = h("div", { "aria-live": "polite" });
  const frame = h("iframe", { sandbox: "", title: "HTML body", class: "mail-frame" });
  frame.srcdoc = mail.html || "";
  let unsubscribe = null;
  if (mail.unsubscribe_url) {
    const token = mail.unsubscribe_url.split("/unsubscribe/")[1];
    unsubscribe = h("button", {
      type: "button",
      class: "danger-outline",
      disabled: !mail.one_click || !token,
      onclick: async () => {
        try {
          // the mail client's RFC 8058 one-click request: a form POST of List-Unsubscribe=One-Click
          await api("POST", `unsubscribe/${token}`, "List-Unsubscribe=One-Click", { contentType: "application/x-www-form-urlencoded", raw: true });
          show(outcome, notice(`${mail.to} is unsubscribed.`));
        } catch (error) {
          show(outcome, notice(error.message, "error"));
        }
      },
    }, "Unsubscribe (one click)");
  }
  return h("section", {},
    h("p", {}, h("a", { href: "#/mailbox" }, "← Mailbox")),
    h("h1", {}, mail.subject || "(no subject)"),
    h("section", { class: "card" },
      h("h2", {}, "Headers"),
      h("dl", { class: "pairs" }, mail.headers.map((header) => [h("dt", {}, header.name), h("dd", {}, header.value)])),
      unsubscribe, outcome),
    h("section", { class: "card" }, h("h2", {}, "HTML"), mail.html ? frame : h("p", { class: "muted" }, "No HTML part.")),
    mail.html ? linksOf(mail.html) : null,
    h("section", { class: "card" }, h("h2", {}, "Text"), mail.text ? h("pre", { class: "code" }, mail.text) : h("p", { class: "muted" }, "No text part.")));
}

/** The links of the HTML part, to follow in a new tab: a tracked one counts a click, then goes where it pointed. */
function linksOf(html) {
  const parsed = new DOMParser().parseFromString(html, "text/html"); // inert: nothing loads or runs
  const links = [...parsed.querySelectorAll("a[href]")].filter((link) => /^https?:/i.test(link.getAttribute("href")));
  const tracked = (href) => href.includes("/_local/track/click/");
  return h("section", { class: "card" },
    h("h2", {}, "Links"),
    links.length === 0 ? h("p", { class: "muted" }, "No links.") : [
      h("p", { class: "hint" }, links.some((link) => tracked(link.href))
        ? "Opens and clicks of this mail are tracked: showing it counted an open; following a tracked link counts a click."
        : "This mail is not tracked: its links go straight where they point."),
      h("ul", {}, links.map((link, index) => h("li", {},
        h("a", { href: link.getAttribute("href"), target: "_blank", rel: "noopener noreferrer" },
          `Follow “${link.textContent.trim() || `link ${index + 1}`}”`),
        tracked(link.href) ? " (tracked)" : ""))),
    ]);
}
