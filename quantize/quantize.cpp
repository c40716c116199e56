#include "quantize/quantize.h"

#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"
#include "model/block_forward.h"
#include "model/llama.h"
#include "model/tokenizer.h"
#include "quantize/calibration.h"
#include "quantize/gptq.h"
#include "quantize/gptvq.h"
#include "quantize/lrq.h"
#include "quantize/rtn.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fnmatch.h>
#include <map>
#include <sstream>

namespace quill {

using Clock = std::chrono::steady_clock;
static double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- methods ------------------------------------------------------------------------------------------------------

// One linear layer to quantize: W (rows × cols floats, overwritten with the quantized values), the Hessian of its
// input (cols × cols, null for methods without calibration), and the stored type and group the method chose.
struct LayerJob {
    const std::string * name;
    float *   W;
    int64_t   rows, cols;
    const float * H;
    gl_type   type;
    int       group;
    const QuantizeParams * p;
    const IntQuantLayer * fitted;  // block methods (lrq): the layer the block fit produced
};

struct LayerResult {
    std::vector<uint8_t> data;  // the tensor's bytes in job.type
    double      loss = 0;
    std::string note;           // for the progress line
};

struct QuantMethod {
    const char * name;
    const char * help;          // one line: what it does and its defaults
    bool needs_calibration;
    // The stored type of a linear layer with `cols` columns, and the group its quantizer must use.
    gl_type (*layer_type)(const QuantizeParams & p, int64_t cols, int * group);
    void (*quantize)(const LayerJob & job, LayerResult & out);
    // quill.file_type of the output and a short description for origins ("gptq int4 g128").
    std::string (*describe)(const QuantizeParams & p);
    // Block methods: fit the block's seven linears together before they are written (lrq); null for layer methods.
    bool block_fit = false;
};

// rtn/gptq with --per-channel, and lrq (always): one grid per row, in a per-row type.
static bool per_row(const QuantizeParams & p) { return p.per_channel || p.method == "lrq"; }
// --act tensor: a static int8 grid per linear input, calibrated on the calibration text whatever the method.
static bool static_act(const QuantizeParams & p) { return p.act == "tensor"; }
static const char * act_note(const QuantizeParams & p) { return p.act == "token" ? " a8" : p.act == "tensor" ? " a8 static" : ""; }

static gl_type int_layer_type(const QuantizeParams & p, int64_t cols, int * group) {
    if (per_row(p)) {
        *group = (int) cols;
        return row_layer_type(p.bits, p.act != "none", cols);
    }
    return intq_layer_type(p.bits, p.group, cols, group);
}

static std::string int_describe(const QuantizeParams & p) {
    if (per_row(p))
        return strfmt("%s int%d per-channel%s%s", p.method.c_str(), p.bits, act_note(p),
                      p.act_order && p.method == "gptq" ? " act-order" : "");
    return strfmt("%s int%d g%d%s", p.method.c_str(), p.bits, p.group, p.act_order && p.method == "gptq" ? " act-order" : "");
}

static std::string lrq_describe(const QuantizeParams & p) {
    return strfmt("%s int%d per-channel%s", p.lrq_rank == 0 ? "flexround" : "lrq", p.bits, act_note(p));
}

// lrq: the layer was fitted with its block (quantize_blocks); store it.
static void lrq_layer(const LayerJob & j, LayerResult & out) {
    GL_ASSERT(j.fitted && j.fitted->rows == j.rows && j.fitted->cols == j.cols);
    out.data = pack_layer(*j.fitted, j.type);
}

static void rtn_layer(const LayerJob & j, LayerResult & out) {
    IntQuantLayer q;
    rtn_quantize(j.W, j.rows, j.cols, j.p->bits, j.group, &q);
    out.data = pack_layer(q, j.type);
}

static void gptq_layer(const LayerJob & j, LayerResult & out) {
    GptqParams gp;
    gp.bits = j.p->bits;
    gp.group = j.group;
    gp.act_order = j.p->act_order;
    gp.block = j.p->block;
    gp.damp = j.p->damp;
    IntQuantLayer q;
    GptqStats st;
    gptq_quantize(j.W, j.rows, j.cols, j.H, gp, &q, &st);
    out.data = pack_layer(q, j.type);
    out.loss = st.loss;
    out.note = strfmt("loss %.4g", st.loss);
    if (st.dead) out.note += strfmt(", %lld dead", (long long) st.dead);
    if (st.retries) out.note += strfmt(", damp x%g", std::pow(10.0, st.retries));
}

static void round_trip_rows(float * x, int64_t rows, int64_t cols, gl_type type, std::vector<uint8_t> * packed);

// gptvq: the codebook type of (dim, bits, group); layers whose rows are not a multiple of dim stay f16.
static int64_t vq_group_of(const QuantizeParams & p) {
    return p.vq_group > 0 ? p.vq_group : (int64_t) 64 * ((int64_t) 1 << (p.bits * p.vq_dim)) * p.vq_dim;
}

static gl_type vq_layer_type(const QuantizeParams & p, int64_t cols, int * group) {
    *group = 0;
    if (cols % p.vq_dim != 0) return GL_TYPE_F16;
    return gl_vq_type(p.vq_dim, p.bits, vq_group_of(p));
}

static std::string vq_describe(const QuantizeParams & p) {
    return strfmt("gptvq %dD %d-bit g%lld", p.vq_dim, p.bits, (long long) vq_group_of(p));
}

static void gptvq_layer(const LayerJob & j, LayerResult & out) {
    gl_vq_geom g;
    if (!gl_vq_geometry(j.type, j.cols, j.rows, &g)) {  // f16 fallback: quantize as 2D would, store the values
        GL_ASSERT(!gl_get_type_traits(j.type)->vq);
        out.note = "rows not a multiple of the vector dimension: kept at " + std::string(gl_type_name(j.type));
        round_trip_rows(j.W, j.rows, j.cols, j.type, &out.data);
        return;
    }
    GptvqParams gp;
    gp.dim = g.dim;
    gp.bits = g.bits;
    gp.rows_per_group = g.R;
    gp.cols_per_group = g.C;
    gp.em_iters = j.p->em_iters;
    gp.update_iters = j.p->update_iters;
    gp.damp = j.p->damp;
    gp.block = j.p->block;
    VqLayer q;
    GptvqStats st;
    gptvq_quantize(j.W, j.rows, j.cols, j.H, gp, &q, &st);
    GL_ASSERT(q.n_groups() == g.n_groups && (int64_t) q.idx.size() == j.rows * (j.cols / g.dim));
    out.data.resize(g.total_bytes);
    gl_vq_pack(g, q.idx.data(), q.codebooks.data(), q.scales.data(), out.data.data());
    out.loss = st.update_loss1;
    out.note = strfmt("%lldx%lld groups, loss %.4g, codebook update %.4g -> %.4g", (long long) g.R, (long long) g.C, st.loss, st.update_loss0,
                      st.update_loss1);
}

static const QuantMethod k_methods[] = {
    {"rtn", "round to nearest on GPTQ's per-group min/max grid; no calibration (defaults: --bits 4 --group 128)", false, int_layer_type,
     rtn_layer, int_describe},
    {"gptq",
     "GPTQ: Hessian-compensated rounding, one block at a time over calibration text (defaults: --bits 4 --group 128 --damp 0.01 "
     "--block-size 128, act-order off, --calib-tokens 16384 --seq-len 512)",
     true, int_layer_type, gptq_layer, int_describe},
    {"gptvq",
     "GPTVQ: vector quantization with Hessian-weighted EM codebooks, GPTQ error feedback and a codebook fine-tune (defaults: "
     "--vq-dim 2 --bits 3 (per dimension) --group 64*2^(bits*dim)*dim weights per codebook = 0.125 bits of codebook per weight, "
     "--em-iters 100 --update-iters 25 --damp 0.01 --block-size 128, --calib-tokens 16384 --seq-len 512)",
     true, vq_layer_type, gptvq_layer, vq_describe},
    {"lrq",
     "LRQ: learned rounding through a low-rank scaling matrix, fitted per block by reconstructing the float block's output "
     "(Adam, cosine schedule); per-channel int4/int8, --act token for int8 per-token activations (defaults: --bits 4 "
     "--lrq-iters 300 --lrq-lr 0.002 --lrq-rank min(rows,cols)/4 ('full': FlexRound) --lrq-batch 2, --calib-tokens 16384 "
     "--seq-len 512)",
     true, int_layer_type, lrq_layer, lrq_describe, true},
};

static const QuantMethod * find_method(const std::string & name) {
    for (const QuantMethod & m : k_methods) {
        if (name == m.name) return &m;
    }
    return nullptr;
}

std::string quantize_methods_help() {
    std::string s = "methods:\n";
    for (const QuantMethod & m : k_methods) s += strfmt("  %-8s %s\n", m.name, m.help);
    s += "\ntypes: q<b>_g<g> (b = 2, 3, 4 bits; g = 32, 64, 128): fp16 scale + integer zero per group of g weights (formats/SPEC.md).\n"
         "gptvq types: vq<d>_b<b>_g<l>: indices of d weights into int8 codebooks of 2^(b*d) entries, one per group of ~l weights:\n"
         "  vq1_b2_g256 vq1_b2_g128 vq1_b3_g512 vq1_b4_g1024 vq2_b2_g2048 vq2_b2_g1024 vq2_b3_g8192 vq2_b4_g32768\n"
         "  vq4_b2_g65536 vq4_b2_g32768 (--vq-dim d --bits b --group l).\n"
         "A layer whose rows are not a multiple of the group takes the largest group that divides them (64-wide rows: g64);\n"
         "rows that are not a multiple of 32 (stories260K's 172-wide ffn_down) are quantized with the method and stored as f16.\n";
    return s;
}

// ---- keep rules ----------------------------------------------------------------------------------------------------

std::vector<std::pair<std::string, std::string>> default_keep_rules() {
    return {{k_tensor_token_embd, "q8_0"}, {k_tensor_output, "q8_0"}};
}

std::vector<std::pair<std::string, std::string>> parse_keep_rules(const std::string & list) {
    std::vector<std::pair<std::string, std::string>> rules;
    std::stringstream ss(list);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (item.empty() || item == "none") continue;
        const size_t eq = item.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
            throw_error("quantize: --keep expects NAME=TYPE[,NAME=TYPE...], got '%s'", item.c_str());
        gl_type t;
        const std::string type = item.substr(eq + 1);
        if (!gl_type_from_name(type.c_str(), &t)) throw_error("quantize: --keep %s: unknown type '%s'", item.c_str(), type.c_str());
        if (!gl_get_type_traits(t)->from_float) throw_error("quantize: --keep %s: %s cannot be made by rounding", item.c_str(), type.c_str());
        rules.emplace_back(item.substr(0, eq), type);
    }
    return rules;
}

// ---- the plan: every tensor's stored type -------------------------------------------------------------------------

// The linear layers of a block of architecture a, in the architecture's order, with the input each reads.
struct LinearSlot {
    LayerTensor role;
    LinearInput input;
};
static std::vector<LinearSlot> block_linears(const Arch & a) {
    std::vector<LinearSlot> out;
    for (const ArchLayerTensor & t : a.layer) {
        LinearInput in;
        if (layer_tensor_linear(t.role, &in)) out.push_back({t.role, in});
    }
    return out;
}

struct TensorPlan {
    gl_type type = GL_TYPE_F32;
    bool    linear = false;  // a block linear: quantized in its block's turn
    bool    kept = false;    // a keep rule chose the type: round to nearest
    int     group = 0;       // for the method
    std::string origin;
};

// ---- the driver ------------------------------------------------------------------------------------------------------

double QuantizeReport::bpw_linear() const {
    double bytes = 0, n = 0;
    for (const QuantizedTensorInfo & t : tensors) {
        if (!t.linear) continue;
        bytes += (double) t.nbytes;
        n += (double) t.n_elements;
    }
    return n > 0 ? 8.0 * bytes / n : 0.0;
}

double QuantizeReport::bpw_file() const {
    double bytes = 0, n = 0;
    for (const QuantizedTensorInfo & t : tensors) {
        bytes += (double) t.nbytes;
        n += (double) t.n_elements;
    }
    return n > 0 ? 8.0 * bytes / n : 0.0;
}

static std::string hms(double s) {
    const long long t = (long long) (s + 0.5);
    return strfmt("%lld:%02lld:%02lld", t / 3600, (t / 60) % 60, t % 60);
}

static std::string basename_of(const std::string & path) {
    const size_t s = path.rfind('/');
    return s == std::string::npos ? path : path.substr(s + 1);
}

// Float rows of a tensor through `type` and back: what a reader of the output sees.
static void round_trip_rows(float * x, int64_t rows, int64_t cols, gl_type type, std::vector<uint8_t> * packed) {
    const gl_type_traits * tr = gl_get_type_traits(type);
    const size_t rb = gl_row_size(type, cols);
    packed->resize(rb * (size_t) rows);
    for (int64_t r = 0; r < rows; ++r) {
        tr->from_float(x + r * cols, packed->data() + (size_t) r * rb, cols);
        tr->to_float(packed->data() + (size_t) r * rb, x + r * cols, cols);
    }
}

namespace {

// One quantize_model call: the input, the plan of every tensor, the calibration activations and the report.
struct QuantizeRun {
    const QuantizeParams & p;
    const QuantMethod *    method = nullptr;
    bool                   vq = false;
    ModelFile              mf;
    std::unique_ptr<LlamaModel> model;
    std::map<std::string, size_t> index;       // tensor name -> position in mf.tensors
    std::vector<TensorPlan>       plan;         // per tensor
    std::vector<QuillTensorSpec>  specs;        // per tensor, for the writer
    std::vector<LinearSlot>       linears;      // of one block
    int64_t                       n_blocks = 0;
    Metadata                      meta;         // the output's
    CalibData                     cd;
    std::vector<float>            X;            // calibration activations: n_seq · seq_len rows of n_embd
    std::vector<float>            Xf;           // block methods: the float model's activations (the fit's targets)
    std::map<std::string, size_t> scale_spec;   // --act tensor: linear weight name -> its input_scale's spec index
    QuantizeReport                rep;
    Clock::time_point             t_start = Clock::now();
    explicit QuantizeRun(const QuantizeParams & params) : p(params) {}
};

// The method and every parameter checked before anything is read.
void check_params(QuantizeRun & r) {
    const QuantizeParams & p = r.p;
    const QuantMethod * method = r.method = find_method(p.method);
    if (!method) {
        std::string names;
        for (const QuantMethod & m : k_methods) names += strfmt("%s%s", names.empty() ? "" : ", ", m.name);
        throw_error("quantize: unknown method '%s' (%s)", p.method.c_str(), names.c_str());
    }
    const bool vq = r.vq = std::string(method->name) == "gptvq";
    const bool row = per_row(p);
    if (p.per_channel && vq) throw_error("quantize: --per-channel is for rtn, gptq and lrq");
    if (p.act != "none" && p.act != "token" && p.act != "tensor")
        throw_error("quantize: --act must be token, tensor or none (got '%s')", p.act.c_str());
    if (p.act != "none" && !row) throw_error("quantize: --act %s needs a per-channel type (--per-channel, or --method lrq)", p.act.c_str());
    if (row) {
        if (row_layer_type(p.bits, false, 32) == GL_TYPE_COUNT)
            throw_error("quantize: per-channel types have 3, 4 or 8 bits (got --bits %d)", p.bits);
    } else if (p.bits < 2 || p.bits > 4) {
        throw_error("quantize: --bits must be 2, 3 or 4 (got %d)", p.bits);
    }
    if (method->block_fit) {
        if (p.lrq_iters < 0 || p.lrq_iters > 1000000) throw_error("quantize: --lrq-iters must be 0..1000000 (got %d)", p.lrq_iters);
        if (!(p.lrq_lr > 0.0f && p.lrq_lr < 1.0f)) throw_error("quantize: --lrq-lr must be in (0, 1) (got %g)", (double) p.lrq_lr);
        if (p.lrq_rank < -1) throw_error("quantize: --lrq-rank must be a rank >= 1 or 'full'");
        if (p.lrq_batch < 1 || p.lrq_batch > 4096) throw_error("quantize: --lrq-batch must be 1..4096 (got %d)", p.lrq_batch);
    }
    if (vq) {
        if (p.vq_dim != 1 && p.vq_dim != 2 && p.vq_dim != 4) throw_error("quantize: --vq-dim must be 1, 2 or 4 (got %d)", p.vq_dim);
        if (gl_vq_type(p.vq_dim, p.bits, vq_group_of(p)) == GL_TYPE_COUNT) {
            std::string have;
            for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
                const gl_vq_layout * l = gl_vq_info((gl_type) t);
                if (l && l->dim == p.vq_dim) have += strfmt("%s--bits %d --group %lld", have.empty() ? "" : ", ", l->bits, (long long) l->group);
            }
            throw_error("quantize: gptvq has no %dD type with --bits %d --group %lld (%dD: %s)", p.vq_dim, p.bits, (long long) vq_group_of(p),
                        p.vq_dim, have.c_str());
        }
        if (p.em_iters < 0 || p.em_iters > 10000) throw_error("quantize: --em-iters must be 0..10000 (got %d)", p.em_iters);
        if (p.update_iters < 0 || p.update_iters > 10000) throw_error("quantize: --update-iters must be 0..10000 (got %d)", p.update_iters);
    } else if (!row && gl_intq_type(p.bits, p.group) == GL_TYPE_COUNT) {
        throw_error("quantize: --group must be 32, 64 or 128 (got %d)", p.group);
    }
    if (!(p.damp > 0.0 && p.damp < 10.0)) throw_error("quantize: --damp must be in (0, 10) (got %g)", p.damp);
    if (p.block < 1 || p.block > 4096) throw_error("quantize: --block-size must be 1..4096 (got %lld)", (long long) p.block);
    if (method->needs_calibration && p.calib_file.empty()) throw_error("quantize: method %s needs calibration text (--calib FILE)", method->name);
    if (static_act(p) && p.calib_file.empty())
        throw_error("quantize: --act tensor calibrates each linear input's int8 grid on calibration text (--calib FILE)");
    if (p.output.empty()) throw_error("quantize: missing -o OUT.quill");
    if (!method->needs_calibration && !static_act(p) && !p.calib_file.empty() && p.progress)
        fprintf(stderr, "quantize: method %s uses no calibration; ignoring --calib\n", method->name);

}

// Every tensor's stored type and origin: the blocks' linears take the method's type, vectors f32, keep rules theirs.
void plan_tensors(QuantizeRun & r) {
    const QuantizeParams & p = r.p;
    const ModelFile & mf = r.mf;
    const QuantMethod * method = r.method;
    const LlamaHparams & hp = r.model->hp;
    const std::string desc = method->describe(p);
    std::map<std::string, size_t> & index = r.index;
    std::vector<TensorPlan> & plan = r.plan;
    for (size_t i = 0; i < mf.tensors.size(); ++i) index[mf.tensors[i].name] = i;
    plan.assign(mf.tensors.size(), TensorPlan());
    const int64_t n_blocks = r.n_blocks = p.max_blocks > 0 ? std::min<int64_t>(p.max_blocks, hp.n_layer) : hp.n_layer;
    const std::vector<LinearSlot> & linears = r.linears = block_linears(*hp.arch);
    for (int64_t l = 0; l < n_blocks; ++l) {
        for (const LinearSlot & s : linears) {
            const std::string name = layer_tensor_name(l, s.role);
            plan[index.at(name)].linear = true;  // LlamaModel checked that it exists
        }
    }
    std::vector<QuillTensorSpec> & specs = r.specs;
    for (size_t i = 0; i < mf.tensors.size(); ++i) {
        const TensorData & t = mf.tensors[i];
        TensorPlan & pl = plan[i];
        const char * src = gl_type_name(t.type);
        const std::string * keep_type = nullptr;
        for (const auto & rule : p.keep) {
            if (fnmatch(rule.first.c_str(), t.name.c_str(), 0) == 0) {
                keep_type = &rule.second;
                break;
            }
        }
        if (t.ne.size() < 2) {
            pl.type = GL_TYPE_F32;
            pl.origin = t.type == GL_TYPE_F32 ? strfmt("f32 from %s", mf.format.c_str()) : strfmt("f32 from %s (%s)", src, mf.format.c_str());
        } else if (keep_type) {
            gl_type want;
            GL_ASSERT(gl_type_from_name(keep_type->c_str(), &want));
            pl.kept = true;
            pl.type = t.ne[0] % gl_get_type_traits(want)->block_size == 0 ? want : GL_TYPE_F16;
            pl.origin = pl.type == t.type ? strfmt("%s from %s (kept)", src, mf.format.c_str())
                                          : strfmt("%s rtn from %s (%s; kept%s)", gl_type_name(pl.type), src, mf.format.c_str(),
                                                   pl.type == want ? "" : strfmt(" as %s: rows of %lld", keep_type->c_str(), (long long) t.ne[0]).c_str());
        } else if (pl.linear) {
            pl.type = method->layer_type(p, t.ne[0], &pl.group);
            int qb = 0, qg = 0;
            if (gl_get_type_traits(pl.type)->vq) {
                gl_vq_geom g;
                GL_ASSERT(gl_vq_geometry(pl.type, t.ne[0], t.ne[1], &g));
                pl.origin = strfmt("%s %s from %s (%s); codebook groups %lld rows x %lld columns", gl_type_name(pl.type), desc.c_str(), src,
                                   mf.format.c_str(), (long long) g.R, (long long) g.C);
            } else if (gl_get_type_traits(pl.type)->row_header) {
                pl.origin = strfmt("%s %s from %s (%s)", gl_type_name(pl.type), desc.c_str(), src, mf.format.c_str());
            } else if (gl_intq_info(pl.type, &qb, &qg)) {
                pl.origin = strfmt("%s %s from %s (%s)", gl_type_name(pl.type), desc.c_str(), src, mf.format.c_str());
                if (qg != p.group) pl.origin += strfmt("; g%d: rows of %lld", qg, (long long) t.ne[0]);
            } else {
                pl.origin = strfmt("%s holding %s values from %s (%s); rows of %lld are not a whole number of 32-wide blocks",
                                   gl_type_name(pl.type), desc.c_str(), src, mf.format.c_str(), (long long) t.ne[0]);
            }
        } else {
            pl.type = t.type;
            pl.origin = strfmt("%s from %s", src, mf.format.c_str());
        }
        specs.push_back({t.name, pl.type, t.ne, pl.origin});
    }
    // --act tensor: each quantized linear's static activation grid, after the input's tensors (spec index in scale_spec)
    if (static_act(p)) {
        for (int64_t l = 0; l < n_blocks; ++l) {
            for (const LinearSlot & s : linears) {
                const std::string name = layer_tensor_name(l, s.role);
                if (gl_get_type_traits(plan[index.at(name)].type)->vec_dot_type != GL_TYPE_A8_ROW) continue;  // an f16 fallback
                r.scale_spec[name] = specs.size();
                specs.push_back({input_scale_name(name), GL_TYPE_F32, {2},
                                 strfmt("static int8 activation grid of %s (%s input; scale, zero point) calibrated on %s", name.c_str(),
                                        linear_input_name(s.input), basename_of(p.calib_file).c_str())});
            }
        }
    }

}

// The output's metadata: the input's, plus where it came from and how it was quantized.
void set_output_metadata(QuantizeRun & r) {
    const QuantizeParams & p = r.p;
    const ModelFile & mf = r.mf;
    const bool vq = r.vq;
    const QuantMethod * method = r.method;
    const int64_t n_blocks = r.n_blocks;
    const LlamaHparams & hp = r.model->hp;
    Metadata & meta = r.meta;
    meta = mf.meta;
    meta.set_str("general.source.format", mf.format);
    meta.set_str("general.source.file", p.input);
    const bool row = per_row(p);
    meta.set_str("quill.file_type", gl_type_name(vq ? gl_vq_type(p.vq_dim, p.bits, vq_group_of(p))
                                                   : row ? row_layer_type(p.bits, p.act != "none", 32) : gl_intq_type(p.bits, p.group)));
    meta.set_str("quill.quantize.method", method->name);
    if (n_blocks < hp.n_layer) meta.set_u32("quill.quantize.blocks", (uint32_t) n_blocks);  // a trial run: the rest is unquantized
    meta.set_u32("quill.quantize.bits", (uint32_t) p.bits);
    if (row) {
        meta.set_bool("quill.quantize.per_channel", true);
        meta.set_str("quill.quantize.act", p.act);
    } else {
        meta.set_u32("quill.quantize.group", (uint32_t) (vq ? vq_group_of(p) : p.group));
    }
    if (method->block_fit) {
        meta.set_u32("quill.quantize.lrq.iters", (uint32_t) p.lrq_iters);
        meta.set_f32("quill.quantize.lrq.lr", p.lrq_lr);
        meta.set_str("quill.quantize.lrq.rank", p.lrq_rank == 0 ? std::string("full") : p.lrq_rank < 0 ? std::string("min(rows,cols)/4") : strfmt("%lld", (long long) p.lrq_rank));
        meta.set_u32("quill.quantize.lrq.batch", (uint32_t) p.lrq_batch);
    }
    if (vq) {
        meta.set_u32("quill.quantize.vq_dim", (uint32_t) p.vq_dim);
        meta.set_u32("quill.quantize.em_iters", (uint32_t) p.em_iters);
        meta.set_u32("quill.quantize.update_iters", (uint32_t) p.update_iters);
    }
    if (method->needs_calibration) {
        meta.set_bool("quill.quantize.act_order", p.act_order);
        meta.set_f32("quill.quantize.damp", (float) p.damp);
        meta.set_u32("quill.quantize.block_size", (uint32_t) p.block);
    }

}

// The calibration tokens (recorded in the metadata) and their embeddings as the output file will hold them.
void load_calibration_activations(QuantizeRun & r) {
    const QuantizeParams & p = r.p;
    const LlamaHparams & hp = r.model->hp;
    const LlamaModel & model = *r.model;
    Metadata & meta = r.meta;
    QuantizeReport & rep = r.rep;
    CalibData & cd = r.cd;
    std::vector<float> & X = r.X;
    const std::vector<TensorPlan> & plan = r.plan;
    const std::map<std::string, size_t> & index = r.index;
    {
        const Clock::time_point t0 = Clock::now();
        Tokenizer tok = Tokenizer::from_metadata(r.mf.meta);
        CalibParams cp;
        cp.file = p.calib_file;
        cp.n_tokens = p.calib_tokens;
        cp.seq_len = std::min<int64_t>(p.seq_len, hp.n_ctx_train);
        cd = load_calibration(cp, tok);
        meta.set_str("quill.quantize.calib.file", basename_of(cd.file));
        meta.set_str("quill.quantize.calib.xxh3", strfmt("%016llx", (unsigned long long) cd.text_xxh3));
        meta.set(("quill.quantize.calib.tokens"), MetaValue::of_u64((uint64_t) cd.n_tokens()));
        meta.set_u32("quill.quantize.calib.seq_len", (uint32_t) cd.seq_len);
        rep.calib_tokens = cd.n_tokens();
        rep.calib_xxh3 = cd.text_xxh3;
        rep.calib_seconds += since(t0);
        if (p.progress)
            fprintf(stderr, "quantize: calibration: %lld sequences of %lld tokens from %s (xxh3 %016llx), %.2f s\n", (long long) cd.n_seq,
                    (long long) cd.seq_len, cd.file.c_str(), (unsigned long long) cd.text_xxh3, since(t0));
    }

    {
        const Clock::time_point t0 = Clock::now();
        const int64_t E = hp.n_embd, N = cd.n_tokens();
        X.resize((size_t) (N * E));
        const gl_type emb_type = plan[index.at(k_tensor_token_embd)].type;
        std::vector<uint8_t> tmp;
        for (int64_t t = 0; t < N; ++t) {
            float * row = &X[(size_t) (t * E)];
            gl_get_row(model.tok_embd, cd.tokens[(size_t) t], row);
            if (emb_type != model.tok_embd.type) round_trip_rows(row, 1, E, emb_type, &tmp);
            if (hp.embd_scale != 1.0f) gl_scale(row, E, hp.embd_scale);  // as LlamaModel::embed does
        }
        rep.activation_bytes = X.size() * sizeof(float);
        rep.calib_seconds += since(t0);
    }

}

// Everything outside the blocks' linears, row by row (memory: one row).
void write_outer_tensors(QuantizeRun & r, QuillWriter & writer) {
    const ModelFile & mf = r.mf;
    const std::vector<TensorPlan> & plan = r.plan;
    QuantizeReport & rep = r.rep;
    {
        std::vector<float> row;
        std::vector<uint8_t> buf;
        for (size_t i = 0; i < mf.tensors.size(); ++i) {
            if (plan[i].linear) continue;
            const TensorData & t = mf.tensors[i];
            const Clock::time_point t0 = Clock::now();
            if (plan[i].type == t.type) {
                writer.write_tensor(i, t.data, t.nbytes);
            } else {
                const int64_t ne0 = t.ne[0], rows = t.n_rows();
                const size_t dst_row = gl_row_size(plan[i].type, ne0);
                row.resize((size_t) ne0);
                buf.resize(dst_row * (size_t) rows);
                const gl_tensor src = gl_tensor_make(t.type, ne0, rows, t.data);
                for (int64_t r = 0; r < rows; ++r) {
                    gl_get_row(src, r, row.data());
                    gl_get_type_traits(plan[i].type)->from_float(row.data(), buf.data() + (size_t) r * dst_row, ne0);
                }
                writer.write_tensor(i, buf.data(), buf.size());
            }
            rep.tensors[i].seconds = since(t0);
        }
    }

}

// The blocks in order: each block's Hessians from the calibration activations, its linears quantized one by one,
// then the activations run through the quantized block for the next.
void quantize_blocks(QuantizeRun & r, QuillWriter & writer) {
    const QuantizeParams & p = r.p;
    const ModelFile & mf = r.mf;
    const QuantMethod * method = r.method;
    const LlamaModel & model = *r.model;
    const LlamaHparams & hp = model.hp;
    const std::vector<TensorPlan> & plan = r.plan;
    const std::map<std::string, size_t> & index = r.index;
    const std::vector<LinearSlot> & linears = r.linears;
    const int64_t n_blocks = r.n_blocks;
    const CalibData & cd = r.cd;
    std::vector<float> & X = r.X;
    QuantizeReport & rep = r.rep;
    const Clock::time_point t_start = r.t_start;
    double work_total = 0, work_done = 0;
    for (size_t i = 0; i < mf.tensors.size(); ++i)
        if (plan[i].linear) work_total += (double) mf.tensors[i].n_elements();
    const int n_linear = (int) (n_blocks * (int64_t) linears.size());
    int n_done = 0;
    size_t resident = 0;
    for (int64_t l = 0; l < n_blocks; ++l) {
        BlockWeightsF32 bw = block_weights_f32(model, l);
        resident += bw.n_floats();
        rep.peak_weight_floats = std::max(rep.peak_weight_floats, resident);
        rep.max_block_floats = std::max(rep.max_block_floats, bw.n_floats());

        // Block methods: fit the block's linears together first (its inputs: X, the quantized model's; its target:
        // the float block on the float model's activations Xf, which then advance).
        IntQuantLayer fitted[(int) LayerTensor::COUNT];
        if (method->block_fit) {
            const Clock::time_point t0 = Clock::now();
            if (r.Xf.empty()) r.Xf = X;
            block_forward(hp, bw.layer(), r.Xf.data(), cd.n_seq, cd.seq_len, BlockRecorder(), true);
            LrqParams lp;
            lp.bits = p.bits;
            lp.iters = p.lrq_iters;
            lp.lr = p.lrq_lr;
            lp.rank = p.lrq_rank;
            lp.batch = p.lrq_batch;
            lp.seed = (uint32_t) l;
            const LrqBlockStats st = lrq_quantize_block(hp, bw, X.data(), r.Xf.data(), cd.n_seq, cd.seq_len, lp, fitted);
            if (p.progress)
                fprintf(stderr, "quantize: block %lld: %s fit, %d steps: reconstruction loss %.5g (round to nearest) -> %.5g, %.2f s\n", (long long) l,
                        lp.rank == 0 ? "flexround" : "lrq", lp.iters, st.loss_init, st.loss_final, since(t0));
        }
        BlockHessians hs;
        if (method->needs_calibration && !method->block_fit) {
            const Clock::time_point t0 = Clock::now();
            collect_block_hessians(hp, bw.layer(), X.data(), cd.n_seq, cd.seq_len, hs);
            rep.peak_hessian_bytes = std::max(rep.peak_hessian_bytes, hs.bytes());
            rep.calib_seconds += since(t0);
            if (p.progress) fprintf(stderr, "quantize: block %lld: Hessians over %lld tokens in %.2f s\n", (long long) l, (long long) cd.n_tokens(), since(t0));
        }
        for (const LinearSlot & s : linears) {
            const std::string name = layer_tensor_name(l, s.role);
            const size_t i = index.at(name);
            const TensorData & t = mf.tensors[i];
            std::vector<float> & Wv = bw.of(s.role);
            const int64_t cols = t.ne[0], rows = t.ne[1];
            const Clock::time_point t0 = Clock::now();
            LayerResult res;
            if (plan[i].kept) {
                round_trip_rows(Wv.data(), rows, cols, plan[i].type, &res.data);
                res.note = "kept";
            } else {
                LayerJob job{&name,         Wv.data(), rows, cols, method->needs_calibration && !method->block_fit ? hs[s.input].data() : nullptr,
                             plan[i].type,  plan[i].group, &p,  method->block_fit ? &fitted[(int) s.role] : nullptr};
                method->quantize(job, res);
            }
            writer.write_tensor(i, res.data.data(), res.data.size());
            QuantizedTensorInfo & ti = rep.tensors[i];
            ti.seconds = since(t0);
            ti.loss = res.loss;
            work_done += (double) t.n_elements();
            ++n_done;
            if (p.progress) {
                const double el = since(t_start);
                const double eta = work_done > 0 ? el * (work_total - work_done) / work_done : 0.0;
                fprintf(stderr, "quantize: [%3d/%d] %-28s %6lld x %-6lld %-8s %7.2f s  %s | %s elapsed, ETA %s\n", n_done, n_linear, name.c_str(),
                        (long long) rows, (long long) cols, gl_type_name(plan[i].type), ti.seconds, res.note.c_str(), hms(el).c_str(), hms(eta).c_str());
            }
        }
        for (Hessian & h : hs.h) h.release();
        if (static_act(p)) {
            // the quantized block on the quantized model's activations: each linear input's static grid, then X advances
            const Clock::time_point t0 = Clock::now();
            ActGridStats st[(int) LinearInput::COUNT];
            for (int k = 0; k < (int) LinearInput::COUNT; ++k) st[k].init(linear_input_dim(hp, (LinearInput) k), cd.n_tokens());
            block_forward(hp, bw.layer(), X.data(), cd.n_seq, cd.seq_len,
                          [&](LinearInput which, const float * x, int64_t n_tok, int64_t dim) {
                              GL_ASSERT(dim == st[(int) which].dim());
                              st[(int) which].add(x, n_tok);
                          },
                          l + 1 < n_blocks);
            ActGrid grid[(int) LinearInput::COUNT];
            bool used[(int) LinearInput::COUNT] = {};
            for (const LinearSlot & s : linears) used[(int) s.input] |= r.scale_spec.count(layer_tensor_name(l, s.role)) > 0;
            for (int k = 0; k < (int) LinearInput::COUNT; ++k)
                if (used[k]) grid[k] = st[k].fit();
            for (const LinearSlot & s : linears) {
                const auto it = r.scale_spec.find(layer_tensor_name(l, s.role));
                if (it == r.scale_spec.end()) continue;
                const ActGrid & g = grid[(int) s.input];
                const float v[2] = {g.s, (float) g.z};
                writer.write_tensor(it->second, v, sizeof v);
            }
            rep.calib_seconds += since(t0);
            if (p.progress) {
                std::string line;
                for (int k = 0; k < (int) LinearInput::COUNT; ++k)
                    if (used[k])
                        line += strfmt("%s%s s %.4g z %d clip %.2f rmse %.3g", line.empty() ? "" : "; ", linear_input_name((LinearInput) k),
                                       (double) grid[k].s, grid[k].z, (double) grid[k].alpha, grid[k].rmse);
                fprintf(stderr, "quantize: block %lld: static activation grids: %s (%.2f s)\n", (long long) l, line.c_str(), since(t0));
            }
        } else if (method->needs_calibration && l + 1 < n_blocks) {
            const Clock::time_point t0 = Clock::now();
            block_forward(hp, bw.layer(), X.data(), cd.n_seq, cd.seq_len, BlockRecorder(), true);
            rep.calib_seconds += since(t0);
        }
        resident -= bw.n_floats();
    }
}

}  // namespace

QuantizeReport quantize_model(const QuantizeParams & p) {
    QuantizeRun r(p);
    check_params(r);
    LoadOptions lo;
    lo.tokenizer_path = p.tokenizer;
    r.mf = load_model(p.input, lo);
    validate_runnable(r.mf);  // never write a file that `quill run` would then refuse
    r.model.reset(new LlamaModel(r.mf, false));
    plan_tensors(r);
    set_output_metadata(r);
    if (r.method->needs_calibration || static_act(p)) load_calibration_activations(r);

    QuillWriter writer(p.output, r.meta, r.specs);
    r.rep.tensors.resize(r.specs.size());
    for (size_t i = 0; i < r.specs.size(); ++i) {
        const QuillTensorSpec & sp = r.specs[i];
        QuantizedTensorInfo & ti = r.rep.tensors[i];
        ti.name = sp.name;
        ti.type = sp.type;
        ti.n_elements = 1;
        for (int64_t n : sp.ne) ti.n_elements *= n;
        ti.nbytes = writer.tensor_nbytes(i);
        ti.linear = i < r.plan.size() && r.plan[i].linear;
        ti.origin = sp.origin;
    }

    write_outer_tensors(r, writer);
    quantize_blocks(r, writer);
    writer.finish();
    r.rep.seconds = since(r.t_start);
    return r.rep;
}

}  // namespace quill
