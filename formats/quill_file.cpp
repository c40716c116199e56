// quill file reader and writer; formats/SPEC.md is the source of truth for every field.
#include "formats/quill_file.h"

#include "formats/atomic_file.h"
#include "formats/byte_reader.h"
#include "formats/meta_io.h"

#include <cstring>
#include <memory>
#include <unordered_set>
#include <xxhash.h>

namespace quill {

uint64_t quill_checksum(const void * data, size_t n) { return XXH3_64bits(data, n); }

static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// ---- reader ---------------------------------------------------------------------------------------------------

ModelFile load_quill(const std::string & path, const LoadOptions & opt) {
    auto map = std::make_shared<MappedFile>(path);
    ModelFile mf;
    mf.path = path;
    mf.format = "quill";
    mf.owners.push_back(map);
    ByteReader r(map->data, map->size, path);

    r.need(4, "magic");
    if (memcmp(r.ptr(), "QUIL", 4) != 0) throw_error("%s: not a quill file (bad magic)", path.c_str());
    r.skip(4, "magic");
    uint32_t version = r.read<uint32_t>("version");
    if (version != QUILL_VERSION) throw_error("%s: unsupported quill file version %u (this build reads version %u)", path.c_str(), version, QUILL_VERSION);
    uint32_t alignment = r.read<uint32_t>("alignment");
    if (alignment < 64 || alignment > 65536 || (alignment & (alignment - 1)) != 0)
        throw_error("%s: invalid alignment %u", path.c_str(), alignment);
    r.read<uint32_t>("reserved");
    uint64_t n_kv = r.read<uint64_t>("metadata count");
    uint64_t n_tensors = r.read<uint64_t>("tensor count");
    if (n_kv > (1u << 20) || n_tensors > (1u << 20))
        throw_error("%s: absurd header counts (%llu metadata keys, %llu tensors)", path.c_str(), (unsigned long long) n_kv, (unsigned long long) n_tensors);

    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = r.read_string<uint64_t>("metadata key", 1 << 16);
        mf.meta.set(key, read_meta_value(r, key));
    }

    struct Entry { std::string name; uint32_t type; std::vector<int64_t> ne; uint64_t offset, nbytes, checksum; std::string origin; };
    std::vector<Entry> entries;
    entries.reserve((size_t) n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
        Entry e;
        e.name = r.read_string<uint64_t>("tensor name", 1 << 16);
        e.type = r.read<uint32_t>("tensor type");
        uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
        if (n_dims < 1 || n_dims > 4) throw_error("%s: tensor '%s' has %u dimensions (1 to 4 allowed)", path.c_str(), e.name.c_str(), n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) e.ne.push_back((int64_t) r.read<uint64_t>("tensor dimension"));
        e.offset = r.read<uint64_t>("tensor offset");
        e.nbytes = r.read<uint64_t>("tensor size");
        e.checksum = r.read<uint64_t>("tensor checksum");
        e.origin = r.read_string<uint64_t>("tensor origin", 1 << 16);
        entries.push_back(std::move(e));
    }
    const size_t hashed = r.pos();
    uint64_t stored = r.read<uint64_t>("header checksum");
    if (XXH3_64bits(map->data, hashed) != stored)
        throw_error("%s: header checksum mismatch: the file is corrupt", path.c_str());

    const uint64_t data_start = align_up(r.pos(), alignment);
    std::unordered_set<std::string> names;
    for (size_t k = 0; k < entries.size(); ++k) {
        const Entry & e = entries[k];
        if (!gl_type_valid(e.type))
            throw_error("%s: tensor '%s' has unknown type id %u (this build knows 0..%u)", path.c_str(), e.name.c_str(), e.type, GL_TYPE_COUNT - 1);
        TensorData t;
        t.name = e.name;
        t.type = (gl_type) e.type;
        t.ne = e.ne;
        size_t nbytes = 0;
        if (!gl_nbytes_checked(t.type, t.ne.data(), (int) t.ne.size(), &nbytes)) {
            std::string dims;
            for (int64_t d : e.ne) dims += strfmt("%s%lld", dims.empty() ? "" : " x ", (long long) d);
            throw_error("%s: tensor '%s' has an invalid shape [%s] for type %s", path.c_str(), e.name.c_str(), dims.c_str(), gl_type_name(t.type));
        }
        if (nbytes != e.nbytes)
            throw_error("%s: tensor '%s' claims %llu bytes but its shape and type need %zu", path.c_str(), e.name.c_str(), (unsigned long long) e.nbytes, nbytes);
        if (e.offset % alignment != 0) throw_error("%s: tensor '%s' data is not aligned", path.c_str(), e.name.c_str());
        if (data_start > map->size || e.offset > map->size - data_start || e.nbytes > map->size - data_start - e.offset)
            throw_error("%s: truncated file: tensor '%s' data runs past the end (%zu bytes)", path.c_str(), e.name.c_str(), map->size);
        if (!names.insert(e.name).second) throw_error("%s: duplicate tensor '%s'", path.c_str(), e.name.c_str());
        t.data = map->data + data_start + e.offset;
        t.nbytes = nbytes;
        if (opt.verify && XXH3_64bits(t.data, t.nbytes) != e.checksum)
            throw_error("%s: checksum mismatch in tensor '%s': the file is corrupt", path.c_str(), e.name.c_str());
        mf.tensors.push_back(std::move(t));
    }
    return mf;
}

// ---- writer ---------------------------------------------------------------------------------------------------

QuillWriter::QuillWriter(const std::string & path, const Metadata & meta, std::vector<QuillTensorSpec> specs)
    : path_(path), meta_(meta), specs_(std::move(specs)) {
    std::unordered_set<std::string> names;
    for (const QuillTensorSpec & s : specs_) {
        size_t nb = 0;
        if (!gl_nbytes_checked(s.type, s.ne.data(), (int) s.ne.size(), &nb))
            throw_error("cannot write tensor '%s': invalid shape for type %s", s.name.c_str(), gl_type_name(s.type));
        if (!names.insert(s.name).second) throw_error("cannot write duplicate tensor '%s'", s.name.c_str());
        nbytes_.push_back(nb);
    }
    checksums_.assign(specs_.size(), 0);
    written_.assign(specs_.size(), false);
    // Offsets are fixed before the header is built; the header size does not depend on the checksums' values.
    uint64_t off = 0;
    for (uint64_t nb : nbytes_) {
        offsets_.push_back(off);
        off = align_up(off + nb, QUILL_ALIGNMENT);
    }
    data_start_ = align_up(build_header().size(), QUILL_ALIGNMENT);

    file_ = std::make_unique<AtomicFile>(path_);
}

QuillWriter::~QuillWriter() = default;

void QuillWriter::write_tensor(size_t i, const void * data, size_t nbytes) {
    GL_ASSERT(i < specs_.size());
    if (nbytes != nbytes_[i]) throw_error("tensor '%s': %zu bytes given, %llu expected", specs_[i].name.c_str(), nbytes, (unsigned long long) nbytes_[i]);
    file_->pwrite(data, nbytes, data_start_ + offsets_[i]);
    checksums_[i] = quill_checksum(data, nbytes);
    written_[i] = true;
}

std::string QuillWriter::build_header() const {
    std::string h;
    h.append("QUIL", 4);
    write_pod<uint32_t>(h, QUILL_VERSION);
    write_pod<uint32_t>(h, QUILL_ALIGNMENT);
    write_pod<uint32_t>(h, 0);
    write_pod<uint64_t>(h, meta_.size());
    write_pod<uint64_t>(h, specs_.size());
    for (const auto & kv : meta_.items()) {
        write_string(h, kv.first);
        write_meta_value(h, kv.second);
    }
    for (size_t i = 0; i < specs_.size(); ++i) {
        const QuillTensorSpec & s = specs_[i];
        write_string(h, s.name);
        write_pod<uint32_t>(h, (uint32_t) s.type);
        write_pod<uint32_t>(h, (uint32_t) s.ne.size());
        for (int64_t d : s.ne) write_pod<uint64_t>(h, (uint64_t) d);
        write_pod<uint64_t>(h, offsets_[i]);
        write_pod<uint64_t>(h, nbytes_[i]);
        write_pod<uint64_t>(h, checksums_[i]);
        write_string(h, s.origin);
    }
    write_pod<uint64_t>(h, XXH3_64bits(h.data(), h.size()));
    return h;
}

void QuillWriter::finish() {
    for (size_t i = 0; i < specs_.size(); ++i) {
        if (!written_[i]) throw_error("tensor '%s' was never written", specs_[i].name.c_str());
    }
    std::string h = build_header();
    GL_ASSERT(align_up(h.size(), QUILL_ALIGNMENT) == data_start_);
    h.resize(data_start_, '\0');
    file_->pwrite(h.data(), h.size(), 0);
    uint64_t end = specs_.empty() ? data_start_ : data_start_ + align_up(offsets_.back() + nbytes_.back(), QUILL_ALIGNMENT);
    file_->truncate(end);
    file_->commit();
    finished_ = true;
}

void save_quill(const std::string & path, const ModelFile & mf, const std::vector<std::string> & origins) {
    std::vector<QuillTensorSpec> specs;
    for (size_t i = 0; i < mf.tensors.size(); ++i) {
        const TensorData & t = mf.tensors[i];
        specs.push_back({t.name, t.type, t.ne, i < origins.size() ? origins[i] : std::string()});
    }
    QuillWriter w(path, mf.meta, std::move(specs));
    for (size_t i = 0; i < mf.tensors.size(); ++i) w.write_tensor(i, mf.tensors[i].data, mf.tensors[i].nbytes);
    w.finish();
}

}  // namespace quill
