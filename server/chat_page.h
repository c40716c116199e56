// The chat page served at GET /: one self-contained HTML document (no external resources), built into the binary.
//
// It talks to /v1/chat/completions with stream: true, shows the reply as it streams, keeps the conversation,
// and has a Stop button (it aborts the request; the server frees the slot). Settings: system prompt, temperature,
// max tokens, API key (kept in the browser's localStorage). URL parameters preset them and can send a first
// message: ?q=TEXT&system=TEXT&temperature=T&max_tokens=N&seed=S. While a reply streams, <body data-state> is
// "streaming"; then "done", "stopped" or "error".
#pragma once

namespace quill {

const char * chat_page_html();

}  // namespace quill
