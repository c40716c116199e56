// Structure-aware mutations of GGUF and quill files for fuzz_gguf and fuzz_quill (LLVMFuzzerCustomMutator).
//
// Byte-level mutations rarely turn a u32 key into a float of 1e30, add a key that is not there, or give a tensor a
// dimension of 2^62 while keeping the file parseable. Half of the mutations here parse the header (with the
// readers' own ByteReader and read_meta_value), change one metadata entry or tensor entry to an "interesting"
// value, and write the header back with the tensor data re-aligned; the other half are libFuzzer's own.
#include "formats/byte_reader.h"
#include "formats/meta_io.h"
#include "tests/fuzz/fuzz_util.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

extern "C" size_t LLVMFuzzerMutate(uint8_t * data, size_t size, size_t max_size);

namespace quill_fuzz {

using namespace quill;

namespace {

struct Tensor {
    std::string name;
    uint32_t type = 0;
    std::vector<uint64_t> ne;
    uint64_t offset = 0, nbytes = 0, checksum = 0;
    std::string origin;
};

struct Parsed {
    bool quill = false;
    uint32_t version = 0, alignment = 0, reserved = 0;
    std::vector<std::pair<std::string, MetaValue>> kvs;
    std::vector<Tensor> tensors;
    std::string data;  // everything from the aligned start of the tensor data to the end
};

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t gguf_alignment(const Parsed & p) {
    for (const auto & kv : p.kvs) {
        if (kv.first != "general.alignment") continue;
        const MetaValue & v = kv.second;
        uint64_t a = 0;
        if (meta_type_is_int(v.type)) a = v.u ? v.u : (uint64_t) v.i;
        if (a != 0 && (a & (a - 1)) == 0 && a <= 4096) return a;
    }
    return 32;
}

bool parse(const uint8_t * d, size_t n, Parsed & p) {
    try {
        ByteReader r(d, n, "mutator");
        r.need(4, "magic");
        if (memcmp(d, "GGUF", 4) == 0) p.quill = false;
        else if (memcmp(d, "QUIL", 4) == 0) p.quill = true;
        else return false;
        r.skip(4, "magic");
        p.version = r.read<uint32_t>("version");
        uint64_t n_kv, n_t;
        if (p.quill) {
            p.alignment = r.read<uint32_t>("alignment");
            p.reserved = r.read<uint32_t>("reserved");
            n_kv = r.read<uint64_t>("n_kv");
            n_t = r.read<uint64_t>("n_tensors");
        } else {
            n_t = r.read<uint64_t>("n_tensors");
            n_kv = r.read<uint64_t>("n_kv");
        }
        if (n_kv > 100000 || n_t > 100000) return false;
        for (uint64_t k = 0; k < n_kv; ++k) {
            std::string key = r.read_string<uint64_t>("key", 1 << 16);
            MetaValue v = read_meta_value(r, key);
            p.kvs.emplace_back(std::move(key), std::move(v));
        }
        for (uint64_t k = 0; k < n_t; ++k) {
            Tensor t;
            t.name = r.read_string<uint64_t>("name", 1 << 16);
            if (p.quill) t.type = r.read<uint32_t>("type");
            const uint32_t nd = r.read<uint32_t>("n_dims");
            if (nd > 8) return false;
            for (uint32_t i = 0; i < nd; ++i) t.ne.push_back(r.read<uint64_t>("ne"));
            if (!p.quill) t.type = r.read<uint32_t>("type");
            t.offset = r.read<uint64_t>("offset");
            if (p.quill) {
                t.nbytes = r.read<uint64_t>("nbytes");
                t.checksum = r.read<uint64_t>("checksum");
                t.origin = r.read_string<uint64_t>("origin", 1 << 16);
            }
            p.tensors.push_back(std::move(t));
        }
        if (p.quill) r.skip(8, "header checksum");
        const uint64_t a = p.quill ? (p.alignment >= 1 && p.alignment <= 65536 && (p.alignment & (p.alignment - 1)) == 0 ? p.alignment : 64)
                                   : gguf_alignment(p);
        const uint64_t ds = align_up(r.pos(), a);
        p.data = ds < n ? std::string((const char *) d + ds, n - ds) : std::string();
        return true;
    } catch (const Error &) {
        return false;
    }
}

std::string serialize(const Parsed & p) {
    std::string out(p.quill ? "QUIL" : "GGUF");
    write_pod<uint32_t>(out, p.version);
    if (p.quill) {
        write_pod<uint32_t>(out, p.alignment);
        write_pod<uint32_t>(out, p.reserved);
        write_pod<uint64_t>(out, p.kvs.size());
        write_pod<uint64_t>(out, p.tensors.size());
    } else {
        write_pod<uint64_t>(out, p.tensors.size());
        write_pod<uint64_t>(out, p.kvs.size());
    }
    for (const auto & kv : p.kvs) {
        write_string(out, kv.first);
        write_meta_value(out, kv.second);
    }
    for (const Tensor & t : p.tensors) {
        write_string(out, t.name);
        if (p.quill) write_pod<uint32_t>(out, t.type);
        write_pod<uint32_t>(out, (uint32_t) t.ne.size());
        for (uint64_t d : t.ne) write_pod<uint64_t>(out, d);
        if (!p.quill) write_pod<uint32_t>(out, t.type);
        write_pod<uint64_t>(out, t.offset);
        if (p.quill) {
            write_pod<uint64_t>(out, t.nbytes);
            write_pod<uint64_t>(out, t.checksum);
            write_string(out, t.origin);
        }
    }
    if (p.quill) write_pod<uint64_t>(out, 0);  // the header checksum: fuzz_quill recomputes it
    const uint64_t a = p.quill ? (p.alignment >= 1 && p.alignment <= 65536 && (p.alignment & (p.alignment - 1)) == 0 ? p.alignment : 64)
                               : gguf_alignment(p);
    out.resize((size_t) align_up(out.size(), a), '\0');
    out += p.data;
    return out;
}

const uint64_t k_ints[] = {0, 1, 2, 3, 4, 7, 8, 16, 31, 32, 63, 64, 127, 128, 255, 256, 4095, 4096, 4097, 65535, 65536,
                           1u << 20, (1u << 20) + 1, 1u << 24, (1u << 24) + 1, 0x7fffffff, 0x80000000, 0xffffffff,
                           1ull << 32, 1ull << 40, 1ull << 48, (1ull << 48) + 1, 1ull << 62, 0x7fffffffffffffffull,
                           0x8000000000000000ull, 0xffffffffffffffffull, 0xfffffffffffffffeull};
const double k_floats[] = {0.0, -0.0, 0.5, 1.0, -1.0, 2.0, 1e-30, 1e-45, 1e30, -1e30, 1e300, 9.2e18, 9.3e18, 4294967296.0,
                           std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
const char * const k_strings[] = {"", "llama", "qwen2", "qwen3", "gemma3", "gpt2", "llama-bpe", "gpt-2", "default", "linear",
                                  "none", "yarn", "<unk>", "<0x0A>", "\xe2\x96\x81", "a b", " ", "<|im_start|>", "[INST]", "\xff\xfe", "\t\n"};
const char * const k_keys[] = {
    "general.architecture", "general.alignment", "general.name", "llama.context_length", "llama.embedding_length",
    "llama.feed_forward_length", "llama.block_count", "llama.attention.head_count", "llama.attention.head_count_kv",
    "llama.attention.key_length", "llama.attention.value_length", "llama.rope.dimension_count", "llama.rope.freq_base",
    "llama.rope.scaling.type", "llama.rope.scaling.factor", "llama.attention.layer_norm_rms_epsilon", "llama.vocab_size",
    "llama.final_logit_softcapping", "gemma3.attention.sliding_window", "gemma3.attention.sliding_window_pattern",
    "gemma3.rope.freq_base_swa", "gemma3.attention.key_length", "qwen3.attention.key_length",
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.eot_token_id",
    "tokenizer.ggml.eom_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"};
const char * const k_tensor_names[] = {"token_embd.weight", "output_norm.weight", "output.weight", "rope_freqs.weight",
                                       "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_norm.weight",
                                       "blk.0.ffn_down.weight", "blk.1.attn_q.weight", "blk.4294967296.attn_q.weight",
                                       "blk.0.attn_q.bias", "blk.0.attn_k_norm.weight", "blk.0.post_ffw_norm.weight"};

template <typename T, size_t N> const T & pick(std::mt19937_64 & rng, const T (&a)[N]) { return a[rng() % N]; }

// A scalar value of type t from the interesting lists (or a random one).
void set_scalar(std::mt19937_64 & rng, MetaType t, MetaValue & v) {
    const uint64_t u = rng() % 4 == 0 ? rng() : pick(rng, k_ints);
    v.u = 0, v.i = 0, v.f = 0, v.s.clear();
    if (t == MetaType::STRING) v.s = rng() % 8 == 0 ? std::string(rng() % 70000, 'a') : std::string(pick(rng, k_strings));
    else if (meta_type_is_float(t)) v.f = rng() % 4 == 0 ? (double) (int64_t) u : pick(rng, k_floats);
    else if (t == MetaType::U8 || t == MetaType::U16 || t == MetaType::U32 || t == MetaType::U64) v.u = u;
    else v.i = (int64_t) u;
}

MetaType scalar_type(std::mt19937_64 & rng) {
    static const MetaType ts[] = {MetaType::U8, MetaType::I8, MetaType::U16, MetaType::I16, MetaType::U32, MetaType::I32,
                                  MetaType::F32, MetaType::BOOL, MetaType::STRING, MetaType::U64, MetaType::I64, MetaType::F64};
    return pick(rng, ts);
}

// An array of n elements of type et, each an interesting value (or copied from `like` when it has that many).
void set_array(std::mt19937_64 & rng, MetaType et, size_t n, MetaValue & v) {
    MetaValue old = v;
    v = MetaValue();
    v.type = MetaType::ARRAY;
    v.elem = et;
    for (size_t k = 0; k < n; ++k) {
        MetaValue e;
        const bool keep = old.type == MetaType::ARRAY && old.elem == et && k < old.array_size() && rng() % 8 != 0;
        if (keep) {
            if (et == MetaType::STRING) v.as.push_back(old.as[k]);
            else if (meta_type_is_float(et)) v.af.push_back(old.af[k]);
            else if (!old.au.empty()) v.au.push_back(old.au[k]);
            else v.ai.push_back(old.ai[k]);
            continue;
        }
        set_scalar(rng, et, e);
        if (et == MetaType::STRING) v.as.push_back(e.s.substr(0, 64));
        else if (meta_type_is_float(et)) v.af.push_back(e.f);
        else if (et == MetaType::U8 || et == MetaType::U16 || et == MetaType::U32 || et == MetaType::U64) v.au.push_back(e.u);
        else v.ai.push_back(e.i);
    }
}

void mutate_kv(std::mt19937_64 & rng, Parsed & p) {
    const unsigned op = rng() % 8;
    if (op == 0 || p.kvs.empty()) {  // add a known key
        MetaValue v;
        v.type = rng() % 5 == 0 ? MetaType::ARRAY : scalar_type(rng);
        if (v.type == MetaType::ARRAY) set_array(rng, scalar_type(rng), rng() % 16, v);
        else set_scalar(rng, v.type, v);
        p.kvs.insert(p.kvs.begin() + (long) (rng() % (p.kvs.size() + 1)), {pick(rng, k_keys), v});
        return;
    }
    const size_t i = rng() % p.kvs.size();
    MetaValue & v = p.kvs[i].second;
    switch (op) {
        case 1: p.kvs.erase(p.kvs.begin() + (long) i); return;
        case 2: {  // the same key again, with another value
            std::pair<std::string, MetaValue> dup = p.kvs[i];
            if (dup.second.type == MetaType::ARRAY) dup.second.type = MetaType::U32;
            set_scalar(rng, dup.second.type, dup.second);
            p.kvs.push_back(std::move(dup));
            return;
        }
        case 3: p.kvs[i].first = pick(rng, k_keys); return;
        default: break;
    }
    if (v.type == MetaType::ARRAY) {
        const size_t n = v.array_size();
        switch (rng() % 4) {
            case 0: set_array(rng, v.elem, n == 0 ? 1 : rng() % (n + 1), v); break;  // shorter
            case 1: set_array(rng, v.elem, n + 1 + rng() % 4, v); break;             // longer
            case 2: set_array(rng, scalar_type(rng), n, v); break;                    // other element type
            default: {                                                                // one element
                MetaValue e;
                set_scalar(rng, v.elem, e);
                if (n == 0) break;
                const size_t k = rng() % n;
                if (v.elem == MetaType::STRING) v.as[k] = e.s.substr(0, 64);
                else if (meta_type_is_float(v.elem)) v.af[k] = e.f;
                else if (!v.au.empty()) v.au[k] = e.u;
                else v.ai[k] = e.i;
            }
        }
        return;
    }
    set_scalar(rng, rng() % 2 ? v.type : (v.type = scalar_type(rng)), v);  // same type, new value; or a new type
}

void mutate_tensor(std::mt19937_64 & rng, Parsed & p) {
    if (p.tensors.empty()) return;
    const size_t i = rng() % p.tensors.size();
    Tensor & t = p.tensors[i];
    switch (rng() % 8) {
        case 0:
            if (!t.ne.empty()) t.ne[rng() % t.ne.size()] = rng() % 2 ? pick(rng, k_ints) : t.ne[0] * (1 + rng() % 3) / (1 + rng() % 3);
            break;
        case 1:
            if (rng() % 2 && !t.ne.empty()) t.ne.pop_back();
            else t.ne.push_back(rng() % 2 ? 1 : pick(rng, k_ints));
            break;
        case 2: t.type = (uint32_t) (rng() % 2 ? rng() % 40 : rng()); break;
        case 3: t.offset = rng() % 2 ? pick(rng, k_ints) : t.offset + (rng() % 2 ? 32 : 64); break;
        case 4: t.name = pick(rng, k_tensor_names); break;
        case 5: t.nbytes = rng() % 2 ? pick(rng, k_ints) : t.nbytes * 2; break;  // quill only
        case 6: p.tensors.push_back(p.tensors[i]); break;
        default: p.tensors.erase(p.tensors.begin() + (long) i); break;
    }
}

}  // namespace

size_t mutate_model_file(uint8_t * data, size_t size, size_t max_size, unsigned seed) {
    std::mt19937_64 rng(seed);
    Parsed p;
    if (rng() % 2 == 0 || !parse(data, size, p)) return LLVMFuzzerMutate(data, size, max_size);
    const int n = 1 + (int) (rng() % 3);
    for (int k = 0; k < n; ++k) {
        if (rng() % 3 == 0) mutate_tensor(rng, p);
        else mutate_kv(rng, p);
    }
    if (rng() % 16 == 0) p.version = (uint32_t) pick(rng, k_ints);
    if (p.quill && rng() % 16 == 0) p.alignment = (uint32_t) pick(rng, k_ints);
    const std::string out = serialize(p);
    if (out.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
    memcpy(data, out.data(), out.size());
    return out.size();
}

}  // namespace quill_fuzz
