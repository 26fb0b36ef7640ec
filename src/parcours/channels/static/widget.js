/* Parcours web chat widget. Embed: <script src="https://PARCOURS/widget.js" data-parcours-site="shop" async></script>
   Logged-in visitors (signature computed by the site's back end, see docs/channels.md): data-parcours-user-id,
   data-parcours-user-email, data-parcours-user-name, data-parcours-signature; or ParcoursChat.identify({...}).
   Talks only to the server it was loaded from. All text is shown with textContent. */
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.ParcoursChat) return;
  const data = script.dataset;
  const server = new URL(script.src, location.href);
  const socketUrl = (server.protocol === "https:" ? "wss://" : "ws://") + server.host + "/v1/chat/ws";

  let storage = null;
  try { storage = window.localStorage; storage.setItem("parcours.t", "1"); storage.removeItem("parcours.t"); } catch { storage = null; }
  const memory = {};
  const load = (key) => (storage ? storage.getItem("parcours." + key) : memory[key]) ?? null;
  const save = (key, value) => { if (storage) storage.setItem("parcours." + key, value); else memory[key] = value; };
  const randomId = () => {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  };

  let identity = data.parcoursUserId && data.parcoursSignature ? {
    user_id: data.parcoursUserId, signature: data.parcoursSignature,
    ...(data.parcoursUserEmail ? { email: data.parcoursUserEmail } : {}),
    ...(data.parcoursUserName ? { name: data.parcoursUserName } : {}),
  } : null;

  // The browser's anonymous id; a new one once someone else (or nobody) is logged in than last time, so a
  // shared computer never shows one customer's chat to the next visitor.
  function anonymousId() {
    const who = identity ? identity.user_id : "";
    const last = load("user");
    let id = load("anonymous_id");
    if (!id || (last && last !== who)) id = randomId();
    save("anonymous_id", id);
    save("user", who);
    return id;
  }

  // ------------------------------------------------------------------------------------------ the UI
  const el = (tag, props = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "text") node.textContent = value; else node.setAttribute(key, value);
    }
    node.append(...children);
    return node;
  };
  const style = el("style", { text: `
    :host { all: initial; }
    * { box-sizing: border-box; font: 14px/1.4 system-ui, sans-serif; }
    .toggle { position: fixed; right: 20px; bottom: 20px; width: 56px; height: 56px; border: 0; border-radius: 50%;
      background: #1f5eff; color: #fff; font-size: 24px; cursor: pointer; box-shadow: 0 4px 14px #0004; z-index: 2147483000; }
    .badge { position: absolute; top: -4px; right: -4px; min-width: 20px; padding: 0 5px; border-radius: 10px;
      background: #e5173f; color: #fff; font-size: 12px; line-height: 20px; }
    .panel { position: fixed; right: 20px; bottom: 88px; width: min(360px, calc(100vw - 40px)); height: min(520px, calc(100vh - 120px));
      display: flex; flex-direction: column; background: #fff; color: #111; border-radius: 12px; box-shadow: 0 8px 30px #0005;
      overflow: hidden; z-index: 2147483000; }
    [hidden] { display: none !important; }
    header { display: flex; justify-content: space-between; align-items: center; padding: 12px 14px; background: #1f5eff; color: #fff; }
    header button { border: 0; background: none; color: #fff; font-size: 20px; cursor: pointer; }
    .status { padding: 4px 14px; font-size: 12px; color: #555; background: #f3f4f6; }
    .list { flex: 1; overflow-y: auto; padding: 12px; display: flex; flex-direction: column; gap: 6px; }
    .m { max-width: 80%; padding: 8px 11px; border-radius: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
    .me { align-self: flex-end; background: #1f5eff; color: #fff; }
    .them { align-self: flex-start; background: #eef0f4; }
    .wait { opacity: .6; } .fail { background: #fde2e6; color: #8a0020; }
    form { display: flex; gap: 6px; padding: 10px; border-top: 1px solid #e5e7eb; }
    textarea { flex: 1; resize: none; height: 40px; padding: 8px; border: 1px solid #cbd5e1; border-radius: 8px; }
    form button { border: 0; border-radius: 8px; padding: 0 14px; background: #1f5eff; color: #fff; cursor: pointer; }` });
  const badge = el("span", { class: "badge", hidden: "" });
  const toggle = el("button", { class: "toggle", type: "button", "aria-label": "Open the chat", "aria-expanded": "false", text: "💬" }, badge);
  const close = el("button", { type: "button", "aria-label": "Close the chat", text: "×" });
  const status = el("div", { class: "status", role: "status", hidden: "" });
  const list = el("div", { class: "list", role: "log", "aria-live": "polite" });
  const input = el("textarea", { "aria-label": "Your message", placeholder: "Write a message…", maxlength: "4000" });
  const form = el("form", {}, input, el("button", { type: "submit", text: "Send" }));
  const panel = el("div", { class: "panel", role: "dialog", "aria-label": data.parcoursTitle || "Chat", hidden: "" },
    el("header", {}, el("strong", { text: data.parcoursTitle || "Chat with us" }), close), status, list, form);
  const host = el("div", { "data-parcours-chat": "" });
  host.attachShadow({ mode: "open" }).append(style, toggle, panel);
  const mount = () => document.body.append(host);
  if (document.body) mount(); else addEventListener("DOMContentLoaded", mount);

  let unread = 0;
  const shown = new Map(); // message id -> element
  const pending = new Map(); // client id -> { body, node }
  const say = (text) => { status.textContent = text || ""; status.hidden = !text; };

  function show(message) {
    let node = (message.id && shown.get(message.id)) || pending.get(message.client_id)?.node;
    if (!node && message.body == null) return null;
    if (!node) {
      node = el("div", { class: "m " + (message.direction === "outbound" ? "them" : "me"), text: message.body });
      list.append(node);
      list.scrollTop = list.scrollHeight;
      if (message.direction === "outbound" && message.live && panel.hidden) {
        unread += 1; badge.textContent = String(unread); badge.hidden = false;
      }
    }
    if (message.sent_at) node.title = new Date(message.sent_at).toLocaleString();
    if (message.id) { shown.set(message.id, node); node.classList.remove("wait", "fail"); pending.delete(message.client_id); }
    return node;
  }

  function setOpen(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) { unread = 0; badge.hidden = true; connect(); input.focus(); }
  }
  toggle.addEventListener("click", () => setOpen(panel.hidden));
  close.addEventListener("click", () => setOpen(false));
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const body = input.value.trim();
    if (!body) return;
    input.value = "";
    const client_id = randomId();
    const node = show({ client_id, direction: "inbound", body });
    node.classList.add("wait");
    pending.set(client_id, { body, node });
    save("chatting", "1");
    transmit(client_id);
    connect();
  });

  // -------------------------------------------------------------------------------------- the socket
  let socket = null, ready = false, attempts = 0, timer = null, stopped = false;

  function transmit(client_id) {
    const message = pending.get(client_id);
    if (message && ready) socket.send(JSON.stringify({ type: "message", client_id, body: message.body }));
  }

  function connect() {
    if (socket || stopped) return;
    clearTimeout(timer);
    const ws = new WebSocket(socketUrl);
    socket = ws;
    ws.onopen = () => {
      if (ws !== socket) return;
      const hello = { type: "hello", anonymous_id: anonymousId() };
      if (data.parcoursSite) hello.site = data.parcoursSite;
      if (identity) hello.identity = identity;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      if (ws !== socket) return;
      let frame;
      try { frame = JSON.parse(event.data); } catch { return; }
      if (frame.type === "history") {
        ready = true; attempts = 0; say("");
        for (const message of frame.messages || []) show(message);
        for (const client_id of pending.keys()) transmit(client_id);
      } else if (frame.type === "message") {
        show({ ...frame, live: true });
      } else if (frame.type === "ack") {
        show({ id: frame.id, client_id: frame.client_id, sent_at: frame.sent_at, direction: "inbound" });
      } else if (frame.type === "error") {
        const message = frame.client_id && pending.get(frame.client_id);
        if (message && (frame.code === "rate_limited" || frame.code === "unavailable")) {
          setTimeout(() => transmit(frame.client_id), 5000);
        } else if (message) {
          message.node.classList.replace("wait", "fail");
          message.node.title = frame.message;
          pending.delete(frame.client_id);
        } else {
          say(frame.message);
        }
      }
    };
    ws.onclose = (event) => {
      if (ws !== socket) return;
      socket = null; ready = false;
      if (event.code === 1008) { stopped = true; return; } // refused (origin, identity): retrying will not help
      const delay = Math.min(30000, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2);
      attempts += 1;
      say("Reconnecting…");
      timer = setTimeout(connect, delay);
    };
  }

  function restart() {
    if (socket) { const old = socket; socket = null; old.close(1000); }
    ready = false; stopped = false; attempts = 0;
    shown.clear(); pending.clear(); list.replaceChildren(); say("");
    if (!panel.hidden || load("chatting")) connect();
  }

  addEventListener("online", () => { if (!socket && !stopped) { attempts = 0; connect(); } });
  if (load("chatting")) connect();

  window.ParcoursChat = {
    open: () => setOpen(true),
    close: () => setOpen(false),
    identify: (next) => { identity = next; restart(); },
    logout: () => { identity = null; restart(); },
  };
})();
