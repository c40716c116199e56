// Fuzz target: the .quill reader (formats/quill_file.cpp) through load_model, then what a loaded model feeds.
//
// The header and every tensor carry XXH3 checksums, so almost every mutation would stop at "checksum mismatch".
// The target therefore loads each input twice: as it is (the checksum checks themselves), and, when the header
// can be walked, with the checksums recomputed ("fixed up") so that mutations reach the code after them.
#include "formats/byte_reader.h"
#include "formats/meta_io.h"
#include "formats/quill_file.h"
#include "tests/fuzz/fuzz_util.h"

#include <xxhash.h>

using namespace quill;

namespace {

// Recomputes the header checksum and the tensor checksums of a quill file in place, walking the header as
// load_quill does. Returns false (leaving the bytes alone) when the header cannot be walked.
bool fix_checksums(std::string & f) {
    try {
        ByteReader r((const uint8_t *) f.data(), f.size(), "fixup");
        r.skip(4, "magic");
        r.read<uint32_t>("version");
        const uint32_t alignment = r.read<uint32_t>("alignment");
        r.read<uint32_t>("reserved");
        const uint64_t n_kv = r.read<uint64_t>("metadata count");
        const uint64_t n_tensors = r.read<uint64_t>("tensor count");
        if (n_kv > (1u << 20) || n_tensors > (1u << 20) || alignment == 0 || alignment > 65536) return false;
        for (uint64_t k = 0; k < n_kv; ++k) {
            const std::string key = r.read_string<uint64_t>("metadata key", 1 << 16);
            (void) read_meta_value(r, key);
        }
        struct Loc { size_t checksum_pos; uint64_t offset, nbytes; };
        std::vector<Loc> locs;
        for (uint64_t k = 0; k < n_tensors; ++k) {
            r.read_string<uint64_t>("tensor name", 1 << 16);
            r.read<uint32_t>("tensor type");
            const uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
            if (n_dims > 4) return false;
            r.skip(8 * (size_t) n_dims, "tensor dimensions");
            Loc l;
            l.offset = r.read<uint64_t>("tensor offset");
            l.nbytes = r.read<uint64_t>("tensor size");
            l.checksum_pos = r.pos();
            r.skip(8, "tensor checksum");
            r.read_string<uint64_t>("tensor origin", 1 << 16);
            locs.push_back(l);
        }
        const size_t hashed = r.pos();
        r.need(8, "header checksum");
        const uint64_t data_start = (hashed + 8 + alignment - 1) / alignment * alignment;
        for (const Loc & l : locs) {
            if (data_start > f.size() || l.offset > f.size() - data_start || l.nbytes > f.size() - data_start - l.offset) continue;
            const uint64_t c = XXH3_64bits(f.data() + data_start + l.offset, l.nbytes);
            memcpy(&f[l.checksum_pos], &c, 8);
        }
        const uint64_t h = XXH3_64bits(f.data(), hashed);
        memcpy(&f[hashed], &h, 8);
        return true;
    } catch (const Error &) {
        return false;
    }
}

}  // namespace

int quill_fuzz_quill(const uint8_t * data, size_t size) {
    const std::string & dir = quill_fuzz::scratch_dir("quill");
    std::string path = quill_fuzz::write_scratch(dir, "model.quill", data, size);
    bool loaded = false;
    try {
        ModelFile mf = load_model(path);  // dispatch by magic, as the CLI and the server do
        quill_fuzz::exercise_model(mf);
        loaded = true;
    } catch (const Error &) {
    }
    if (loaded || size < 4 || memcmp(data, "QUIL", 4) != 0) return 0;

    std::string fixed((const char *) data, size);
    if (!fix_checksums(fixed) || fixed == std::string((const char *) data, size)) return 0;
    path = quill_fuzz::write_scratch(dir, "model.quill", fixed.data(), fixed.size());
    LoadOptions opt;
    opt.verify = (size % 2) == 0;  // both settings of tensor verification
    quill_fuzz::load_and_exercise([&] { return load_quill(path, opt); });
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_quill, false)
QUILL_FUZZ_MODEL_MUTATOR
