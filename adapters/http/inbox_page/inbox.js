"use strict";
// The live inbox: conversations with unread counts, a thread whose delivery statuses change
// as the platform reports them, and a send box (with a PPV price), over the REST API and the
// live stream (/api/live). Plain JavaScript: no build step, nothing from the internet.
//
// Nothing missed, nothing twice: the stream first says up to which log position it has sent
// everything (`live`), and the lists are read at that position (`minPosition`); what the
// stream carries while a list loads waits and is applied after it, in order. The position of
// the last update applied is kept, and a dropped stream resumes after it (the server replays
// what this page missed). A message gets its id here and is retried with that id until the
// API answers, so an API restart neither loses it nor sends it twice.

const STORED = { key: "fancrm.key", account: "fancrm.account", pending: "fancrm.pending" };
const RETRY_MS = [500, 1000, 2000, 4000, 5000];

const state = {
  key: sessionStorage.getItem(STORED.key),
  account: sessionStorage.getItem(STORED.account) || "",
  after: null, // position of the last update applied: where a reconnect resumes
  loaded: false, // the conversation list is read (at the stream's position)
  held: [], // updates that arrived while a list was loading
  loading: 0,
  conversations: new Map(), // id -> {id, fanId, lastMessageAt, unreadCount}
  fans: new Map(), // id -> {name, handle, erased} or a Promise while asked for
  selected: null,
  messages: new Map(), // the selected conversation's, by id
  pending: new Map(JSON.parse(sessionStorage.getItem(STORED.pending) || "[]")),
  socket: null,
  retries: 0,
  stopped: true,
};

const $ = (id) => document.getElementById(id);

// --- the API -----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (state.account) headers["X-Account-Id"] = state.account;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json() : null;
  if (response.status === 401) signOut("The key was refused: " + ((data && data.detail) || ""));
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

// A network error, an API restarting or a lagging view: worth trying again.
const transient = (error) => !(error instanceof ApiError) || error.status >= 500
  || error.status === 429 || error.status === 408;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function patiently(call) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!transient(error) || state.stopped) throw error;
      await sleep(RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
    }
  }
}

function uuid4() {
  // crypto.randomUUID exists only in secure contexts; a LAN address over http is not one.
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// --- the live stream ---------------------------------------------------------------------

async function connect() {
  if (state.stopped) return;
  setConnection(state.retries ? "reconnecting" : "connecting");
  let ticket;
  try {
    ticket = (await api("POST", "/api/live/tickets")).ticket;
  } catch (error) {
    if (transient(error)) return reconnectLater();
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ ticket });
  if (state.loaded && state.after !== null) query.set("after", String(state.after));
  const socket = new WebSocket(`${scheme}://${location.host}/api/live?${query}`);
  state.socket = socket;
  socket.onmessage = (event) => receive(JSON.parse(event.data));
  socket.onclose = (event) => {
    if (state.socket !== socket) return;
    state.socket = null;
    if (event.code === 4403) return signOut("This member's access was removed.");
    reconnectLater(event.reason === "resync" ? 0 : undefined);
  };
}

function reconnectLater(delay) {
  if (state.stopped) return;
  setConnection("reconnecting");
  const wait = delay ?? RETRY_MS[Math.min(state.retries, RETRY_MS.length - 1)];
  state.retries += 1;
  setTimeout(connect, wait);
}

function receive(update) {
  switch (update.type) {
    case "live":
      state.retries = 0;
      setConnection("live");
      if (!state.loaded) loadConversations(update.position);
      if (update.position !== null) state.after = update.position;
      return;
    case "resync": // too far behind to replay: read the lists again
      state.loaded = false;
      state.after = null;
      return;
    case "closing": // this page read too slowly: resume where the server says
      state.after = update.resumeAfter;
      return;
    case "heartbeat":
      return;
    case "queue.status":
      $("queue").textContent = `queue ${update.queueDepth} · failed ${update.dlqCount}`;
      return;
  }
  if (state.loading || !state.loaded) state.held.push(update);
  else apply(update);
}

function apply(update) {
  if (update.position !== null && update.position !== undefined) state.after = update.position;
  switch (update.type) {
    case "message.updated":
    case "message.received":
      applyMessage(update);
      break;
    case "conversation.updated": {
      const known = state.conversations.get(update.conversationId);
      state.conversations.set(update.conversationId, {
        id: update.conversationId,
        fanId: update.fanId,
        lastMessageAt: update.lastMessageAt,
        unreadCount: update.unreadCount,
        ...(known ? {} : { isNew: true }),
      });
      renderConversations();
      break;
    }
    case "fan.updated": {
      // A purchase or a deletion leaves the name as it was; an erased fan stays erased.
      const known = state.fans.get(update.fanId);
      const named = update.change === "created" || update.change === "updated";
      if (named && known && !(known instanceof Promise) && !known.erased) {
        state.fans.set(update.fanId, { name: update.name, handle: update.handle });
        renderConversations();
        renderThread();
      }
      break;
    }
    case "fan.erased":
      state.fans.set(update.fanId, { erased: true });
      for (const message of state.messages.values()) {
        if (message.fanId === update.fanId) message.content = null;
      }
      renderConversations();
      renderThread();
      break;
  }
}

function applyMessage(update) {
  if (update.conversationId !== state.selected) return;
  const known = state.messages.get(update.messageId);
  if (known) {
    Object.assign(known, {
      status: update.type === "message.received" ? "received" : update.status,
      reason: update.reason ?? known.reason,
      revenueCents: update.revenueCents ?? known.revenueCents,
    });
    if ("content" in update) known.content = update.content;
  } else if (update.type === "message.received" || update.status === "queued") {
    state.messages.set(update.messageId, {
      id: update.messageId,
      fanId: update.fanId,
      direction: update.direction,
      content: update.content,
      priceCents: update.priceCents || 0,
      status: update.type === "message.received" ? "received" : update.status,
      at: update.at,
    });
  }
  renderThread();
}

// Lists are read while the stream holds what arrives meanwhile, then that is applied.
async function holdingUpdates(load) {
  state.loading += 1;
  try {
    return await load();
  } finally {
    state.loading -= 1;
    if (!state.loading && state.loaded) {
      const held = state.held;
      state.held = [];
      held.forEach(apply);
    }
  }
}

function atPosition(position) {
  return position === null || position === undefined ? "" : `&minPosition=${position}`;
}

async function loadConversations(position) {
  await holdingUpdates(async () => {
    const page = await patiently(() => api("GET", `/api/crm/conversations?limit=50${atPosition(position)}`));
    state.conversations = new Map(page.conversations.map((c) => [c.id, {
      id: c.id, fanId: c.fanId, lastMessageAt: c.lastMessageAt, unreadCount: c.unreadCount,
    }]));
    state.loaded = true;
    $("no-conversations").hidden = state.conversations.size > 0;
    if (state.selected !== null) await loadThread(state.selected, position);
  });
  renderConversations();
}

async function loadThread(conversationId, position) {
  const page = await patiently(() => api(
    "GET", `/api/crm/conversations/${conversationId}/messages?limit=50${atPosition(position)}`,
  ));
  if (conversationId !== state.selected) return;
  state.messages = new Map(page.messages.map((m) => [m.id, {
    id: m.id,
    fanId: m.fanId,
    direction: m.direction === "in" ? "incoming" : "outgoing",
    content: m.content,
    priceCents: m.priceCents,
    status: m.status,
    reason: m.failureReason,
    revenueCents: m.revenueCents,
    at: m.queuedAt,
  }]));
  renderThread();
}

async function select(conversationId) {
  state.selected = conversationId;
  state.messages = new Map();
  $("send").hidden = false;
  renderConversations();
  renderThread();
  await holdingUpdates(() => loadThread(conversationId, state.after));
}

// --- fans' names -------------------------------------------------------------------------

function fanLabel(fanId) {
  const fan = state.fans.get(fanId);
  if (fan === undefined) {
    state.fans.set(fanId, api("GET", `/api/crm/fans/${fanId}`).then(
      (found) => {
        state.fans.set(fanId, found.fan.name === null && found.fan.handle === null
          ? { erased: true } : { name: found.fan.name, handle: found.fan.handle });
        renderConversations();
        renderThread();
      },
      () => state.fans.delete(fanId),
    ));
    return `Fan ${fanId}`;
  }
  if (fan instanceof Promise) return `Fan ${fanId}`;
  if (fan.erased) return "Erased fan";
  return fan.name || (fan.handle ? `@${fan.handle}` : `Fan ${fanId}`);
}

// --- sending -----------------------------------------------------------------------------

function savePending() {
  sessionStorage.setItem(STORED.pending, JSON.stringify([...state.pending]));
}

async function send(event) {
  event.preventDefault();
  const conversation = state.conversations.get(state.selected);
  const content = $("content").value.trim();
  if (!conversation || !content) return;
  const price = $("price").value;
  const body = {
    messageId: uuid4(),
    recipientId: conversation.fanId,
    content,
    priceCents: price ? Math.round(Number(price) * 100) : 0,
    priority: 10, // a one-to-one reply: the high-priority queue
  };
  state.pending.set(body.messageId, { body, conversationId: conversation.id, at: new Date().toISOString() });
  savePending();
  $("content").value = "";
  $("price").value = "";
  $("send-error").textContent = "";
  renderThread();
  await deliver(body.messageId);
}

// Until the API answers: the same id each time, so a retry never makes a second message.
async function deliver(messageId) {
  const { body } = state.pending.get(messageId);
  try {
    await patiently(() => api("POST", "/api/onlyfans/messages/send", body));
  } catch (error) {
    $("send-error").textContent = `Not sent: ${error.message}`;
  } finally {
    state.pending.delete(messageId);
    savePending();
  }
  renderThread();
}

// --- rendering (textContent only: what fans write is never markup) ------------------------

function element(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function renderConversations() {
  const sorted = [...state.conversations.values()].sort(
    (a, b) => (b.lastMessageAt || "").localeCompare(a.lastMessageAt || "") || b.id - a.id,
  );
  $("conversations").replaceChildren(...sorted.map((c) => {
    const item = element("li", {
      "data-conversation-id": c.id,
      "aria-current": String(c.id === state.selected),
    },
    element("span", {}, element("span", { class: "fan" }, fanLabel(c.fanId)), " ",
      element("span", { class: "when" }, c.lastMessageAt ? new Date(c.lastMessageAt).toLocaleTimeString() : "")),
    element("span", { class: "unread", "data-count": c.unreadCount }, c.unreadCount >= 100 ? "99+" : String(c.unreadCount)));
    item.addEventListener("click", () => select(c.id));
    return item;
  }));
  $("no-conversations").hidden = state.conversations.size > 0;
}

function statusText(message) {
  switch (message.status) {
    case "sending": return "sending…";
    case "failed": return `failed${message.reason ? ": " + message.reason : ""}`;
    case "purchased": return `purchased $${((message.revenueCents || 0) / 100).toFixed(2)}`;
    default: return message.status;
  }
}

function renderThread() {
  const conversation = state.conversations.get(state.selected);
  $("thread-title").textContent = conversation ? fanLabel(conversation.fanId) : "Choose a conversation";
  const shown = [...state.messages.values()];
  for (const [id, sending] of state.pending) {
    if (sending.conversationId === state.selected && !state.messages.has(id)) {
      shown.push({
        id, direction: "outgoing", content: sending.body.content,
        priceCents: sending.body.priceCents, status: "sending", at: sending.at,
      });
    }
  }
  // The API's times and the stream's are both ISO 8601, not always written alike.
  shown.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  $("messages").replaceChildren(...shown.map((m) => {
    const erased = m.content === null;
    const meta = [m.direction === "incoming" ? "" : statusText(m)];
    if (m.priceCents) meta.unshift(`PPV $${(m.priceCents / 100).toFixed(2)}`);
    return element("li", {
      "data-message-id": m.id, "data-direction": m.direction, "data-status": m.status,
    },
    element("span", erased ? { class: "content erased" } : { class: "content" }, erased ? "erased" : m.content),
    element("span", { class: "meta" }, element("span", { class: "status" }, meta.filter(Boolean).join(" · "))));
  }));
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

function setConnection(text) {
  $("connection").textContent = text;
  $("connection").dataset.state = text;
}

// --- signing in and out ------------------------------------------------------------------

function start() {
  state.stopped = false;
  $("sign-in").hidden = true;
  $("inbox").hidden = false;
  $("sign-out").hidden = false;
  connect();
  for (const id of state.pending.keys()) deliver(id);
}

function signOut(reason) {
  state.stopped = true;
  sessionStorage.removeItem(STORED.key);
  state.key = null;
  state.loaded = false;
  if (state.socket) state.socket.close();
  $("inbox").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = reason || "";
  setConnection("offline");
}

$("sign-in").addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = $("key").value.trim();
  state.account = $("account").value.trim();
  sessionStorage.setItem(STORED.key, state.key);
  sessionStorage.setItem(STORED.account, state.account);
  $("key").value = "";
  start();
});
$("sign-out").addEventListener("click", () => signOut());
$("send").addEventListener("submit", send);

if (state.key) start();
else $("sign-in").hidden = false;
