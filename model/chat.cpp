// Chat templates. Contract in model/chat.h.
#include "model/chat.h"

#include "ggml-lite/common.h"

namespace quill {

namespace {

// Length of the UTF-8 encoded whitespace character at s[i] (Python's str.isspace() set), or 0.
size_t space_at(const std::string & s, size_t i) {
    const unsigned char c = (unsigned char) s[i];
    if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) return 1;
    auto byte = [&](size_t k) -> unsigned { return i + k < s.size() ? (unsigned char) s[i + k] : 0u; };
    if (c == 0xc2 && (byte(1) == 0x85 || byte(1) == 0xa0)) return 2;                  // U+0085, U+00A0
    if (c == 0xe1 && byte(1) == 0x9a && byte(2) == 0x80) return 3;                     // U+1680
    if (c == 0xe2 && byte(1) == 0x80) {
        const unsigned b = byte(2);
        if ((b >= 0x80 && b <= 0x8a) || b == 0xa8 || b == 0xa9 || b == 0xaf) return 3;  // U+2000-200A, 2028, 2029, 202F
    }
    if (c == 0xe2 && byte(1) == 0x81 && byte(2) == 0x9f) return 3;                     // U+205F
    if (c == 0xe3 && byte(1) == 0x80 && byte(2) == 0x80) return 3;                     // U+3000
    return 0;
}

// Python str.strip() on UTF-8 text.
std::string py_strip(const std::string & s) {
    size_t b = 0;
    while (b < s.size()) {
        const size_t n = space_at(s, b);
        if (n == 0) break;
        b += n;
    }
    // Trailing: scan forward, remembering where the last run of whitespace started.
    size_t e = b, i = b;
    while (i < s.size()) {
        const size_t n = space_at(s, i);
        if (n == 0) {
            // skip one UTF-8 code point
            size_t step = 1;
            while (i + step < s.size() && ((unsigned char) s[i + step] & 0xc0) == 0x80) ++step;
            i += step;
            e = i;
        } else {
            i += n;
        }
    }
    return s.substr(b, e - b);
}

bool contains(const std::string & s, const char * needle) { return s.find(needle) != std::string::npos; }

std::string format_llama2(const std::vector<ChatMessage> & msgs, const std::string & bos) {
    std::string out, pending_sys;
    bool have_sys = false;
    for (const ChatMessage & m : msgs) {
        if (m.role == "system") {
            // Several system messages before one user turn are joined into one <<SYS>> block.
            pending_sys += (have_sys ? "\n" : "") + m.content;
            have_sys = true;
            continue;
        }
        std::string content = m.content;
        if (have_sys) {
            content = "<<SYS>>\n" + pending_sys + "\n<</SYS>>\n\n" + content;
            pending_sys.clear();
            have_sys = false;
        }
        if (m.role == "assistant") {
            out += " " + py_strip(content) + " </s>";
        } else {
            out += bos + "[INST] " + py_strip(content) + " [/INST]";
        }
    }
    if (have_sys) out += bos + "[INST] " + py_strip("<<SYS>>\n" + pending_sys + "\n<</SYS>>\n\n") + " [/INST]";
    return out;
}

std::string format_chatml(const std::vector<ChatMessage> & msgs, bool add_ass) {
    std::string out;
    for (const ChatMessage & m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_ass) out += "<|im_start|>assistant\n";
    return out;
}

std::string format_llama3(const std::vector<ChatMessage> & msgs, bool add_ass) {
    std::string out;
    for (size_t i = 0; i < msgs.size(); ++i) {
        if (i == 0) out += "<|begin_of_text|>";
        out += "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n" + py_strip(msgs[i].content) + "<|eot_id|>";
    }
    if (add_ass) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
}

std::string format_plain(const std::vector<ChatMessage> & msgs, bool add_ass) {
    std::string out;
    for (const ChatMessage & m : msgs) out += m.role + ": " + m.content + "\n";
    if (add_ass) out += "assistant:";
    return out;
}

bool valid_name(const std::string & n) {
    for (const std::string & k : chat_template_list())
        if (k == n) return true;
    return false;
}

}  // namespace

const std::vector<std::string> & chat_template_list() {
    static const std::vector<std::string> names = {"llama2", "chatml", "llama3", "plain"};
    return names;
}

const char * chat_template_names() { return "llama2, chatml, llama3, plain"; }

std::string chat_template_detect(const std::string & t) {
    if (contains(t, "<|im_start|>")) return "chatml";
    if (contains(t, "<|start_header_id|>")) return "llama3";
    if (contains(t, "[INST]")) return "llama2";
    return "plain";
}

std::string chat_template_resolve(const std::string & name, const Metadata & meta) {
    if (name.empty()) return chat_template_detect(meta.get_str("tokenizer.chat_template", ""));
    if (!valid_name(name))
        throw_error("unknown chat template '%s' (valid: %s, or empty to detect it from the model)", name.c_str(),
                    chat_template_names());
    return name;
}

bool chat_template_adds_bos(const std::string & name) { return name == "llama2" || name == "llama3"; }

std::string chat_format(const std::string & name, const std::vector<ChatMessage> & msgs, bool add_assistant_prompt,
                        const std::string & bos_text) {
    if (name == "llama2") return format_llama2(msgs, bos_text);
    if (name == "chatml") return format_chatml(msgs, add_assistant_prompt);
    if (name == "llama3") return format_llama3(msgs, add_assistant_prompt);
    if (name == "plain") return format_plain(msgs, add_assistant_prompt);
    throw_error("unknown chat template '%s' (valid: %s)", name.c_str(), chat_template_names());
}

}  // namespace quill
