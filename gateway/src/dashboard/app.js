// shippy dashboard: talks to the /v1 API of the gateway that served it, with the
// bearer token kept in sessionStorage (never in a URL). No framework, no build.
"use strict";

const TOKEN_KEY = "shippy-token";
const $ = (id) => document.getElementById(id);
let lastEventId = null;
let feedAbort = null;
let servicesTimer = null;
let vesselsPending = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// A /v1 call with the token; a 401 forgets the token and asks for another.
async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + token() }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    signOut("The token was refused: enter a valid one.");
    throw new Error("unauthorized");
  }
  return response;
}

// The message of an error response: the services' {"error":{"code","message"}}.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (_) { /* not JSON */ }
  return "HTTP " + response.status;
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

function meter(label, value, max, className) {
  const progress = el("progress", { max: String(max), value: String(value), class: className,
    "aria-label": label + ": " + value + " of " + max });
  return el("div", { class: "meter" }, el("span", {}, label), progress,
    el("span", {}, ""), el("span", {}, value.toLocaleString() + " / " + max.toLocaleString()));
}

async function loadVessels() {
  const vessels = [];
  let path = "/v1/vessels?limit=100";
  while (path) {
    const response = await api(path);
    if (!response.ok) throw new Error(await errorMessage(response));
    const page = await response.json();
    vessels.push(...page.vessels);
    path = page.next ? "/v1/vessels?limit=100&cursor=" + encodeURIComponent(page.next) : null;
  }
  const list = $("vessels");
  list.replaceChildren(...vessels.map((vessel) => {
    const booked = vessel.booked || { containers: 0, weight: 0 };
    return el("li", { "data-vessel": vessel.id, "data-containers": String(booked.containers),
      "data-weight": String(booked.weight) },
      el("div", { class: "vessel-name" }, vessel.name + " (" + vessel.id + ")"),
      meter("Containers", booked.containers, vessel.capacity, "containers"),
      meter("Weight (kg)", booked.weight, vessel.max_weight, "weight"));
  }));
}

// Several events at once cost one reload of the fleet.
function refreshVessels() {
  if (vesselsPending) return;
  vesselsPending = setTimeout(() => {
    vesselsPending = null;
    loadVessels().catch(showTrouble);
  }, 100);
}

async function loadServices() {
  const response = await api("/v1/services");
  if (!response.ok) throw new Error(await errorMessage(response));
  const body = await response.json();
  const rows = [];
  for (const service of body.services) {
    const requests = service.endpoints.reduce((sum, e) => sum + e.num_requests, 0);
    const errors = service.endpoints.reduce((sum, e) => sum + e.num_errors, 0);
    rows.push(el("tr", { "data-service": service.name },
      el("td", {}, service.name + " " + service.version),
      el("td", {}, el("code", {}, service.id.slice(0, 8))),
      el("td", { class: "num" }, String(requests)),
      el("td", { class: "num" }, String(errors))));
  }
  $("services").replaceChildren(...rows);
}

function addToFeed(id, event) {
  const feed = $("feed");
  for (const consignment of event.consignments) {
    const item = el("li", { "data-consignment": consignment.id, "data-vessel": event.vessel_id, "data-sequence": id },
      el("div", {}, consignment.description),
      el("div", { class: "meta" }, consignment.containers.length + " containers, " +
        consignment.weight.toLocaleString() + " kg, on " + event.vessel_id + " · #" + id));
    feed.prepend(item);
  }
  while (feed.children.length > 100) feed.lastElementChild.remove();
}

// Reads /v1/events as a stream (fetch: EventSource cannot send the token),
// parsing the SSE frames; resumes after the last id seen when it ends.
async function followEvents() {
  feedAbort = new AbortController();
  const headers = { Accept: "text/event-stream" };
  if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
  const response = await api("/v1/events", { headers, signal: feedAbort.signal });
  if (!response.ok) throw new Error(await errorMessage(response));
  $("connection").textContent = "Live";
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = null, data = [], name = "message";
      for (const line of frame.split("\n")) {
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = text;
        else if (field === "data") data.push(text);
        else if (field === "event") name = text;
      }
      if (id !== null) lastEventId = id;
      if (name === "consignment.created" && data.length) {
        addToFeed(id, JSON.parse(data.join("\n")));
        refreshVessels();
      }
    }
  }
}

async function keepFollowing() {
  let pause = 500;
  while (token()) {
    try {
      await followEvents();
      pause = 500;
    } catch (error) {
      if (!token() || (error && error.name === "AbortError")) return;
      showTrouble(error);
      pause = Math.min(pause * 2, 10000);
    }
    $("connection").textContent = "Reconnecting…";
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

function showTrouble(error) {
  if (error && error.message === "unauthorized") return;
  $("connection").textContent = "Trouble: " + (error && error.message ? error.message : error);
}

async function create(event) {
  event.preventDefault();
  $("create-error").textContent = "";
  $("create-result").textContent = "";
  const count = Number($("containers").value);
  const container = { customer_id: $("customer").value, user_id: $("user").value, origin: $("origin").value };
  const body = {
    description: $("description").value,
    weight: Number($("weight").value),
    containers: Array.from({ length: count }, () => Object.assign({}, container)),
  };
  try {
    const headers = { "Content-Type": "application/json" };
    // Outside a secure context there is no randomUUID: the gateway makes the key.
    if (window.crypto && crypto.randomUUID) headers["Idempotency-Key"] = crypto.randomUUID();
    const response = await api("/v1/consignments", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    if (!response.ok) {
      $("create-error").textContent = await errorMessage(response);
      return;
    }
    const consignment = await response.json();
    $("create-result").textContent = "Booked " + consignment.id + " on " + consignment.vessel_id + ".";
  } catch (error) {
    if (error.message !== "unauthorized") $("create-error").textContent = String(error.message || error);
  }
}

function start() {
  $("login").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  loadVessels().catch(showTrouble);
  loadServices().catch(showTrouble);
  servicesTimer = setInterval(() => loadServices().catch(showTrouble), 5000);
  keepFollowing();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (feedAbort) feedAbort.abort();
  clearInterval(servicesTimer);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("connection").textContent = "Not connected";
  $("login-error").textContent = message || "";
  $("token").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    $("login-error").textContent = "";
    start();
  });
  $("create-form").addEventListener("submit", create);
  $("sign-out").addEventListener("click", () => signOut());
  if (token()) start(); else $("token").focus();
});
