// `quill quantize`: a model in, a quantized .quill file out, one transformer block at a time.
//
// For each block: widen its weights to float; for methods that use calibration, record the Hessians of its linear
// inputs over the calibration activations (quantize/calibration.h); quantize its seven linear layers with the
// method; write them (QuillWriter streams tensors to their final offsets); dequantize them and run the
// activations through the quantized block for the next block. Tensors other than the block linears — the token
// embedding, the output, the norms — are written first, at the types the keep rules give.
//
// Methods are rows of one table (k_methods in quantize.cpp): a name, its defaults for --help, whether it needs
// calibration, how it picks a layer's stored type, and the function that quantizes one layer. Adding a method
// (gptvq) is one row plus its options.
#pragma once

#include "ggml-lite/types.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace quill {

struct QuantizeParams {
    std::string input, output, tokenizer;
    std::string method = "gptq";
    int         bits = 4;
    int         group = 128;
    bool        act_order = false;
    double      damp = 0.01;
    int64_t     block = 128;          // GPTQ lazy-update block
    // gptvq: vector dimension, weights per codebook (0: 64·k·dim, i.e. 0.125 bits of codebook per weight, the
    // paper's 2.125 / 3.125 / 4.125 bpv configurations), EM iterations and codebook fine-tune steps.
    int         vq_dim = 2;
    int64_t     vq_group = 0;
    int         em_iters = 100;
    int         update_iters = 25;
    // rtn/gptq --per-channel, and lrq: one grid per output row, stored in a per-row type (q4_row, q8_row, or with
    // act == "token" or "tensor" q4_row_a8 / q8_row_a8: int8 activations at inference, per token or on one static
    // grid per linear input calibrated here and stored beside the weight, formats/SPEC.md "input_scale").
    bool        per_channel = false;
    std::string act = "none";        // "none" (float activations), "token" or "tensor"
    // lrq (quantize/lrq.h): Adam steps per block, peak learning rate, rank (-1: min(rows, cols)/4; 0: a full
    // matrix, FlexRound), sequences per step
    int         lrq_iters = 300;
    float       lrq_lr = 2e-3f;
    int64_t     lrq_rank = -1;
    int         lrq_batch = 2;
    std::string calib_file;
    int64_t     calib_tokens = 16384;
    int64_t     seq_len = 512;        // clipped to the model's training context
    // Tensors kept at a stated type (rounded to nearest): name (or fnmatch pattern) -> type name, checked in order;
    // the first match wins. Defaults: see default_keep_rules().
    std::vector<std::pair<std::string, std::string>> keep;
    bool        progress = true;      // a line per layer on stderr
    int64_t     max_blocks = 0;       // > 0: quantize only the first N blocks, copy the others as they are (trial
                                      // runs on big models: time per block and memory, without the whole run)
};

// token_embd.weight=q8_0, output.weight=q8_0.
std::vector<std::pair<std::string, std::string>> default_keep_rules();
// Parses "NAME=TYPE[,NAME=TYPE...]"; throws quill::Error on a malformed rule or an unknown type.
std::vector<std::pair<std::string, std::string>> parse_keep_rules(const std::string & list);

struct QuantizedTensorInfo {
    std::string name;
    gl_type     type = GL_TYPE_F32;
    int64_t     n_elements = 0;
    size_t      nbytes = 0;
    bool        linear = false;  // one of the blocks' seven linear layers
    std::string origin;
    double      seconds = 0;
    double      loss = 0;        // the method's own objective, when it has one
};

struct QuantizeReport {
    std::vector<QuantizedTensorInfo> tensors;
    double  seconds = 0, calib_seconds = 0;
    int64_t calib_tokens = 0;
    uint64_t calib_xxh3 = 0;
    // Memory accounting: the most float weights the quantizer held at once, and the largest single block's float
    // weights. The design keeps the first equal to the second (one block at a time).
    size_t peak_weight_floats = 0, max_block_floats = 0;
    size_t peak_hessian_bytes = 0, activation_bytes = 0;
    double bpw_linear() const;  // bits per weight over the block linears (every byte of scales and codes)
    double bpw_file() const;    // over every tensor of the file
};

QuantizeReport quantize_model(const QuantizeParams & p);

// The --help text listing every method with its defaults.
std::string quantize_methods_help();

// The CLI entry point (cli/commands/quantize.cpp).
int cmd_quantize(int argc, char ** argv);

}  // namespace quill
