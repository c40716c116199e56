// Chat prompt formatting for the common chat templates, without a Jinja engine (a Jinja subset comes later).
//
// Each format reproduces, byte for byte, what the model's own Hugging Face chat template renders for a
// well-formed conversation (an optional leading system message, then user/assistant turns):
//
//   "llama2"  Meta's Llama-2-chat template (tokenizer_config.json of meta-llama/Llama-2-*-chat-hf):
//               <s>[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST] {assistant} </s><s>[INST] {user} [/INST]
//             i.e. every user turn is bos_text + "[INST] " + strip(content) + " [/INST]", every assistant turn
//             " " + strip(content) + " </s>", and a leading system message is wrapped in <<SYS>> and put in
//             front of the first user message (strip() is applied to that whole combination, as in the template).
//             add_assistant_prompt adds nothing (the template has no generation prompt: the model continues after
//             " [/INST]"). Note: llama.cpp's built-in llama2 formatter differs (no spaces around the assistant
//             text, no strip, no leading BOS text); we follow the real template.
//             Outside the template's domain (which raises an error there) we do not throw: a system message that
//             is not first is wrapped in <<SYS>> and put in front of the next user message, and any role other
//             than system/assistant is treated as user.
//   "chatml"  <|im_start|>{role}\n{content}<|im_end|>\n ... and, with add_assistant_prompt,
//             <|im_start|>assistant\n. Content is not stripped. No BOS text.
//   "llama3"  Meta-Llama-3-Instruct's template:
//             <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{trim(content)}<|eot_id|>...
//             and, with add_assistant_prompt, <|start_header_id|>assistant<|end_header_id|>\n\n.
//             (bos_text is not used: this template's BOS is always <|begin_of_text|>.)
//   "plain"   For models without a chat template (e.g. base models): one line per message, "{role}: {content}\n",
//             then "assistant:" (no trailing space) when add_assistant_prompt is set. No BOS text.
//
// strip()/trim() remove leading and trailing whitespace as Python's str.strip() does (ASCII and Unicode spaces).
//
// Tokenizing the result: "llama2" and "llama3" put the BOS text into the prompt themselves
// (chat_template_adds_bos() is true), so tokenize them with parse-special on and without adding another BOS;
// "chatml" and "plain" leave BOS to the tokenizer's usual add_bos rule.
#pragma once

#include "formats/metadata.h"

#include <string>
#include <vector>

namespace quill {

struct ChatMessage {
    std::string role;     // "system", "user", "assistant" (others are passed through where the format allows)
    std::string content;
};

// Recognises a Jinja chat template by its markers:
//   contains "<|im_start|>" -> "chatml"; "<|start_header_id|>" -> "llama3"; "[INST]" -> "llama2";
//   anything else (including "" = the model has no template) -> "plain".
std::string chat_template_detect(const std::string & jinja_template);

// Resolves a user-chosen name: "" auto-detects from the model's tokenizer.chat_template (missing = "plain");
// otherwise the name must be one of the valid names. Throws quill::Error listing the valid names.
std::string chat_template_resolve(const std::string & name, const Metadata & meta);

// Formats a conversation. Throws quill::Error for an unknown name, listing the valid names.
std::string chat_format(const std::string & name, const std::vector<ChatMessage> & msgs, bool add_assistant_prompt,
                        const std::string & bos_text = "<s>");

// True when chat_format(name, ...) writes the BOS text itself ("llama2", "llama3").
bool chat_template_adds_bos(const std::string & name);

// "llama2, chatml, llama3, plain"
const char * chat_template_names();
// The same names, one per entry (the CLI checks --chat-template against them before loading a model).
const std::vector<std::string> & chat_template_list();

}  // namespace quill
