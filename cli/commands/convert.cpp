// quill convert: any readable model (llama2.c, GGUF, Hugging Face directory, quill) to a .quill file.
#include "cli/commands/args.h"
#include "formats/gguf_writer.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"
#include "model/llama.h"

#include <cstdio>
#include <cstring>
#include <vector>

namespace quill {

// The type a tensor gets when `target` is requested: 1-D tensors (norms, rope factors) stay f32; 2-D tensors
// whose rows are not a whole number of the target's blocks fall back to f16 (as llama.cpp does for stories260K's
// 172-wide ffn_down rows).
static gl_type convert_type_for(const TensorData & t, gl_type target) {
    if (t.ne.size() < 2) return GL_TYPE_F32;
    const gl_type_traits * tr = gl_get_type_traits(target);
    if (t.ne[0] % tr->block_size != 0) return GL_TYPE_F16;
    return target;
}

// The types --type takes: every registry type with a round-to-nearest quantizer ("f32, f16, ...").
static std::string convert_type_names() {
    std::string out;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (!gl_get_type_traits((gl_type) t)->from_float) continue;
        out += (out.empty() ? "" : ", ") + std::string(gl_type_name((gl_type) t));
    }
    return out;
}

int cmd_convert(int argc, char ** argv) {
    Args args("convert", "IN [--tokenizer TOK] -o OUT.quill|OUT.gguf [--type TYPE]",
              {
                  {{"-o", "--output"}, "OUT", "", "output .quill file, or .gguf (GGUF v3 that llama.cpp runs); written atomically"},
                  {{"--type"}, "TYPE", "", "weight type: " + convert_type_names() + " (default: keep the input's types)"},
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin (llama2.c checkpoints only; other formats carry their own)"},
              });
    if (!args.parse(argc, argv)) return 0;
    if (args.positional().size() != 1) throw_error("convert: give exactly one input model (see quill convert --help)");
    const std::string in = args.positional()[0];
    const std::string out = args.str("-o");
    if (out.empty()) throw_error("convert: missing -o OUT.quill");
    auto ends_with = [&](const char * ext) { size_t n = strlen(ext); return out.size() > n && out.compare(out.size() - n, n, ext) == 0; };
    const bool to_gguf = ends_with(".gguf");
    if (!to_gguf && !ends_with(".quill")) throw_error("convert: output must be a .quill or .gguf file, got '%s'", out.c_str());

    bool retype = args.has("--type");
    gl_type target = GL_TYPE_F32;
    if (retype && !gl_type_from_name(args.str("--type").c_str(), &target))
        throw_error("convert: unknown type '%s' (%s)", args.str("--type").c_str(), convert_type_names().c_str());
    if (retype && !gl_get_type_traits(target)->from_float)
        throw_error("convert: %s is a codebook type, built by `quill quantize --method gptvq`, not by rounding", gl_type_name(target));

    LoadOptions lo;
    lo.tokenizer_path = args.str("--tokenizer");
    ModelFile mf = load_model(in, lo);
    validate_runnable(mf);  // never write a file that `quill run` would then refuse

    if (retype) {
        // A static activation grid (formats/SPEC.md: "<weight>.input_scale") belongs to its weight's a8_row
        // activations: it goes when the weight is retyped to a type that takes other activations.
        std::vector<TensorData> kept;
        const std::string suffix = ".input_scale";
        for (const TensorData & t : mf.tensors) {
            if (t.name.size() > suffix.size() && t.name.compare(t.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
                const TensorData * w = mf.find(t.name.substr(0, t.name.size() - suffix.size()) + ".weight");
                if (w && gl_get_type_traits(convert_type_for(*w, target))->vec_dot_type != GL_TYPE_A8_ROW) continue;
            }
            kept.push_back(t);
        }
        mf.tensors.swap(kept);
    }

    Metadata meta = mf.meta;
    meta.set_str("general.source.format", mf.format);
    meta.set_str("general.source.file", in);
    if (retype) meta.set_str("quill.file_type", gl_type_name(target));

    std::vector<QuillTensorSpec> specs;
    for (const TensorData & t : mf.tensors) {
        gl_type ty = retype ? convert_type_for(t, target) : t.type;
        std::string origin = ty == t.type ? strfmt("%s from %s", gl_type_name(t.type), mf.format.c_str())
                                          : strfmt("%s rtn from %s (%s)", gl_type_name(ty), gl_type_name(t.type), mf.format.c_str());
        specs.push_back({t.name, ty, t.ne, origin});
    }
    // One tensor at a time, row by row: memory is bounded by the largest tensor (quill output streams to disk).
    std::vector<float> row;
    auto convert_tensor = [&](const TensorData & t, gl_type ty, std::vector<uint8_t> & buf) {
        const int64_t ne0 = t.ne[0], rows = t.n_rows();
        const size_t dst_row = gl_row_size(ty, ne0);
        row.resize((size_t) ne0);
        buf.resize(dst_row * (size_t) rows);
        const gl_tensor src = gl_tensor_make(t.type, ne0, rows, t.data);
        for (int64_t r = 0; r < rows; ++r) {
            gl_get_row(src, r, row.data());
            gl_get_type_traits(ty)->from_float(row.data(), buf.data() + (size_t) r * dst_row, ne0);
        }
    };
    size_t total = 0;
    if (to_gguf) {
        ModelFile o;
        o.meta = meta;
        o.owners = mf.owners;
        for (size_t i = 0; i < mf.tensors.size(); ++i) {
            const TensorData & t = mf.tensors[i];
            if (specs[i].type == t.type) {
                o.tensors.push_back(t);
            } else {
                std::vector<uint8_t> buf;
                convert_tensor(t, specs[i].type, buf);
                o.add_owned(t.name, specs[i].type, t.ne, buf.data(), buf.size());
            }
            total += o.tensors.back().nbytes;
        }
        save_gguf(out, o);
    } else {
        QuillWriter w(out, meta, specs);
        std::vector<uint8_t> buf;
        for (size_t i = 0; i < mf.tensors.size(); ++i) {
            const TensorData & t = mf.tensors[i];
            if (specs[i].type == t.type) {
                w.write_tensor(i, t.data, t.nbytes);
            } else {
                convert_tensor(t, specs[i].type, buf);
                w.write_tensor(i, buf.data(), buf.size());
            }
            total += w.tensor_nbytes(i);
        }
        w.finish();
    }
    fprintf(stderr, "convert: wrote %s: %zu tensors, %.2f MiB, from %s (%s)\n", out.c_str(), mf.tensors.size(), total / 1048576.0,
            in.c_str(), mf.format.c_str());
    return 0;
}

}  // namespace quill
