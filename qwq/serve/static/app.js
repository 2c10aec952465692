// qwq chat page: plain JS, no build step. Streams /v1/chat/completions (SSE), shows the thinking live in a
// collapsible block, the answer below it, token counts and speed; Stop aborts the request (the server then frees
// the generation). The conversation and the settings live in this page (and localStorage), never on the server.
"use strict";

const $ = (id) => document.getElementById(id);
const SETTINGS = ["system", "temperature", "top_p", "top_k", "min_p", "presence_penalty", "max_tokens", "seed",
                  "thinking_budget", "api_key"];
const STORE = "qwq-chat";

const state = { model: null, history: [], controller: null };

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api_key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function save() {
  const settings = {};
  for (const id of SETTINGS) settings[id] = $(id).value;
  try { localStorage.setItem(STORE, JSON.stringify({ settings, history: state.history })); } catch (e) { /* private mode */ }
}

function restore() {
  let saved = null;
  try { saved = JSON.parse(localStorage.getItem(STORE) || "null"); } catch (e) { saved = null; }
  if (!saved) return;
  for (const id of SETTINGS) if (saved.settings && saved.settings[id] !== undefined) $(id).value = saved.settings[id];
  for (const turn of saved.history || []) {
    if (turn.role === "user") addUser(turn.content);
    else if (turn.role === "assistant") {
      const view = addAssistant();
      if (turn.reasoning) { view.thinking.hidden = false; view.thinkingText.textContent = turn.reasoning; view.thinking.open = false; }
      view.answer.textContent = turn.content || "";
      view.stats.textContent = turn.stats || "";
    }
  }
  state.history = saved.history || [];
}

function scrollDown() { const box = $("messages"); box.scrollTop = box.scrollHeight; }

function addUser(text) {
  $("empty").hidden = true;
  const el = document.createElement("article");
  el.className = "message user";
  el.textContent = text;
  $("messages").appendChild(el);
  scrollDown();
  return el;
}

function addAssistant() {
  $("empty").hidden = true;
  const node = $("assistant-template").content.firstElementChild.cloneNode(true);
  $("messages").appendChild(node);
  return {
    root: node, thinking: node.querySelector(".thinking"), thinkingText: node.querySelector(".thinking-text"),
    thinkingStats: node.querySelector(".thinking-stats"), answer: node.querySelector(".answer"),
    tools: node.querySelector(".tool-calls"), stats: node.querySelector(".stats"),
  };
}

function addError(text) {
  const el = document.createElement("article");
  el.className = "message error";
  el.textContent = text;
  $("messages").appendChild(el);
  scrollDown();
}

function numberSetting(id, integer) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const value = integer ? parseInt(raw, 10) : parseFloat(raw);
  return Number.isFinite(value) ? value : undefined;
}

function requestBody() {
  const messages = [];
  const system = $("system").value.trim();
  if (system) messages.push({ role: "system", content: system });
  for (const turn of state.history) messages.push({ role: turn.role, content: turn.content || "" });
  const body = { model: state.model, messages, stream: true, stream_options: { include_usage: true } };
  const fields = { temperature: false, top_p: false, top_k: true, min_p: false, presence_penalty: false,
                   max_tokens: true, seed: true, thinking_budget: true };
  for (const [id, integer] of Object.entries(fields)) {
    const value = numberSetting(id, integer);
    if (value !== undefined) body[id] = value;
  }
  return body;
}

// Server-sent events from a fetch body: yields the JSON text of each `data:` line.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
    }
  }
}

function describeStats(s, now) {
  const parts = [];
  const tokens = s.usage ? s.usage.completion_tokens : s.tokens;
  parts.push(`${tokens} tokens`);
  const reasoning = s.usage ? s.usage.completion_tokens_details.reasoning_tokens : s.thinkingTokens;
  if (reasoning) parts.push(`${reasoning} thinking`);
  if (s.firstAt !== null) {
    const seconds = Math.max((now - s.firstAt) / 1000, 1e-3);
    if (tokens > 1) parts.push(`${((tokens - 1) / seconds).toFixed(1)} tok/s`);
    parts.push(`first token ${((s.firstAt - s.startAt) / 1000).toFixed(2)} s`);
  }
  if (s.usage) parts.push(`prompt ${s.usage.prompt_tokens} tokens`);
  if (s.finish && s.finish !== "stop") parts.push(`finish: ${s.finish}`);
  return parts.join(" · ");
}

async function send(text) {
  state.history.push({ role: "user", content: text });
  addUser(text);
  const view = addAssistant();
  const s = { startAt: performance.now(), firstAt: null, tokens: 0, thinkingTokens: 0, usage: null, finish: null,
              reasoning: "", answer: "" };
  state.controller = new AbortController();
  setBusy(true);
  let stopped = false;
  try {
    const response = await fetch("/v1/chat/completions", { method: "POST", headers: headers(),
      body: JSON.stringify(requestBody()), signal: state.controller.signal });
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try { const body = await response.json(); if (body.error) message += ": " + body.error.message; } catch (e) { /* not JSON */ }
      throw new Error(message);
    }
    for await (const data of sseData(response)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) s.usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        const now = performance.now();
        if (delta.reasoning_content) {
          if (s.firstAt === null) s.firstAt = now;
          s.tokens++; s.thinkingTokens++;
          s.reasoning += delta.reasoning_content;
          view.thinking.hidden = false;
          view.thinking.classList.add("live");
          view.thinkingText.textContent = s.reasoning;
        }
        if (delta.content) {
          if (s.firstAt === null) s.firstAt = now;
          s.tokens++;
          view.thinking.classList.remove("live");
          s.answer += delta.content;
          view.answer.textContent = s.answer;
        }
        for (const call of delta.tool_calls || []) {
          const el = document.createElement("div");
          el.className = "tool-call";
          el.textContent = `tool call ${call.function.name}(${call.function.arguments})`;
          view.tools.appendChild(el);
        }
        if (choice.finish_reason) s.finish = choice.finish_reason;
      }
      view.thinkingStats.textContent = s.thinkingTokens ? `(${s.usage ? s.usage.completion_tokens_details.reasoning_tokens : s.thinkingTokens} tokens)` : "";
      view.stats.textContent = describeStats(s, performance.now());
      scrollDown();
    }
  } catch (err) {
    if (err.name === "AbortError") stopped = true;
    else addError(String(err.message || err));
  } finally {
    view.thinking.classList.remove("live");
    let line = describeStats(s, performance.now());
    if (stopped) line += " · stopped";
    view.stats.textContent = line;
    view.root.dataset.done = stopped ? "stopped" : "yes";
    state.history.push({ role: "assistant", content: s.answer, reasoning: s.reasoning, stats: line });
    state.controller = null;
    setBusy(false);
    save();
  }
}

function setBusy(busy) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  $("status").textContent = busy ? "generating" : "ready";
}

async function connect() {
  try {
    const response = await fetch("/v1/models", { headers: headers() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : `HTTP ${response.status}`);
    state.model = body.data[0].id;
    $("model").textContent = state.model;
    $("status").textContent = "ready";
    $("status").className = "pill ok";
  } catch (err) {
    $("status").textContent = "offline: " + (err.message || err);
    $("status").className = "pill error";
  }
}

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("input").value.trim();
  if (!text || state.controller) return;
  $("input").value = "";
  if (!state.model) { addError("not connected to the server"); return; }
  send(text);
});
$("input").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => { if (state.controller) state.controller.abort(); });
$("new-chat").addEventListener("click", () => {
  if (state.controller) state.controller.abort();
  state.history = [];
  for (const el of Array.from($("messages").querySelectorAll(".message"))) el.remove();
  $("empty").hidden = false;
  save();
});
$("toggle-settings").addEventListener("click", () => {
  const panel = $("settings");
  panel.hidden = !panel.hidden;
  $("toggle-settings").setAttribute("aria-expanded", String(!panel.hidden));
});
for (const id of SETTINGS) $(id).addEventListener("change", () => { save(); if (id === "api_key") connect(); });

restore();
connect();
