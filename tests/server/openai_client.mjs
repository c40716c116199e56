// The official openai npm client against `quill serve` (stories260K): its normal chat and completion calls,
// streaming and non-streaming. At temperature 0 with a seed, streamed text must equal non-streamed text.
//
// usage: node openai_client.mjs BASE_URL API_KEY        (BASE_URL like http://127.0.0.1:8080/v1)
// Prints one line per check and "openai client: all checks passed"; exits 1 at the first failed check.
import OpenAI from "openai";

const [baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

let failed = false;
function check(cond, what, detail = "") {
  console.log(`${cond ? "ok  " : "FAIL"} ${what}${cond ? "" : " " + detail}`);
  if (!cond) failed = true;
}

async function main() {
  // Models.
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  check(models.length === 1 && typeof models[0].id === "string", "models.list returns the served model", JSON.stringify(models));
  const model = models[0].id;

  // Chat, non-streaming.
  const messages = [
    { role: "system", content: "You are a storyteller." },
    { role: "user", content: "Tell me a story about a cat." },
  ];
  const chat = await client.chat.completions.create({ model, messages, temperature: 0, seed: 42, max_tokens: 48 });
  const chatText = chat.choices[0].message.content;
  check(chat.object === "chat.completion", "chat: object is chat.completion");
  check(chat.choices[0].message.role === "assistant", "chat: assistant message");
  check(typeof chatText === "string" && chatText.length > 0, "chat: non-empty reply", JSON.stringify(chatText));
  check(chat.usage && chat.usage.completion_tokens === 48 && chat.usage.total_tokens === chat.usage.prompt_tokens + 48, "chat: usage",
        JSON.stringify(chat.usage));
  check(chat.choices[0].finish_reason === "length", "chat: finish_reason length");

  // Chat, streaming: role first, then content deltas, then finish_reason; usage at the end when asked.
  const stream = await client.chat.completions.create({
    model, messages, temperature: 0, seed: 42, max_tokens: 48, stream: true, stream_options: { include_usage: true },
  });
  let streamed = "", role = null, finish = null, usage = null, deltas = 0, firstIsRole = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (firstIsRole === null) firstIsRole = c.delta.role === "assistant";
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) { streamed += c.delta.content; deltas++; }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  check(firstIsRole === true && role === "assistant", "chat stream: role delta first");
  check(deltas > 5, "chat stream: several content deltas", String(deltas));
  check(streamed === chatText, "chat stream: streamed text equals non-streamed text", JSON.stringify({ streamed, chatText }));
  check(finish === "length", "chat stream: finish_reason length", String(finish));
  check(usage && usage.completion_tokens === 48, "chat stream: usage chunk", JSON.stringify(usage));

  // Completions, non-streaming and streaming.
  const prompt = "Once upon a time";
  const comp = await client.completions.create({ model, prompt, temperature: 0, seed: 7, max_tokens: 40 });
  const compText = comp.choices[0].text;
  check(comp.object === "text_completion", "completion: object is text_completion");
  check(compText.startsWith(", there was a little girl named Lily."), "completion: the model's greedy text", JSON.stringify(compText));
  const cstream = await client.completions.create({ model, prompt, temperature: 0, seed: 7, max_tokens: 40, stream: true });
  let ctext = "", cfinish = null;
  for await (const chunk of cstream) {
    for (const c of chunk.choices) {
      ctext += c.text;
      if (c.finish_reason) cfinish = c.finish_reason;
    }
  }
  check(ctext === compText, "completion stream: streamed text equals non-streamed text", JSON.stringify({ ctext, compText }));
  check(cfinish === "length", "completion stream: finish_reason length");

  // A stop string and a seeded sample at temperature 1 (same seed, same text).
  const stopped = await client.completions.create({ model, prompt, temperature: 0, max_tokens: 40, stop: ["girl"] });
  check(stopped.choices[0].text === ", there was a little " && stopped.choices[0].finish_reason === "stop", "completion: stop string",
        JSON.stringify(stopped.choices[0]));
  const s1 = await client.chat.completions.create({ model, messages, temperature: 1, seed: 3, max_tokens: 20 });
  const s2 = await client.chat.completions.create({ model, messages, temperature: 1, seed: 3, max_tokens: 20 });
  check(s1.choices[0].message.content === s2.choices[0].message.content, "chat: same seed, same sample");

  // Errors come back as the client's typed errors.
  try {
    await client.chat.completions.create({ model, messages: [], max_tokens: 4 });
    check(false, "chat: empty messages is an error");
  } catch (e) {
    check(e instanceof OpenAI.BadRequestError && e.status === 400, "chat: empty messages gives BadRequestError 400", String(e));
  }
  try {
    const bad = new OpenAI({ baseURL, apiKey: "wrong-key", maxRetries: 0 });
    await bad.models.list();
    check(false, "a wrong key is an error");
  } catch (e) {
    check(e instanceof OpenAI.AuthenticationError && e.status === 401, "a wrong key gives AuthenticationError 401", String(e));
  }

  if (failed) process.exit(1);
  console.log("openai client: all checks passed");
}

main().catch((e) => {
  console.log("FAIL exception: " + (e && e.stack ? e.stack : String(e)));
  process.exit(1);
});
