// Model-level helpers shared by the tests.
#pragma once

#include "formats/model_file.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

#include <cstdint>
#include <vector>

// Greedy decoding after "Once upon a time" as llama-simple does it: the prompt in one batch, then one token per
// decode. Returns the prompt's ids followed by the n greedy ids.
inline std::vector<int32_t> greedy_ids(const quill::ModelFile & mf, int n, gl_type kv_type = GL_TYPE_F16, int32_t n_ctx = 256) {
    using namespace quill;
    const Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    const LlamaModel model(mf);
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.kv_type = kv_type;
    Context ctx(model, cp);
    std::vector<int32_t> ids = tok.encode("Once upon a time", true);
    Batch b;
    for (size_t i = 0; i < ids.size(); ++i) b.add(ids[i], (int32_t) i, 0, i + 1 == ids.size());
    ctx.decode(b);
    SamplingParams sp;
    sp.temp = 0;
    Sampler s(sp, tok.n_vocab());
    for (int i = 0; i < n; ++i) {
        const int32_t id = s.sample(ctx.logits(ctx.n_logits() - 1));
        s.accept(id);
        ids.push_back(id);
        b.clear();
        b.add(id, (int32_t) ids.size() - 1, 0, true);
        ctx.decode(b);
    }
    return ids;
}
