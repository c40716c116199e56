// The --kv-type option shared by run, serve, perplexity and bench: its choices and help text come from the KV-type
// registry (ggml-lite/kv.h), so a new KV type appears in every command without touching them.
#pragma once

#include "cli/commands/args.h"
#include "ggml-lite/common.h"
#include "ggml-lite/kv.h"

#include <string>
#include <vector>

namespace quill {

inline std::vector<std::string> kv_type_choices() {
    std::vector<std::string> names;
    for (int i = 0; i < gl_kv_type_count(); ++i) names.push_back(gl_kv_type_at(i)->name);
    return names;
}

// An option spec for a KV cache type (default f16, as in llama.cpp); `what` starts its help text.
inline OptSpec kv_type_option(const std::string & name = "--kv-type", const std::string & what = "KV cache type") {
    return {{name}, "TYPE", "f16", what + ": " + gl_kv_type_names(", ") + " (quantized types need a head size that is a multiple of 32)",
            one_of(kv_type_choices())};
}

// The parsed value of such an option.
inline gl_type kv_type_arg(const Args & args, const std::string & name = "--kv-type") {
    gl_type t;
    const std::string s = args.str(name);
    if (!gl_kv_type_from_name(s.c_str(), &t)) throw_error("unknown KV cache type '%s' (one of %s)", s.c_str(), gl_kv_type_names(", ").c_str());
    return t;
}

}  // namespace quill
