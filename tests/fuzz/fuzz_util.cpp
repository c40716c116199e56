#include "tests/fuzz/fuzz_util.h"

#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"
#include "model/chat.h"
#include "model/llama.h"
#include "model/synthetic.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>

namespace quill_fuzz {

using namespace quill;

void contract_failed(const char * file, int line, const char * expr, const std::string & detail) {
#ifdef QUILL_FUZZ_NO_MAIN
    // In the ordinary test suite (regressions_test.cpp): a failed test case, not the end of the test process.
    throw ContractViolation(strfmt("%s:%d: %s: %s", file, line, expr, detail.c_str()));
#else
    fprintf(stderr, "\n==fuzz contract violated== %s:%d: %s\n  %s\n", file, line, expr, detail.c_str());
    fflush(stderr);
    abort();
#endif
}

void init_process() {
    omp_set_num_threads(1);
}

// ---- scratch files ---------------------------------------------------------------------------------------------

namespace {

std::map<std::string, std::string> g_scratch;  // target -> its directory

void remove_tree(const std::string & dir) {
    if (DIR * d = opendir(dir.c_str())) {
        while (struct dirent * e = readdir(d)) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            unlink((dir + "/" + e->d_name).c_str());
        }
        closedir(d);
    }
    rmdir(dir.c_str());
}

void cleanup_scratch() {
    for (const auto & kv : g_scratch) remove_tree(kv.second);
}

bool usable_dir(const char * p) {
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode) && access(p, W_OK | X_OK) == 0;
}

}  // namespace

const std::string & scratch_dir(const char * target) {
    auto it = g_scratch.find(target);
    if (it != g_scratch.end()) return it->second;
    const char * base = "/tmp";
    if (usable_dir("/dev/shm")) base = "/dev/shm";
    else if (usable_dir(getenv("TMPDIR"))) base = getenv("TMPDIR");
    const std::string dir = strfmt("%s/quill-fuzz-%s-%d", base, target, (int) getpid());
    remove_tree(dir);  // a stale one from a recycled pid
    if (mkdir(dir.c_str(), 0700) != 0) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", dir.c_str(), strerror(errno));
        abort();
    }
    if (g_scratch.empty()) atexit(cleanup_scratch);
    return g_scratch.emplace(target, dir).first->second;
}

std::string write_scratch(const std::string & dir, const std::string & name, const void * data, size_t size) {
    const std::string path = dir + "/" + name;
    // A fresh inode every time: a file still mapped by a previous input is never truncated under the mapping.
    unlink(path.c_str());
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "fuzz: cannot create %s: %s\n", path.c_str(), strerror(errno));
        abort();
    }
    const char * p = (const char *) data;
    size_t left = size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fprintf(stderr, "fuzz: cannot write %s: %s\n", path.c_str(), strerror(errno));
            abort();
        }
        p += n;
        left -= (size_t) n;
    }
    close(fd);
    return path;
}

void remove_scratch(const std::string & dir, const std::string & name) { unlink((dir + "/" + name).c_str()); }

// ---- multi-file inputs -----------------------------------------------------------------------------------------

const char kFileSep[] = "\n--quill-fuzz-file--\n";

std::vector<std::string> split_files(const uint8_t * data, size_t size, size_t max_parts) {
    std::vector<std::string> parts;
    const std::string in((const char *) data, size);
    const std::string sep = kFileSep;
    size_t pos = 0;
    while (parts.size() + 1 < max_parts) {
        size_t q = in.find(sep, pos);
        if (q == std::string::npos) break;
        parts.push_back(in.substr(pos, q - pos));
        pos = q + sep.size();
    }
    parts.push_back(in.substr(pos));
    return parts;
}

std::string join_files(const std::vector<std::string> & parts) {
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i) out += kFileSep;
        out += parts[i];
    }
    return out;
}

// ---- shared data ------------------------------------------------------------------------------------------------

std::string shared_root() {
    const char * env = getenv("QUILL_SHARED");
    std::string root = env && *env ? std::string(env) : std::string(QUILL_SOURCE_DIR) + "/../shared";
    struct stat st;
    if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
    return root;
}

const Tokenizer & stories_tokenizer() {
    static const Tokenizer tok = [] {
        const std::string root = shared_root();
        const std::string path = root.empty() ? "" : root + "/models/stories260K/tok512.bin";
        struct stat st;
        if (!path.empty() && stat(path.c_str(), &st) == 0) {
            Metadata m;
            import_llama2c_tokenizer(path, m);
            return Tokenizer::from_metadata(m);
        }
        fprintf(stderr, "fuzz: ../shared not found (set QUILL_SHARED); using a synthetic 512-token vocabulary\n");
        return Tokenizer::from_metadata(make_synthetic_model("stories260k", GL_TYPE_F32).meta);
    }();
    return tok;
}

// ---- exercising what an input feeds ----------------------------------------------------------------------------

void exercise_tokenizer(const Tokenizer & tok, const std::string & extra) {
    const int32_t n_vocab = tok.n_vocab();
    std::vector<std::string> texts = {
        "Once upon a time, there was a little girl named Lily.",
        "  Hello\n\tworld!  123 4567 'll 're ",
        "<s>[INST] <<SYS>>\nbe nice\n<</SYS>>\n\nHi [/INST]</s><|im_start|>user\n<|eot_id|>",
        "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\xa6\x99 \xff\xfe bad utf8 \xe2\x82",
    };
    if (!extra.empty()) texts.push_back(extra.substr(0, 512));
    for (const std::string & text : texts) {
        for (int mode = 0; mode < 3; ++mode) {
            const std::vector<int32_t> ids = tok.encode(text, mode != 1, mode != 0);
            for (int32_t id : ids)
                FUZZ_CHECK(id >= 0 && id < n_vocab, strfmt("encode gave id %d outside the vocabulary of %d", id, n_vocab));
            (void) tok.decode(ids, mode == 2);
            for (size_t i = 0; i < ids.size() && i < 64; ++i) (void) tok.is_eog(ids[i]);
        }
    }
    const int32_t walk = std::min<int32_t>(n_vocab, 64);
    for (int32_t id = 0; id < walk; ++id) {
        (void) tok.token_to_piece(id, id % 2 == 0);
        (void) tok.token_text(id);
        (void) tok.token_score(id);
        (void) tok.token_type(id);
    }
    if (n_vocab > 0) {
        (void) tok.token_to_piece(n_vocab - 1, true);
        (void) tok.find_token(tok.token_text(n_vocab - 1));
    }
    // Ids outside the vocabulary are documented to throw quill::Error.
    for (int32_t bad : {-1, n_vocab}) {
        try {
            (void) tok.token_to_piece(bad);
            contract_failed(__FILE__, __LINE__, "token_to_piece(bad id) throws", strfmt("id %d, vocabulary %d", bad, n_vocab));
        } catch (const Error &) {
        }
    }
    (void) chat_template_detect(tok.chat_template());
}

namespace {

void exercise_rows(const ModelFile & mf) {
    std::vector<float> row;
    size_t n = 0;
    for (const TensorData & t : mf.tensors) {
        if (++n > 512) break;
        if (t.ne.empty()) continue;
        FUZZ_CHECK(gl_type_valid(t.type), strfmt("tensor '%s' has invalid type %u", t.name.c_str(), (unsigned) t.type));
        size_t nbytes = 0;
        FUZZ_CHECK(gl_nbytes_checked(t.type, t.ne.data(), (int) t.ne.size(), &nbytes) && nbytes == t.nbytes,
                   strfmt("tensor '%s': nbytes %zu does not match its shape", t.name.c_str(), t.nbytes));
        const int64_t ne0 = t.ne[0], rows = t.n_rows();
        if (ne0 > (int64_t) 1 << 24) continue;
        row.resize((size_t) ne0);
        const gl_tensor w = gl_tensor_make(t.type, ne0, rows, t.data, t.name.c_str());
        gl_get_row(w, 0, row.data());
        if (rows > 1) gl_get_row(w, rows - 1, row.data());
    }
}

void exercise_llama(const ModelFile & mf, const Tokenizer * tok) {
    const LlamaModel model(mf);
    const LlamaHparams & hp = model.hp;
    if (model.weight_bytes > ((size_t) 256 << 20)) return;  // cannot happen for inputs within -max_len; bound anyway
    ContextParams cp;
    cp.n_ctx = (int32_t) std::min<int64_t>(hp.n_ctx_train, 8);
    cp.n_batch = 4;
    cp.n_seq = 2;
    cp.kv_type = (mf.tensors.size() % 2) ? GL_TYPE_F32 : GL_TYPE_F16;
    Context ctx(model, cp);

    std::vector<int32_t> toks;
    if (tok) {
        for (int32_t id : tok->encode("Once upon a time", true))
            if (id < hp.n_vocab) toks.push_back(id);
    }
    if (toks.empty()) toks = {0, (int32_t) (hp.n_vocab - 1)};
    if ((int64_t) toks.size() > std::min<int64_t>(cp.n_batch, cp.n_ctx - 1)) toks.resize((size_t) std::min<int64_t>(cp.n_batch, cp.n_ctx - 1));
    if (toks.empty()) return;  // a context of one position

    Batch b;
    for (size_t i = 0; i < toks.size(); ++i) b.add(toks[i], (int32_t) i, 0, i + 1 == toks.size());
    ctx.decode(b);
    FUZZ_CHECK(ctx.n_logits() == 1, strfmt("%zu logits rows after a batch asking for one", ctx.n_logits()));
    (void) ctx.logits(0)[hp.n_vocab - 1];
    // One more token on each of two sequences (the second one fresh), as the server's decode step does.
    b.clear();
    b.add(toks[0], (int32_t) toks.size(), 0, true);
    b.add(toks.back(), 0, 1, true);
    ctx.decode(b);
    FUZZ_CHECK(ctx.n_logits() == 2, strfmt("%zu logits rows after a batch asking for two", ctx.n_logits()));
    // A bad batch is documented to throw quill::Error and change nothing.
    b.clear();
    b.add((int32_t) hp.n_vocab, 0, 0, true);
    try {
        ctx.decode(b);
        contract_failed(__FILE__, __LINE__, "decode(token id n_vocab) throws", "");
    } catch (const Error &) {
    }
    FUZZ_CHECK(ctx.seq_len(0) == (int32_t) toks.size() + 1, "a rejected batch changed the cache");
}

}  // namespace

void exercise_model(const ModelFile & mf) {
    for (const auto & kv : mf.meta.items()) (void) kv.second.to_string();
    exercise_rows(mf);

    std::unique_ptr<Tokenizer> tok;
    try {
        tok = std::make_unique<Tokenizer>(Tokenizer::from_metadata(mf.meta));
    } catch (const Error &) {
    }
    if (tok) exercise_tokenizer(*tok);
    try {
        const std::string name = chat_template_resolve("", mf.meta);
        (void) chat_format(name, {{"system", "s"}, {"user", "u"}}, true, tok && tok->bos() >= 0 ? tok->token_text(tok->bos()) : "");
    } catch (const Error &) {
    }
    try {
        exercise_llama(mf, tok.get());
    } catch (const Error &) {
    }
}

}  // namespace quill_fuzz
