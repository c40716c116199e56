#include "server/chat_page.h"

namespace quill {

// Kept as one raw string so the binary needs no files at run time. Text is always inserted with textContent,
// never as HTML.
static const char kChatPage[] = R"QUILLPAGE(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quill chat</title>
<style>
  :root { --bg: #f6f7f9; --fg: #1d2330; --muted: #6b7383; --user: #dbe8ff; --bot: #ffffff; --accent: #2f6fde; --border: #d9dde5; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: var(--bg); color: var(--fg);
         display: flex; flex-direction: column; height: 100vh; }
  header { display: flex; align-items: center; gap: 12px; padding: 10px 16px; border-bottom: 1px solid var(--border); background: #fff; }
  header h1 { font-size: 17px; margin: 0; }
  header .model { color: var(--muted); font-size: 13px; }
  header .spacer { flex: 1; }
  button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid var(--border); background: #fff; cursor: pointer; }
  button.primary { background: var(--accent); color: #fff; border-color: var(--accent); }
  button:disabled { opacity: .5; cursor: default; }
  #messages { flex: 1; overflow-y: auto; padding: 16px; display: flex; flex-direction: column; gap: 10px; }
  .msg { max-width: 80%; padding: 8px 12px; border-radius: 10px; white-space: pre-wrap; word-wrap: break-word; border: 1px solid var(--border); }
  .msg.user { align-self: flex-end; background: var(--user); }
  .msg.assistant { align-self: flex-start; background: var(--bot); }
  .msg.system { align-self: center; background: transparent; color: var(--muted); font-size: 13px; border-style: dashed; }
  .msg.error { align-self: center; background: #ffecec; color: #a40000; border-color: #f3b4b4; }
  .msg .note { display: block; color: var(--muted); font-size: 12px; margin-top: 4px; }
  .empty { color: var(--muted); text-align: center; margin-top: 20vh; }
  footer { border-top: 1px solid var(--border); background: #fff; padding: 10px 16px; }
  #composer { display: flex; gap: 8px; }
  #input { flex: 1; resize: none; font: inherit; padding: 8px; border-radius: 6px; border: 1px solid var(--border); height: 64px; }
  details { margin-top: 8px; color: var(--muted); font-size: 13px; }
  details label { display: inline-flex; align-items: center; gap: 6px; margin: 6px 14px 0 0; }
  details input, details textarea { font: inherit; padding: 3px 6px; border: 1px solid var(--border); border-radius: 4px; }
  details textarea { width: 100%; height: 48px; }
</style>
</head>
<body data-state="idle">
<header>
  <h1>quill</h1><span class="model" id="model">connecting...</span>
  <span class="spacer"></span>
  <button id="new">New chat</button>
</header>
<div id="messages"><div class="empty" id="empty">Send a message to start.</div></div>
<footer>
  <div id="composer">
    <textarea id="input" placeholder="Message (Enter to send, Shift+Enter for a new line)"></textarea>
    <button id="send" class="primary">Send</button>
    <button id="stop" disabled>Stop</button>
  </div>
  <details id="settings">
    <summary>Settings</summary>
    <label style="display:block">System prompt<textarea id="system"></textarea></label>
    <label>Temperature <input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8" style="width:5em"></label>
    <label>Max tokens <input id="max_tokens" type="number" min="1" step="1" placeholder="auto" style="width:6em"></label>
    <label>Seed <input id="seed" type="number" step="1" placeholder="random" style="width:7em"></label>
    <label>API key <input id="apikey" type="password" placeholder="none" style="width:14em"></label>
  </details>
</footer>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const conversation = [];      // {role, content} sent to the server
let controller = null;        // AbortController of the reply being streamed
window.quillDeltas = 0;       // content deltas received for the last reply, and its text (the tests read them)
window.quillLastReply = "";
window.quillLastUsage = null;
window.quillReplies = 0;      // replies finished (done, stopped or failed)

const params = new URLSearchParams(location.search);
for (const k of ["system", "temperature", "max_tokens", "seed"]) if (params.has(k)) $(k).value = params.get(k);
$("apikey").value = localStorage.getItem("quill-api-key") || "";
$("apikey").addEventListener("change", () => localStorage.setItem("quill-api-key", $("apikey").value));

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("apikey").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function addMessage(role, text) {
  const empty = $("empty");
  if (empty) empty.remove();
  const div = document.createElement("div");
  div.className = "msg " + role;
  div.textContent = text;
  $("messages").appendChild(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

function setBusy(busy, state) {
  $("send").disabled = busy;
  $("stop").disabled = !busy;
  document.body.dataset.state = state;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models", { headers: headers() });
    const j = await r.json();
    if (!r.ok) throw new Error(j.error ? j.error.message : r.statusText);
    const m = j.data[0];
    $("model").textContent = m.id + (m.meta ? " \u00b7 " + m.meta.n_ctx + " tokens \u00b7 template " + m.meta.chat_template : "");
  } catch (e) {
    $("model").textContent = "model: " + e.message;
  }
}

async function send(text) {
  if (controller || !text.trim()) return;
  conversation.push({ role: "user", content: text });
  addMessage("user", text);
  const bubble = addMessage("assistant", "");
  const body = { model: "default", messages: [], stream: true, stream_options: { include_usage: true } };
  const sys = $("system").value.trim();
  if (sys) body.messages.push({ role: "system", content: sys });
  body.messages.push(...conversation);
  const t = parseFloat($("temperature").value);
  if (!isNaN(t)) body.temperature = t;
  const mt = parseInt($("max_tokens").value, 10);
  if (!isNaN(mt)) body.max_tokens = mt;
  const seed = parseInt($("seed").value, 10);
  if (!isNaN(seed)) body.seed = seed;

  controller = new AbortController();
  window.quillDeltas = 0;
  setBusy(true, "streaming");
  let reply = "", usage = null, finish = null, failed = null;
  const t0 = performance.now();
  try {
    const r = await fetch("/v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (!r.ok) {
      let msg = r.status + " " + r.statusText;
      try { const j = await r.json(); if (j.error) msg = j.error.message; } catch (e) {}
      if (r.status === 401) $("settings").open = true;
      throw new Error(msg);
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const j = JSON.parse(data);
          if (j.error) { failed = j.error.message; continue; }
          if (j.usage) usage = j.usage;
          for (const c of j.choices || []) {
            if (c.delta && c.delta.content) {
              reply += c.delta.content;
              window.quillDeltas++;
              bubble.textContent = reply;
              bubble.scrollIntoView({ block: "end" });
            }
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
      }
    }
    if (failed) throw new Error(failed);
    conversation.push({ role: "assistant", content: reply });
    window.quillLastReply = reply;
    window.quillLastUsage = usage;
    const secs = (performance.now() - t0) / 1000;
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = (usage ? usage.completion_tokens + " tokens, " + (usage.completion_tokens / secs).toFixed(1) + " tokens/s" : "") +
                       (finish === "length" ? " \u00b7 stopped at the length limit" : "");
    bubble.appendChild(note);
    setBusy(false, "done");
  } catch (e) {
    if (e.name === "AbortError") {
      conversation.push({ role: "assistant", content: reply });
      const note = document.createElement("span");
      note.className = "note";
      note.textContent = "[stopped]";
      bubble.appendChild(note);
      setBusy(false, "stopped");
    } else {
      if (!reply) bubble.remove();
      conversation.pop();
      addMessage("error", "Error: " + e.message);
      setBusy(false, "error");
    }
  } finally {
    controller = null;
    window.quillReplies++;
  }
}

$("send").addEventListener("click", () => { const t = $("input").value; $("input").value = ""; send(t); });
$("stop").addEventListener("click", () => { if (controller) controller.abort(); });
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("send").click(); }
});
$("new").addEventListener("click", () => {
  if (controller) controller.abort();
  conversation.length = 0;
  $("messages").innerHTML = '<div class="empty" id="empty">Send a message to start.</div>';
  setBusy(false, "idle");
});

loadModel();
if (params.has("q")) send(params.get("q"));
</script>
</body>
</html>
)QUILLPAGE";

const char * chat_page_html() { return kChatPage; }

}  // namespace quill
