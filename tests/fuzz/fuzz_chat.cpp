// Fuzz target: the chat-template renderer (model/chat.cpp) and what it feeds (the stories260K tokenizer).
//
// Input: parts separated by the byte 0x1E (tests/fuzz/README.md):
//   part 0   a template: one of the names (llama2, chatml, llama3, plain) or a Jinja template's text;
//   part 1   the BOS text;
//   part 2+  one message each: "role" 0x1F "content" (no 0x1F: a user message with that content).
// Contracts checked (model/chat.h): detection and resolution give a valid name, an unknown name throws
// quill::Error, chat_format never throws for a valid name (whatever the roles and order), chatml keeps contents
// verbatim, and the rendered prompt tokenizes and decodes.
#include "formats/metadata.h"
#include "ggml-lite/common.h"
#include "model/chat.h"
#include "tests/fuzz/fuzz_util.h"

using namespace quill;

namespace {

const char * const k_names[] = {"llama2", "chatml", "llama3", "plain"};

bool valid_name(const std::string & n) {
    for (const char * k : k_names)
        if (n == k) return true;
    return false;
}

std::vector<std::string> split(const std::string & s, char sep, size_t max_parts) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (out.size() + 1 < max_parts) {
        size_t q = s.find(sep, pos);
        if (q == std::string::npos) break;
        out.push_back(s.substr(pos, q - pos));
        pos = q + 1;
    }
    out.push_back(s.substr(pos));
    return out;
}

}  // namespace

int quill_fuzz_chat(const uint8_t * data, size_t size) {
    const std::vector<std::string> parts = split(std::string((const char *) data, size), '\x1e', 66);
    const std::string & tmpl = parts[0];
    const std::string bos = parts.size() > 1 ? parts[1] : "<s>";
    std::vector<ChatMessage> msgs;
    for (size_t i = 2; i < parts.size(); ++i) {
        const size_t us = parts[i].find('\x1f');
        if (us == std::string::npos) msgs.push_back({"user", parts[i]});
        else msgs.push_back({parts[i].substr(0, us), parts[i].substr(us + 1)});
    }

    const std::string detected = chat_template_detect(tmpl);
    FUZZ_CHECK(valid_name(detected), "chat_template_detect gave '" + detected + "'");
    Metadata meta;
    if (size % 3 != 0) meta.set_str("tokenizer.chat_template", tmpl);  // sometimes: a model without a template
    const std::string resolved = chat_template_resolve("", meta);
    FUZZ_CHECK(valid_name(resolved), "chat_template_resolve(\"\") gave '" + resolved + "'");
    try {
        const std::string named = chat_template_resolve(tmpl, meta);
        FUZZ_CHECK(named == (tmpl.empty() ? resolved : tmpl) && valid_name(named),
                   "chat_template_resolve('" + tmpl + "') gave '" + named + "'");
    } catch (const Error &) {
        FUZZ_CHECK(!valid_name(tmpl), "chat_template_resolve threw for the valid name '" + tmpl + "'");
    }
    try {
        (void) chat_format(tmpl, msgs, true, bos);
        FUZZ_CHECK(valid_name(tmpl), "chat_format accepted the unknown name '" + tmpl + "'");
    } catch (const Error &) {
        FUZZ_CHECK(!valid_name(tmpl), "chat_format threw for the valid name '" + tmpl + "'");
    }

    const quill::Tokenizer & tok = quill_fuzz::stories_tokenizer();
    for (const char * name : k_names) {
        for (bool add_assistant : {false, true}) {
            const std::string out = chat_format(name, msgs, add_assistant, bos);  // documented not to throw
            if (std::string(name) == "chatml") {
                for (const ChatMessage & m : msgs)
                    FUZZ_CHECK(out.find(m.content) != std::string::npos, "chatml output lost a message's content");
            }
            if (name == resolved && add_assistant) {
                const std::vector<int32_t> ids = tok.encode(out, !chat_template_adds_bos(name), true);
                for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tok.n_vocab(), strfmt("encode gave id %d", id));
                (void) tok.decode(ids, true);
            }
        }
    }
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_chat, true)
