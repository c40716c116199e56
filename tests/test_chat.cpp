// Chat templates: byte-exact output of each format, detection, errors.
#include "model/chat.h"
#include "ggml-lite/common.h"
#include "tests/test_util.h"

using namespace quill;

namespace {

const std::vector<ChatMessage> kConv = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
};

}  // namespace

TEST_CASE("chat: llama2 matches Meta's Llama-2-chat template") {
    CHECK(chat_format("llama2", kConv, true) ==
          "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST] Hi there </s>"
          "<s>[INST] Who are you [/INST]");
    // add_assistant_prompt adds nothing for llama2.
    CHECK(chat_format("llama2", kConv, false) == chat_format("llama2", kConv, true));
    // Without a system message; contents are stripped (the template's content.strip()).
    std::vector<ChatMessage> m = {{"user", "  hi \n"}, {"assistant", "\tyo  "}, {"user", "bye"}};
    CHECK(chat_format("llama2", m, true) == "<s>[INST] hi [/INST] yo </s><s>[INST] bye [/INST]");
    // The system block is part of the stripped content: its inner whitespace stays, the user's trailing one goes.
    std::vector<ChatMessage> s = {{"system", " sys "}, {"user", "q  "}};
    CHECK(chat_format("llama2", s, true) == "<s>[INST] <<SYS>>\n sys \n<</SYS>>\n\nq [/INST]");
    // Custom BOS text, and an empty one.
    CHECK(chat_format("llama2", m, true, "<BOS>") == "<BOS>[INST] hi [/INST] yo </s><BOS>[INST] bye [/INST]");
    CHECK(chat_format("llama2", {{"user", "x"}}, true, "") == "[INST] x [/INST]");
    // Unicode whitespace is stripped like Python's str.strip() (U+00A0, U+3000).
    CHECK(chat_format("llama2", {{"user", "\xc2\xa0x\xe3\x80\x80"}}, true) == "<s>[INST] x [/INST]");
    // Non-whitespace multi-byte characters at the end are kept whole.
    CHECK(chat_format("llama2", {{"user", "caf\xc3\xa9 "}}, true) == "<s>[INST] caf\xc3\xa9 [/INST]");
}

TEST_CASE("chat: chatml") {
    CHECK(chat_format("chatml", kConv, true) ==
          "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
          "<|im_start|>user\nHello<|im_end|>\n"
          "<|im_start|>assistant\nHi there<|im_end|>\n"
          "<|im_start|>user\nWho are you<|im_end|>\n"
          "<|im_start|>assistant\n");
    CHECK(chat_format("chatml", {{"user", " a "}}, false) == "<|im_start|>user\n a <|im_end|>\n");
}

TEST_CASE("chat: llama3") {
    CHECK(chat_format("llama3", kConv, true) ==
          "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
          "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(chat_format("llama3", {{"user", "\n hi \n"}}, false) ==
          "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
}

TEST_CASE("chat: plain") {
    CHECK(chat_format("plain", kConv, true) ==
          "system: You are a helpful assistant.\nuser: Hello\nassistant: Hi there\nuser: Who are you\nassistant:");
    CHECK(chat_format("plain", {{"user", "x"}}, false) == "user: x\n");
    CHECK(chat_format("plain", {}, true) == "assistant:");
}

TEST_CASE("chat: detection, resolution and errors") {
    CHECK(chat_template_detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}") == "chatml");
    CHECK(chat_template_detect("{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}") == "llama3");
    CHECK(chat_template_detect("{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}") == "llama2");
    CHECK(chat_template_detect("") == "plain");
    CHECK(chat_template_detect("{{ message['content'] }}") == "plain");

    Metadata meta;
    CHECK(chat_template_resolve("", meta) == "plain");
    meta.set_str("tokenizer.chat_template", "... <|im_start|> ...");
    CHECK(chat_template_resolve("", meta) == "chatml");
    CHECK(chat_template_resolve("llama3", meta) == "llama3");
    CHECK_THROWS_AS(chat_template_resolve("vicuna", meta), Error);

    try {
        chat_format("zephyr", kConv, true);
        FAIL("expected an error");
    } catch (const Error & e) {
        const std::string w = e.what();
        CHECK(w.find("zephyr") != std::string::npos);
        CHECK(w.find("llama2") != std::string::npos);
        CHECK(w.find("chatml") != std::string::npos);
        CHECK(w.find("llama3") != std::string::npos);
        CHECK(w.find("plain") != std::string::npos);
    }
    CHECK_THROWS_AS(chat_format("", kConv, true), Error);
    CHECK(chat_template_adds_bos("llama2"));
    CHECK(chat_template_adds_bos("llama3"));
    CHECK(!chat_template_adds_bos("chatml"));
    CHECK(!chat_template_adds_bos("plain"));
}
