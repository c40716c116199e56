// Drives the built-in chat page of `quill serve` in headless Chromium over the Chrome DevTools Protocol (no npm
// packages: Node's WebSocket, which Node 20 enables with --experimental-websocket).
//
// usage: node --experimental-websocket chat_page.mjs CHROMIUM PAGE_URL SCREENSHOT.png PROFILE_DIR
// PAGE_URL should carry ?q=... so that the page sends a message by itself. The script waits for that reply, sends a
// second message in the same conversation, starts a third long one and presses Stop, takes a screenshot, and
// prints one JSON line: {"first": {state, reply, deltas, usage}, "second": {...}, "third": {state, deltas},
// "bubbles": [class names]}. Chromium is always killed at the end.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [chromium, pageUrl, shotPath, profileDir] = process.argv.slice(2);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const browser = spawn(chromium, [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1000,800",
  `--user-data-dir=${profileDir}`, "--remote-debugging-port=0", "about:blank",
], { stdio: ["ignore", "ignore", "pipe"] });
let browserLog = "";
browser.stderr.on("data", (d) => { browserLog += d; });
const killBrowser = () => { try { browser.kill("SIGKILL"); } catch (e) {} };
process.on("exit", killBrowser);

function fail(msg) {
  console.log(JSON.stringify({ error: msg, browser_log: browserLog.slice(-2000) }));
  killBrowser();
  process.exit(1);
}

async function main() {
  // Chromium writes its DevTools port into the profile directory.
  const portFile = join(profileDir, "DevToolsActivePort");
  let port = 0;
  for (let i = 0; i < 300 && !port; i++) {
    if (existsSync(portFile)) port = parseInt(readFileSync(portFile, "utf8").split("\n")[0], 10) || 0;
    if (!port) await sleep(100);
  }
  if (!port) fail("Chromium did not open its DevTools port");

  const targets = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const page = targets.find((t) => t.type === "page");
  if (!page) fail("no page target");

  const ws = new WebSocket(page.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = () => reject(new Error("websocket error")); });
  let nextId = 1;
  const pending = new Map();
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) {
      const { resolve, reject } = pending.get(msg.id);
      pending.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
    }
  };
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    ws.send(JSON.stringify({ id, method, params }));
  });
  const evaluate = async (expr) => (await send("Runtime.evaluate", { expression: expr, returnByValue: true })).result.value;

  await send("Page.enable");
  await send("Page.navigate", { url: pageUrl });

  const waitFor = async (expr, what, ms = 60_000) => {
    for (let t = 0; t < ms; t += 100) {
      if (await evaluate(expr)) return;
      await sleep(100);
    }
    fail("timed out waiting for " + what);
  };
  const type = (text) => evaluate(`(() => { document.getElementById('input').value = ${JSON.stringify(text)};
                                          document.getElementById('send').click(); })()`);

  // 1. The message from ?q= is sent on load; its reply streams in.
  await waitFor("window.quillReplies === 1", "the first reply");
  const first = await evaluate("({ state: document.body.dataset.state, reply: window.quillLastReply, deltas: window.quillDeltas, usage: window.quillLastUsage })");

  // 2. A second message continues the same conversation.
  await type("What happened next?");
  await waitFor("window.quillReplies === 2", "the second reply");
  const second = await evaluate("({ state: document.body.dataset.state, reply: window.quillLastReply, deltas: window.quillDeltas, usage: window.quillLastUsage })");

  // 3. A long reply is stopped with the Stop button once it is streaming. The click comes from the page itself, in
  // the task after the 6th delta: polling from here (every 100 ms, each evaluation queued behind the page's own work)
  // let a loaded machine stream all 3,000 tokens before the click, and the server then had nothing to cancel.
  await evaluate(`(() => {
    let d = 0;
    window.quillStopAt = 6;
    Object.defineProperty(window, "quillDeltas", { configurable: true, get: () => d, set: (v) => {
      d = v;
      if (window.quillStopAt && v >= window.quillStopAt) {
        window.quillStopAt = 0;
        setTimeout(() => document.getElementById("stop").click(), 0);
      }
    } });
  })()`);
  await evaluate("document.getElementById('max_tokens').value = '3000'");
  await type("Tell me a very long story.");
  await waitFor("window.quillReplies === 3", "the stop");
  const third = await evaluate("({ state: document.body.dataset.state, deltas: window.quillDeltas })");

  const bubbles = await evaluate("[...document.querySelectorAll('.msg')].map((b) => b.className)");
  const shot = await send("Page.captureScreenshot", { format: "png" });
  writeFileSync(shotPath, Buffer.from(shot.data, "base64"));
  ws.close();
  console.log(JSON.stringify({ first, second, third, bubbles }));
  killBrowser();
  process.exit(0);
}

setTimeout(() => fail("timed out"), 90_000).unref();
main().catch((e) => fail(String(e && e.stack ? e.stack : e)));
