// The card viewer: builds a CDS Hooks request, posts it to this service as an EHR does, renders the cards and
// posts feedback. No build step; markdown-it and DOMPurify are vendored (static/vendor/README.md).
"use strict";

(function () {
  const TIMEOUT_MS = 10000;
  const LABELS = { critical: "Critical", warning: "Warning", info: "Info" };
  const markdown = window.markdownit({ html: false, linkify: false });
  const $ = (id) => document.getElementById(id);
  let examples = {};

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function source() {
    return document.querySelector("input[name=source]:checked").value;
  }

  function showPanel() {
    for (const name of ["example", "paste", "fhir"]) $("panel-" + name).hidden = source() !== name;
  }

  function describeExample() {
    const chosen = examples[$("example").value];
    $("example-description").textContent = chosen ? chosen.description : "";
  }

  async function loadExampleList() {
    const response = await fetch("/viewer/examples");
    const body = await response.json();
    for (const example of body.examples) examples[example.id] = example;
    describeExample();
  }

  function hookRequestFromBundle(bundle, hook) {
    const resources = (bundle.entry || []).map((entry) => entry.resource).filter(Boolean);
    const patient = resources.find((r) => r.resourceType === "Patient");
    const observations = resources.filter((r) => r.resourceType === "Observation");
    let patientId = patient && patient.id;
    if (!patientId) {
      const subject = observations.map((o) => (o.subject || {}).reference || "").find((r) => r.startsWith("Patient/"));
      patientId = subject && subject.slice("Patient/".length);
    }
    if (!patientId) throw new Error("the Bundle names no patient: add a Patient or a subject reference");
    const prefetch = {
      observations: {
        resourceType: "Bundle", type: "searchset", total: observations.length,
        entry: observations.map((o) => ({ resource: o, search: { mode: "match" } })),
      },
    };
    if (patient) prefetch.patient = patient;
    return baseRequest(hook, patientId, { prefetch });
  }

  function baseRequest(hook, patientId, extra) {
    const context = { userId: "Practitioner/card-viewer", patientId };
    if (hook === "encounter-start") context.encounterId = "card-viewer-encounter";
    return Object.assign({ hook, hookInstance: crypto.randomUUID(), context }, extra);
  }

  async function buildRequest(hook) {
    const kind = source();
    if (kind === "example") {
      const response = await fetch("/viewer/examples/" + encodeURIComponent($("example").value));
      if (!response.ok) throw new Error("could not load the example patient (HTTP " + response.status + ")");
      return hookRequestFromBundle(await response.json(), hook);
    }
    if (kind === "paste") {
      let pasted;
      try {
        pasted = JSON.parse($("pasted").value);
      } catch (error) {
        throw new Error("the pasted text is not JSON: " + error.message);
      }
      if (pasted && pasted.resourceType === "Bundle") return hookRequestFromBundle(pasted, hook);
      if (pasted && pasted.hook && pasted.context) return pasted;
      throw new Error("the pasted JSON is neither a FHIR Bundle nor a CDS Hooks request");
    }
    const server = $("fhir-server").value.trim();
    const patientId = $("fhir-patient").value.trim();
    if (!server || !patientId) throw new Error("give the FHIR server URL and the patient id");
    const extra = { fhirServer: server };
    const token = $("fhir-token").value.trim();
    if (token) {
      extra.fhirAuthorization = {
        access_token: token, token_type: "Bearer", expires_in: 300, scope: "patient/Observation.read", subject: "card-viewer",
      };
    }
    return baseRequest(hook, patientId, extra);
  }

  async function post(url, body) {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    const bearer = $("bearer").value.trim();
    if (bearer) headers.Authorization = "Bearer " + bearer;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
    try {
      const response = await fetch(url, { method: "POST", headers, body: JSON.stringify(body), signal: abort.signal });
      const text = await response.text();
      let parsed = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch (error) {
        parsed = null;
      }
      return { status: response.status, ok: response.ok, text, body: parsed };
    } catch (error) {
      const reason = error.name === "AbortError" ? "no answer within " + TIMEOUT_MS / 1000 + " s (timeout)" : error.message;
      return { status: 0, ok: false, text: reason, body: null };
    } finally {
      clearTimeout(timer);
    }
  }

  function showError(title, answer) {
    const box = $("call-error");
    box.replaceChildren(element("h3", {}, title));
    const issues = answer.body && answer.body.resourceType === "OperationOutcome" ? answer.body.issue || [] : [];
    if (issues.length) {
      const list = element("ul");
      for (const issue of issues) {
        const where = (issue.expression || []).join(", ");
        list.append(element("li", {}, (issue.diagnostics || issue.code) + (where ? " (at " + where + ")" : "")));
      }
      box.append(list);
    } else if (answer.text) {
      box.append(element("p", {}, answer.text));
    }
    box.hidden = false;
    $("call-status").textContent = title + ". No cards are shown: this is not an all-clear.";
  }

  function feedbackUrl() {
    return "/cds-services/" + encodeURIComponent($("service").value) + "/feedback";
  }

  async function sendFeedback(item, status) {
    item.outcomeTimestamp = new Date().toISOString();
    status.textContent = "Sending feedback…";
    const answer = await post(feedbackUrl(), { feedback: [item] });
    status.textContent = answer.ok
      ? (item.outcome === "accepted" ? "Accepted: feedback stored." : "Dismissed: feedback stored.")
      : "Feedback refused (HTTP " + answer.status + "): " + (answer.body && answer.body.issue ? answer.body.issue[0].diagnostics : answer.text);
    return answer.ok;
  }

  function renderLinks(card, article) {
    const links = card.links || [];
    if (!links.length) return;
    const list = element("ul", { class: "links", "aria-label": "Links" });
    for (const link of links) {
      const item = element("li");
      item.append(element("a", { href: link.url, target: "_blank", rel: "noopener noreferrer" }, link.label));
      list.append(item);
    }
    article.append(list);
  }

  function renderSuggestions(card, article, status) {
    const suggestions = card.suggestions || [];
    if (!suggestions.length) return;
    const group = element("div", { class: "suggestions", role: "group", "aria-label": "Suggestions" });
    for (const suggestion of suggestions) {
      const button = element("button", { type: "button", class: "suggestion" }, suggestion.label);
      button.addEventListener("click", async () => {
        const item = { card: card.uuid, outcome: "accepted", acceptedSuggestions: [{ id: suggestion.uuid }] };
        if (await sendFeedback(item, status)) button.disabled = true;
      });
      group.append(button);
    }
    article.append(group);
  }

  function renderOverride(card, article, status, index) {
    const reasons = card.overrideReasons || [];
    const toggle = element("button", { type: "button", class: "dismiss", "aria-expanded": "false", "aria-controls": "override-" + index }, "Dismiss");
    const form = element("div", { id: "override-" + index, class: "override", hidden: "" });
    const select = element("select", { id: "reason-" + index });
    select.append(element("option", { value: "" }, "No reason given"));
    reasons.forEach((reason, position) => select.append(element("option", { value: String(position) }, reason.display)));
    const comment = element("input", { id: "comment-" + index, type: "text" });
    const send = element("button", { type: "button", class: "send-dismiss" }, "Dismiss this card");
    form.append(element("label", { for: "reason-" + index }, "Reason"), select, element("label", { for: "comment-" + index }, "Comment (optional)"), comment, send);
    toggle.addEventListener("click", () => {
      form.hidden = !form.hidden;
      toggle.setAttribute("aria-expanded", String(!form.hidden));
      if (!form.hidden) select.focus();
    });
    send.addEventListener("click", async () => {
      const item = { card: card.uuid, outcome: "overridden" };
      const chosen = reasons[Number(select.value)];
      if (select.value !== "" && chosen) item.overrideReason = { reason: { system: chosen.system, code: chosen.code, display: chosen.display } };
      if (comment.value.trim()) item.overrideReason = Object.assign(item.overrideReason || {}, { userComment: comment.value.trim() });
      if (await sendFeedback(item, status)) {
        article.classList.add("dismissed");
        form.hidden = true;
        toggle.disabled = true;
        toggle.setAttribute("aria-expanded", "false");
      }
    });
    article.append(toggle, form);
  }

  function renderCard(card, index) {
    const indicator = LABELS[card.indicator] ? card.indicator : "info";
    const article = element("article", { class: "card card-" + indicator, "aria-labelledby": "card-" + index + "-summary" });
    const badge = element("p", { class: "indicator" });
    badge.append(element("span", { class: "badge" }, LABELS[indicator]));
    article.append(badge, element("h3", { id: "card-" + index + "-summary" }, card.summary));
    if (card.detail) {
      const detail = element("div", { class: "detail" });
      detail.innerHTML = window.DOMPurify.sanitize(markdown.render(card.detail), { USE_PROFILES: { html: true } });
      article.append(detail);
    }
    if (card.source) {
      const line = element("p", { class: "source" }, "Source: ");
      line.append(card.source.url ? element("a", { href: card.source.url, target: "_blank", rel: "noopener noreferrer" }, card.source.label) : document.createTextNode(card.source.label));
      article.append(line);
    }
    renderLinks(card, article);
    const status = element("p", { class: "feedback-status", role: "status", "aria-live": "polite" });
    renderSuggestions(card, article, status);
    if (card.overrideReasons) renderOverride(card, article, status, index);
    article.append(status);
    return article;
  }

  async function call(event) {
    event.preventDefault();
    const hook = $("service").selectedOptions[0].dataset.hook;
    $("call-error").hidden = true;
    $("cards").replaceChildren();
    $("raw-request").textContent = "";
    $("raw-response").textContent = "";
    let request;
    try {
      request = await buildRequest(hook);
    } catch (error) {
      showError("The request could not be built", { text: error.message });
      return;
    }
    $("call-status").textContent = "Calling the service…";
    $("raw-request").textContent = JSON.stringify(request, null, 2);
    const answer = await post("/cds-services/" + encodeURIComponent($("service").value), request);
    $("raw-response").textContent = (answer.status ? "HTTP " + answer.status + "\n" : "") + (answer.body ? JSON.stringify(answer.body, null, 2) : answer.text);
    if (!answer.ok || !answer.body || !Array.isArray(answer.body.cards)) {
      showError(answer.status ? "The call failed: HTTP " + answer.status : "The call failed: " + answer.text, answer);
      return;
    }
    const cards = answer.body.cards;
    cards.forEach((card, index) => $("cards").append(renderCard(card, index)));
    $("call-status").textContent = cards.length
      ? cards.length + (cards.length === 1 ? " card" : " cards") + " returned."
      : "The service answered with no cards for this patient.";
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const radio of document.querySelectorAll("input[name=source]")) radio.addEventListener("change", showPanel);
    $("example").addEventListener("change", describeExample);
    $("call-form").addEventListener("submit", call);
    showPanel();
    loadExampleList().catch(() => { $("example-description").textContent = "The example list could not be loaded."; });
  });
})();
