// Doppel web chat: one WebSocket to bot/webchat/server.py (protocol in that module's docstring).
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  const state = {
    ws: null, user: null, clone: null, channels: [], current: null, messages: {}, unread: {},
    typing: {}, queue: {}, commands: [], maxChars: 4000, pending: {}, nonce: 0, replyTo: null,
    joined: false, retryMs: 500, lastTypingSent: 0, suggestIndex: 0,
  };

  // The owner key comes once in the URL (?key=...): keep it for this tab, take it off the address bar.
  const params = new URLSearchParams(location.search);
  if (params.get("key")) {
    sessionStorage.setItem("doppel.key", params.get("key"));
    history.replaceState(null, "", location.pathname);
  }
  let ownerKey = sessionStorage.getItem("doppel.key") || "";

  function guestToken() {
    let token = localStorage.getItem("doppel.guest");
    if (!token) {
      const bytes = new Uint8Array(16);
      crypto.getRandomValues(bytes);
      token = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem("doppel.guest", token);
    }
    return token;
  }

  // -- connection ------------------------------------------------------------------------------
  function connect() {
    const name = localStorage.getItem("doppel.name") || "";
    if (!ownerKey && !name) { showJoin(""); return; }
    setConn(false, state.joined ? "reconnecting…" : "connecting…");
    const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
    state.ws = ws;
    ws.onopen = () => {
      const hello = ownerKey ? { type: "join", key: ownerKey } : { type: "join", name, guest: guestToken() };
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => on(JSON.parse(event.data));
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      setConn(false, "reconnecting…");
      if (state.joined) {
        setTimeout(connect, state.retryMs);
        state.retryMs = Math.min(state.retryMs * 2, 8000);
      }
    };
  }

  function sendFrame(frame) {
    if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return false;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  function setConn(up, text) {
    $("conn").classList.toggle("up", up);
    $("conn-text").textContent = text;
  }

  // -- events from the server --------------------------------------------------------------------
  function on(event) {
    switch (event.type) {
      case "welcome": return onWelcome(event);
      case "message": return onMessage(event.channel, event.message);
      case "typing": return onTyping(event);
      case "sent": delete state.pending[event.nonce]; return undefined;
      case "error": return onError(event);
      case "adapter": return refreshPanel();
      case "queue": return onQueue(event);
      case "bye": return onBye(event);
      default: return undefined;
    }
  }

  function onWelcome(event) {
    state.user = event.user; state.clone = event.clone; state.channels = event.channels;
    state.commands = event.commands; state.maxChars = event.max_text_chars;
    state.messages = event.backlog; state.joined = true; state.retryMs = 500;
    if (!state.channels.some((c) => c.key === state.current)) state.current = state.channels[0].key;
    $("join").hidden = true;
    $("app").hidden = false;
    setConn(true, "connected");
    renderMe(); renderChannels(); selectChannel(state.current);
    $("input").focus();
  }

  function onMessage(channel, message) {
    (state.messages[channel] = state.messages[channel] || []).push(message);
    if (state.typing[channel]) delete state.typing[channel][message.author.id];
    if (message.author.kind === "clone" && state.queue[channel]) { delete state.queue[channel]; renderQueue(); }
    if (channel === state.current) {
      const box = $("messages");
      const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
      const list = state.messages[channel];
      if (list.length === 1) box.textContent = "";
      box.appendChild(renderMessage(message, list[list.length - 2]));
      if (nearBottom || message.author.id === state.user.id) box.scrollTop = box.scrollHeight;
    } else {
      state.unread[channel] = (state.unread[channel] || 0) + 1;
      renderChannels();
    }
    renderTyping();
  }

  function onTyping(event) {
    if (event.user.id === state.user.id) return;
    const who = (state.typing[event.channel] = state.typing[event.channel] || {});
    who[event.user.id] = { name: event.user.name, until: Date.now() + event.for_s * 1000 };
    renderTyping();
    setTimeout(renderTyping, event.for_s * 1000 + 50);
  }

  // The clone is answering others first: say where this DM's message stands (position 0: no more).
  function onQueue(event) {
    if (event.position) state.queue[event.channel] = event.message;
    else delete state.queue[event.channel];
    renderQueue();
  }

  // The server let this guest go after a long silence: no reconnecting; joining again starts afresh.
  function onBye(event) {
    state.joined = false;
    if (state.ws) { const ws = state.ws; state.ws = null; ws.close(); }
    setConn(false, "disconnected");
    showJoin(event.message);
    $("join-name").value = localStorage.getItem("doppel.name") || "";
  }

  function renderQueue() {
    const text = state.queue[state.current] || "";
    $("queue").hidden = !text;
    $("queue").textContent = text;
  }

  function onError(event) {
    if (!state.joined) {
      if (ownerKey) { ownerKey = ""; sessionStorage.removeItem("doppel.key"); }
      localStorage.removeItem("doppel.name");
      showJoin(event.message);
      return;
    }
    const pending = state.pending[event.nonce];
    if (pending) {
      delete state.pending[event.nonce];
      const input = $("input");
      if (!input.value) { input.value = pending.text; autosize(); updateSend(); }
      if (pending.channel !== state.current) selectChannel(pending.channel);
    }
    toast(event.message, true);
  }

  // -- rendering ------------------------------------------------------------------------------------
  function initials(name) {
    const words = name.trim().split(/\s+/).filter(Boolean);
    const letters = words.length > 1 ? words[0][0] + words[1][0] : (words[0] || "?").slice(0, 2);
    return letters.toUpperCase();
  }

  function avatar(user, small) {
    let hash = 0;
    for (const ch of user.name) hash = (hash * 31 + ch.codePointAt(0)) | 0;
    const node = el("span", "avatar" + (small ? " small" : ""), initials(user.name));
    node.style.background = user.kind === "clone"
      ? "linear-gradient(135deg, #6a85ff, #a36bff)" : `hsl(${Math.abs(hash) % 360}, 52%, 46%)`;
    node.title = user.name;
    return node;
  }

  function renderMe() {
    const me = $("me");
    me.textContent = "";
    me.append(avatar(state.user), el("span", "name", state.user.name),
              el("span", "badge", state.user.kind === "owner" ? "owner" : "guest"));
  }

  function renderChannels() {
    for (const [listId, type] of [["dms", "dm"], ["groups", "group"]]) {
      const list = $(listId);
      list.textContent = "";
      for (const channel of state.channels.filter((c) => c.type === type)) {
        const item = el("li");
        item.dataset.channel = channel.key;
        item.classList.toggle("active", channel.key === state.current);
        if (type === "dm") {
          item.append(avatar(state.clone, true), el("span", "label", channel.title), el("span", "badge", "clone"));
        } else {
          item.append(el("span", "hash", "#"), el("span", "label", channel.title));
        }
        if (state.unread[channel.key]) item.append(el("span", "unread", String(state.unread[channel.key])));
        item.addEventListener("click", () => selectChannel(channel.key));
        list.appendChild(item);
      }
    }
  }

  function selectChannel(key) {
    state.current = key;
    state.unread[key] = 0;
    clearReply();
    const channel = state.channels.find((c) => c.key === key);
    $("title").textContent = channel.type === "dm" ? channel.title : "# " + channel.title;
    $("subtitle").textContent = subtitle(channel);
    $("input").placeholder = channel.type === "dm" ? `Message ${channel.title}` : `Message #${channel.title}`;
    renderChannels(); renderMessages(); renderTyping(); renderQueue(); refreshPanel();
  }

  function subtitle(channel) {
    if (channel.type === "dm") return `Direct messages with ${state.clone.name}, an AI clone`;
    const names = new Set([state.clone.name + " (clone)"]);
    for (const m of state.messages[channel.key] || []) {
      if (m.author.id !== state.user.id && m.author.kind !== "clone") names.add(m.author.name);
    }
    return [...names, "you"].join(", ");
  }

  function renderMessages() {
    const box = $("messages");
    box.textContent = "";
    const list = state.messages[state.current] || [];
    if (!list.length) {
      const channel = state.channels.find((c) => c.key === state.current);
      box.appendChild(el("div", "empty", channel.type === "dm"
        ? `Say hi to ${state.clone.name}. Replies come from the clone, not a person.`
        : `Nothing here yet. Mention @${state.clone.handle} to talk to the clone.`));
      return;
    }
    list.forEach((m, i) => box.appendChild(renderMessage(m, list[i - 1])));
    box.scrollTop = box.scrollHeight;
  }

  const dayOf = (at) => new Date(at * 1000).toDateString();
  const timeOf = (at) => new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

  function renderMessage(m, prev) {
    const frag = document.createDocumentFragment();
    if (!prev || dayOf(prev.at) !== dayOf(m.at)) {
      frag.appendChild(el("div", "day", new Date(m.at * 1000).toLocaleDateString([], { weekday: "long", month: "short", day: "numeric" })));
    }
    const mine = m.author.id === state.user.id;
    const first = !prev || prev.author.id !== m.author.id || m.at - prev.at > 300 || dayOf(prev.at) !== dayOf(m.at);
    const row = el("div", `msg kind-${m.author.kind}` + (mine ? " mine" : " theirs") + (first ? " first" : ""));
    row.dataset.id = m.id;
    row.dataset.authorKind = m.author.kind;
    row.dataset.testid = "message";
    const slot = el("div", "slot");
    if (!mine && first) slot.appendChild(avatar(m.author));
    const body = el("div", "body");
    if (!mine && first) {
      const who = el("div", "who", m.author.name + " ");
      if (m.author.kind === "clone") who.appendChild(el("span", "badge", "clone"));
      body.appendChild(who);
    }
    const bubble = el("div", "bubble");
    if (m.reply_to) bubble.appendChild(el("div", "quote", `↪ ${m.reply_to.author.name}: ${m.reply_to.text}`));
    bubble.appendChild(el("span", "text", m.text));
    const time = el("span", "time", timeOf(m.at));
    time.title = new Date(m.at * 1000).toLocaleString();
    bubble.appendChild(time);
    body.appendChild(bubble);
    row.append(slot, body);
    if (!mine) {
      const reply = el("button", "reply-btn", "Reply");
      reply.type = "button";
      reply.addEventListener("click", () => startReply(m));
      row.appendChild(reply);
    }
    frag.appendChild(row);
    return frag;
  }

  function renderTyping() {
    const now = Date.now();
    const who = Object.values(state.typing[state.current] || {}).filter((t) => t.until > now).map((t) => t.name);
    const box = $("typing");
    const list = $("messages");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    box.hidden = !who.length;
    if (atBottom) list.scrollTop = list.scrollHeight;  // the indicator takes room: keep the newest message in view
    $("typing-text").textContent = who.length === 1 ? `${who[0]} is typing…`
      : who.length === 2 ? `${who[0]} and ${who[1]} are typing…` : "Several people are typing…";
  }

  function toast(text, bad) {
    const node = $("toast");
    node.textContent = text;
    node.classList.toggle("bad", !!bad);
    node.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { node.hidden = true; }, 5000);
  }

  // -- composing ------------------------------------------------------------------------------------
  function autosize() {
    const input = $("input");
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  function updateSend() {
    const length = $("input").value.length;
    $("send").disabled = !$("input").value.trim();
    const count = $("count");
    count.hidden = length < state.maxChars * 0.8;
    count.textContent = `${length.toLocaleString()} / ${state.maxChars.toLocaleString()}`;
    count.classList.toggle("over", length > state.maxChars);
  }

  function send() {
    const input = $("input");
    const text = input.value;
    if (!text.trim()) return;
    if (text.length > state.maxChars) {
      toast(`The message is ${text.length.toLocaleString()} characters; the limit is ${state.maxChars.toLocaleString()}.`, true);
      return;
    }
    const nonce = "n" + ++state.nonce;
    const frame = { type: "send", channel: state.current, text, nonce };
    if (state.replyTo) frame.reply_to = state.replyTo.id;
    if (!sendFrame(frame)) { toast("Not connected; reconnecting…", true); return; }
    state.pending[nonce] = { text, channel: state.current };
    input.value = "";
    clearReply(); autosize(); updateSend(); hideSuggest();
  }

  function startReply(message) {
    state.replyTo = message;
    $("replying-text").textContent = `Replying to ${message.author.name}: ${message.text.slice(0, 80)}`;
    $("replying").hidden = false;
    $("input").focus();
  }

  function clearReply() {
    state.replyTo = null;
    $("replying").hidden = true;
  }

  function suggestions() {
    const text = $("input").value;
    if (!text.startsWith("/") || text.includes("\n")) return [];
    return state.commands
      .map((c) => ({ line: c.name === "about" ? "/about" : `/clone ${c.name}`, usage: c.usage, description: c.description }))
      .filter((c) => c.line.startsWith(text.split(" ").slice(0, 2).join(" ").trimEnd()) && text.length <= c.line.length + 1);
  }

  function renderSuggest() {
    const list = $("suggest");
    const items = suggestions();
    list.textContent = "";
    list.hidden = !items.length;
    state.suggestIndex = Math.min(state.suggestIndex, Math.max(items.length - 1, 0));
    items.forEach((c, i) => {
      const item = el("li", i === state.suggestIndex ? "sel" : "");
      item.append(el("code", "", `${c.line} ${c.usage}`.trim()), el("span", "desc", c.description));
      item.addEventListener("mousedown", (e) => { e.preventDefault(); pickSuggestion(c); });
      list.appendChild(item);
    });
  }

  function pickSuggestion(c) {
    $("input").value = c.line + (c.usage ? " " : "");
    hideSuggest(); updateSend(); $("input").focus();
  }

  function hideSuggest() { $("suggest").hidden = true; state.suggestIndex = 0; }

  // -- the clone panel --------------------------------------------------------------------------------
  async function refreshPanel() {
    if (!state.current) return;
    const channel = state.current;
    let panel;
    try {
      const response = await fetch("/api/adapter?channel=" + encodeURIComponent(channel));
      panel = await response.json();
    } catch (err) {
      panel = { adapter: null, message: "The clone's details could not be loaded." };
    }
    if (channel !== state.current) return;
    renderPanel(panel);
  }

  function placeholder(icon, text) {
    const box = el("div", "placeholder");
    box.append(el("span", "big", icon), el("span", "", text));
    return box;
  }

  function renderPanel(panel) {
    const card = $("adapter");
    const chart = $("chart");
    card.textContent = "";
    chart.textContent = "";
    if (!panel.adapter) {
      card.appendChild(placeholder("🧪", panel.message || panel.error || "No adapter yet."));
      chart.appendChild(placeholder("📈", "The likeness chart appears once an evaluated adapter is published."));
      return;
    }
    const a = panel.adapter;
    card.dataset.ref = a.ref;
    const head = el("div", "ref", a.ref + " ");
    head.appendChild(el("span", "badge", panel.scope));
    card.appendChild(head);
    const facts = el("dl");
    const add = (label, value) => { if (value !== null && value !== undefined && value !== "") facts.append(el("dt", "", label), el("dd", "", String(value))); };
    add("Base model", a.base_model);
    add("LoRA rank", a.rank);
    add("Created", new Date(a.created_at * 1000).toLocaleString());
    add("Trained on", a.samples ? `${a.samples.toLocaleString()} samples` : "");
    if (a.parents && a.parents.length) add("Blend of", a.parents.map((p) => `${p.adapter} ×${p.weight}`).join(", ") + (a.combination ? ` (${a.combination})` : ""));
    add("Notes", a.notes);
    card.appendChild(facts);
    if (panel.scores.length) {
      const table = el("table", "scores");
      for (const s of panel.scores) {
        const tr = el("tr");
        tr.append(el("td", "", s.label), el("td", "", s.value));
        table.appendChild(tr);
      }
      card.appendChild(table);
    } else {
      card.appendChild(el("p", "placeholder", "Not evaluated: run doppel eval before publishing to see scores."));
    }
    if (panel.chart) {
      const img = el("img");
      img.alt = `Likeness chart of ${a.ref}`;
      img.src = "/" + panel.chart;
      img.addEventListener("error", () => { chart.textContent = ""; chart.appendChild(placeholder("📈", "The chart could not be loaded.")); });
      chart.appendChild(img);
    } else {
      chart.appendChild(placeholder("📈", `No likeness chart for ${a.ref}: run doppel eval on it before publishing.`));
    }
  }

  // -- join screen ------------------------------------------------------------------------------------
  function showJoin(message) {
    $("app").hidden = true;
    $("join").hidden = false;
    $("join-error").hidden = !message;
    $("join-error").textContent = message || "";
    $("join-name").focus();
  }

  // -- wiring ----------------------------------------------------------------------------------------
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("join-name").value.trim();
    if (!name) { showJoin("Pick a name to join."); return; }
    localStorage.setItem("doppel.name", name);
    connect();
  });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("input").addEventListener("keydown", (e) => {
    const open = !$("suggest").hidden;
    if (open && (e.key === "ArrowDown" || e.key === "ArrowUp")) {
      e.preventDefault();
      state.suggestIndex += e.key === "ArrowDown" ? 1 : -1;
      state.suggestIndex = Math.max(0, state.suggestIndex);
      renderSuggest();
    } else if (open && e.key === "Tab") {
      e.preventDefault();
      pickSuggestion(suggestions()[state.suggestIndex]);
    } else if (e.key === "Escape") {
      hideSuggest(); clearReply();
    } else if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("input").addEventListener("input", () => {
    autosize(); updateSend(); renderSuggest();
    const now = Date.now();
    if ($("input").value.trim() && !$("input").value.startsWith("/") && now - state.lastTypingSent > 3000) {
      state.lastTypingSent = now;
      sendFrame({ type: "typing", channel: state.current });
    }
  });
  $("replying-cancel").addEventListener("click", clearReply);
  $("panel-toggle").addEventListener("click", () => {
    $("panel").classList.toggle("open");
    $("app").classList.toggle("no-panel");
  });
  setInterval(renderTyping, 1000);

  connect();
})();
