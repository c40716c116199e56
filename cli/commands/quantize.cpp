// quill quantize: a model to a quantized .quill file with RTN, GPTQ or GPTVQ (quantize/quantize.h).
#include "quantize/quantize.h"

#include "cli/commands/args.h"
#include "ggml-lite/common.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace quill {

int cmd_quantize(int argc, char ** argv) {
    std::string keep_default;
    for (const auto & r : default_keep_rules()) keep_default += (keep_default.empty() ? "" : ",") + r.first + "=" + r.second;
    Args args("quantize",
              "-m IN -o OUT.quill --method rtn|gptq|gptvq|lrq [--bits 2|3|4|8] [--group G | --per-channel [--act token|tensor|none]] [--vq-dim 1|2|4] "
              "[--act-order] --calib FILE --calib-tokens N",
              {
                  {{"-m", "--model"}, "IN", "", "input model (.quill, .gguf, llama2.c .bin with --tokenizer, Hugging Face directory)"},
                  {{"-o", "--output"}, "OUT", "", "output .quill file, written atomically"},
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin (llama2.c checkpoints only)"},
                  {{"--method"}, "NAME", "gptq", "quantization method (see below)"},
                  {{"--bits"}, "B", "4", "bits per weight code: 2, 3 or 4 (per-channel types and lrq: 3, 4 or 8)", int_in(2, 8)},
                  {{"--group"}, "G", "", "rtn/gptq: weights per scale/zero group along a row: 32, 64 or 128 (default 128); gptvq: weights per codebook (default 64*2^(bits*dim)*dim)", int_in(1, 1 << 30)},
                  {{"--per-channel"}, "", "", "rtn/gptq: one grid per output row, stored as q4_row / q8_row (lrq always is)"},
                  {{"--act"}, "A", "none", "per-channel types: 'token' quantizes activations to int8 per token at inference (q4_row_a8, q8_row_a8: W4A8, W8A8); 'tensor' on one static int8 grid per linear input, calibrated on --calib and stored in the file (W8A8 per tensor); 'none' keeps them float"},
                  {{"--lrq-iters"}, "N", "300", "lrq: Adam steps per block", int_in(0, 1000000)},
                  {{"--lrq-lr"}, "F", "0.002", "lrq: peak learning rate (cosine schedule to 0)", real_in(1e-9, 1)},
                  {{"--lrq-rank"}, "R", "auto", "lrq: rank of the scaling matrix (auto: min(rows, cols)/4; 'full': FlexRound's full matrix)"},
                  {{"--lrq-batch"}, "N", "2", "lrq: calibration sequences per step", int_in(1, 4096)},
                  {{"--vq-dim"}, "D", "2", "gptvq: weights per vector (1, 2 or 4); --bits is then bits per dimension", int_in(1, 4)},
                  {{"--em-iters"}, "N", "100", "gptvq: Hessian-weighted EM iterations per codebook", int_in(0, 100000)},
                  {{"--update-iters"}, "N", "25", "gptvq: Adam steps of the codebook fine-tune (0: off)", int_in(0, 100000)},
                  {{"--act-order"}, "", "", "gptq: quantize columns in order of decreasing Hessian diagonal (static groups)"},
                  {{"--damp"}, "F", "0.01", "gptq: damping, a fraction of the Hessian's mean diagonal", real_in(0, 1e6)},
                  {{"--block-size"}, "N", "128", "gptq: columns per lazy update block", int_in(1, 1 << 20)},
                  {{"--calib"}, "FILE", "", "calibration text (gptq, gptvq, lrq)"},
                  {{"--calib-tokens"}, "N", "16384", "calibration tokens (whole sequences of --seq-len)", int_in(1, 1LL << 32)},
                  {{"--seq-len"}, "N", "512", "tokens per calibration sequence (at most the model's context)", int_in(2, 1 << 20)},
                  {{"--keep"}, "LIST", keep_default,
                   "NAME=TYPE[,...]: tensors (fnmatch patterns) kept at a type, rounded to nearest; 'none' for no rule"},
                  {{"--max-blocks"}, "N", "0", "quantize only the first N blocks and copy the rest unchanged (trial runs; 0: all)", int_in(0, 1 << 20)},
                  {{"-t", "--threads"}, "N", "0", "threads (0: physical cores)", int_in(0, kMaxThreads)},
                  {{"-q", "--quiet"}, "", "", "no progress lines"},
              });
    if (!args.parse(argc, argv)) {
        printf("\n%s", quantize_methods_help().c_str());
        return 0;
    }
    if (!args.positional().empty()) throw_error("quantize: unexpected argument '%s' (see quill quantize --help)", args.positional()[0].c_str());
    set_threads(args.num("-t"));
    QuantizeParams p;
    p.input = args.str("-m");
    p.output = args.str("-o");
    if (p.input.empty()) throw_error("quantize: missing -m IN");
    if (p.output.empty()) throw_error("quantize: missing -o OUT.quill");
    if (p.output.size() < 7 || p.output.compare(p.output.size() - 6, 6, ".quill") != 0)
        throw_error("quantize: the output must be a .quill file, got '%s'", p.output.c_str());
    p.tokenizer = args.str("--tokenizer");
    p.method = args.str("--method");
    p.bits = (int) args.num("--bits");
    if (p.method == "gptvq") {
        p.vq_dim = (int) args.num("--vq-dim");
        p.vq_group = args.str("--group").empty() ? 0 : args.num("--group");
        p.em_iters = (int) args.num("--em-iters");
        p.update_iters = (int) args.num("--update-iters");
        if (!args.has("--bits")) p.bits = 3;
    } else {
        p.group = args.str("--group").empty() ? 128 : (int) args.num("--group");
    }
    p.per_channel = args.flag("--per-channel") || p.method == "lrq";
    p.act = args.str("--act");
    p.lrq_iters = (int) args.num("--lrq-iters");
    p.lrq_lr = (float) args.real("--lrq-lr");
    p.lrq_batch = (int) args.num("--lrq-batch");
    {
        const std::string rk = args.str("--lrq-rank");
        if (rk == "auto") p.lrq_rank = -1;
        else if (rk == "full") p.lrq_rank = 0;
        else {
            char * end = nullptr;
            const long long v = strtoll(rk.c_str(), &end, 10);
            if (rk.empty() || *end || v < 1 || v > (1LL << 30)) throw_error("quantize: --lrq-rank must be auto, full or a rank >= 1 (got '%s')", rk.c_str());
            p.lrq_rank = v;
        }
    }
    p.act_order = args.flag("--act-order");
    p.damp = args.real("--damp");
    p.block = args.num("--block-size");
    p.calib_file = args.str("--calib");
    p.calib_tokens = args.num("--calib-tokens");
    p.seq_len = args.num("--seq-len");
    p.keep = parse_keep_rules(args.str("--keep"));
    p.progress = !args.flag("-q");
    p.max_blocks = args.num("--max-blocks");
    if (p.max_blocks < 0) throw_error("quantize: --max-blocks must be >= 0");

    const QuantizeReport r = quantize_model(p);
    size_t bytes = 0;
    for (const QuantizedTensorInfo & t : r.tensors) bytes += t.nbytes;
    fprintf(stderr, "quantize: wrote %s: %zu tensors, %.3f MiB; %.4f bits per weight over the block linears, %.4f over the file; %.2f s (calibration %.2f s)\n",
            p.output.c_str(), r.tensors.size(), bytes / 1048576.0, r.bpw_linear(), r.bpw_file(), r.seconds, r.calib_seconds);
    if (r.calib_tokens > 0)
        fprintf(stderr, "quantize: memory: %.2f MiB of float weights at most (largest block %.2f MiB), Hessians %.2f MiB, activations %.2f MiB\n",
                r.peak_weight_floats * 4 / 1048576.0, r.max_block_floats * 4 / 1048576.0, r.peak_hessian_bytes / 1048576.0,
                r.activation_bytes / 1048576.0);
    return 0;
}

}  // namespace quill
