// quill info: metadata and tensor table of any model file; --verify checks every checksum of a quill file.
#include "cli/commands/args.h"
#include "formats/model_file.h"
#include "ggml-lite/common.h"

#include <cstdio>
#include <map>

namespace quill {

int cmd_info(int argc, char ** argv) {
    Args args("info", "FILE [--verify] [--tokenizer TOK]",
              {
                  {{"--verify"}, "", "", "verify the checksum of every tensor (quill files; the header is always verified)"},
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin, for llama2.c checkpoints"},
                  {{"--all"}, "", "", "print whole arrays' first 64 items instead of 8"},
              });
    if (!args.parse(argc, argv)) return 0;
    if (args.positional().size() != 1) throw_error("info: give exactly one model file");
    LoadOptions lo;
    lo.tokenizer_path = args.str("--tokenizer");
    lo.verify = args.flag("--verify");
    ModelFile mf = load_model(args.positional()[0], lo);

    printf("file: %s\nformat: %s\n\nmetadata (%zu keys):\n", mf.path.c_str(), mf.format.c_str(), mf.meta.size());
    for (const auto & kv : mf.meta.items()) printf("  %-44s %s\n", kv.first.c_str(), kv.second.to_string(args.flag("--all") ? 64 : 8).c_str());

    printf("\ntensors (%zu):\n", mf.tensors.size());
    size_t total = 0;
    int64_t n_params = 0;
    std::map<std::string, size_t> by_type;
    for (const TensorData & t : mf.tensors) {
        std::string shape;
        for (int64_t d : t.ne) shape += strfmt("%s%lld", shape.empty() ? "" : " x ", (long long) d);
        printf("  %-32s %-5s [%s] %zu bytes\n", t.name.c_str(), gl_type_name(t.type), shape.c_str(), t.nbytes);
        total += t.nbytes;
        n_params += t.n_elements();
        by_type[gl_type_name(t.type)] += 1;
    }
    printf("\n%lld parameters, %.3f MiB of tensor data, %.2f bits per weight\n", (long long) n_params, total / 1048576.0,
           n_params ? 8.0 * (double) total / (double) n_params : 0.0);
    for (const auto & kv : by_type) printf("  %-5s %zu tensors\n", kv.first.c_str(), kv.second);
    if (lo.verify) {
        if (mf.format == "quill") printf("verify: header and all %zu tensor checksums OK\n", mf.tensors.size());
        else printf("verify: %s files carry no checksums; structure and bounds checked\n", mf.format.c_str());
    }
    return 0;
}

}  // namespace quill
