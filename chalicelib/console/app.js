// The console's shell: sign-in, navigation and the screen for the address's #fragment.

import { ApiError, api, session } from "./api.js";
import { h, notice, show } from "./dom.js";
import { automationScreen } from "./automation.js";
import { campaignsScreen } from "./campaigns.js";
import { contactsScreen, contactScreen } from "./contacts.js";
import { jobsScreen } from "./jobs.js";
import { journeysScreen } from "./journeys.js";
import { mailboxScreen } from "./mailbox.js";
import { mixerScreen } from "./mixer.js";
import { overviewScreen } from "./overview.js";
import { segmentEditor, segmentsScreen } from "./segments.js";
import { webhooksScreen } from "./webhooks.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");

const SCREENS = [
  { path: "segments", label: "Segments", segments: true, render: segmentsScreen },
  { path: "overview", label: "Customer Overview", segments: true, render: overviewScreen },
  { path: "mixer", label: "Segment Mixer", segments: true, render: mixerScreen },
  { path: "contacts", label: "Contacts", segments: false, render: contactsScreen },
  { path: "campaigns", label: "Campaigns", segments: true, render: campaignsScreen },
  { path: "triggers", label: "Triggers", segments: true, render: automationScreen },
  { path: "journeys", label: "Journeys", segments: true, render: journeysScreen },
  { path: "jobs", label: "Jobs", segments: false, render: jobsScreen },
  { path: "webhooks", label: "Webhooks", segments: false, render: webhooksScreen },
  { path: "mailbox", label: "Mailbox", segments: false, local: true, render: mailboxScreen },
];

let me = null;

function signInScreen(problem) {
  const key = h("input", { id: "api-key", type: "password", autocomplete: "off", required: true });
  const form = h("form", {
    class: "card narrow",
    onsubmit: async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        me = await api("GET", "me", undefined, { key: key.value.trim() });
        session.signIn(key.value.trim());
        if (!location.hash || location.hash === "#") location.hash = "#/segments";
        route();
      } catch (error) {
        button.disabled = false;
        const message = error instanceof ApiError && error.status === 401
          ? "That key is not known. Use a tenant API key (admin or viewer)."
          : error instanceof ApiError && error.status === 403
            ? "That key cannot use the console: it needs a tenant API key, not the operator key or a portal token."
            : `Sign-in failed: ${error.message}`;
        show(status, notice(message, "error"));
      }
    },
  },
  h("h1", {}, "Sign in"),
  h("p", {}, "Use one of your tenant's API keys. It stays in this browser tab only, and is forgotten when the tab closes."),
  h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), key),
  h("button", { type: "submit", class: "primary" }, "Sign in"));
  const status = h("div", {}, problem ? notice(problem, "error") : null);
  show(nav);
  show(account);
  show(main, form, status);
  key.focus();
}

function renderChrome(current) {
  show(nav, h("ul", {}, SCREENS.filter((screen) => !screen.local || me.stage === "local").map((screen) => h("li", {},
    h("a", { href: `#/${screen.path}`, "aria-current": screen.path === current ? "page" : false }, screen.label)))));
  show(account,
    h("span", { class: "tenant" }, me.tenant.name),
    h("span", { class: `badge ${me.key.role}` }, me.key.role === "viewer" ? "viewer · read-only" : "admin"),
    h("button", { type: "button", class: "link", onclick: () => { session.signOut(); me = null; location.hash = ""; signInScreen(); } }, "Sign out"));
}

function featureOff() {
  return h("section", { class: "card" },
    h("h1", {}, "Segments is not enabled for this tenant"),
    h("p", {}, `${me.tenant.name} does not have the segments feature, so segments, the Customer Overview and the Segment Mixer are closed. `
      + "Contacts and jobs still work. Your operator enables the feature for the tenant (PATCH /tenants/{id} with "
      + "{\"features\": {\"segments\": true}}); sign in again afterwards."));
}

let navigation = 0;

async function route() {
  const current = ++navigation; // a screen still loading when the person moves on is dropped, not shown
  if (!session.key) return signInScreen();
  if (!me) {
    try {
      me = await api("GET", "me");
    } catch (error) {
      session.signOut();
      return signInScreen(error instanceof ApiError && error.status === 401 ? "Your key is no longer valid. Sign in again." : error.message);
    }
  }
  const [, path = "segments", ...rest] = (location.hash || "#/segments").split("/");
  const screen = SCREENS.find((candidate) => candidate.path === path) || SCREENS[0];
  renderChrome(screen.path);
  const context = { me, readOnly: me.key.role !== "admin", params: rest.map(decodeURIComponent), main };
  show(main, h("p", { class: "muted" }, "Loading…"));
  try {
    if (screen.segments && !me.features.segments) return show(main, featureOff());
    let view;
    if (screen.path === "segments" && rest[0]) view = await segmentEditor(context);
    else if (screen.path === "contacts" && rest[0]) view = await contactScreen(context);
    else view = await screen.render(context);
    if (current !== navigation) return;
    show(main, view);
    main.focus(); // a new screen: keyboard and screen-reader users continue from its content
  } catch (error) {
    if (current !== navigation) return;
    if (error instanceof ApiError && error.status === 401) {
      session.signOut();
      me = null;
      return signInScreen("Your key is no longer valid. Sign in again.");
    }
    show(main, notice(`This screen could not load: ${error.message}`, "error"));
  }
}

window.addEventListener("hashchange", route);
route();
