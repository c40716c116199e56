#include "formats/model_file.h"

#include "ggml-lite/common.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace quill {

int64_t TensorData::n_elements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

int64_t TensorData::n_rows() const {
    int64_t n = 1;
    for (size_t k = 1; k < ne.size(); ++k) n *= ne[k];
    return n;
}

const TensorData * ModelFile::find(const std::string & name) const {
    for (const TensorData & t : tensors) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

const TensorData & ModelFile::get(const std::string & name) const {
    const TensorData * t = find(name);
    if (!t) throw_error("%s: tensor '%s' is missing", path.c_str(), name.c_str());
    return *t;
}

TensorData & ModelFile::add_owned_uninit(const std::string & name, gl_type type, std::vector<int64_t> ne) {
    size_t nbytes = 0;
    if (!gl_nbytes_checked(type, ne.data(), (int) ne.size(), &nbytes))
        throw_error("tensor '%s': invalid shape for type %s", name.c_str(), gl_type_name(type));
    std::shared_ptr<uint8_t> buf(new uint8_t[nbytes](), std::default_delete<uint8_t[]>());
    owners.push_back(buf);
    TensorData t;
    t.name = name;
    t.type = type;
    t.ne = std::move(ne);
    t.data = buf.get();
    t.nbytes = nbytes;
    tensors.push_back(std::move(t));
    return tensors.back();
}

TensorData & ModelFile::add_owned(const std::string & name, gl_type type, std::vector<int64_t> ne, const void * data, size_t nbytes) {
    TensorData & t = add_owned_uninit(name, type, std::move(ne));
    if (t.nbytes != nbytes) throw_error("tensor '%s': %zu bytes given, shape needs %zu", name.c_str(), nbytes, t.nbytes);
    memcpy(const_cast<uint8_t *>(t.data), data, nbytes);
    return t;
}

namespace {

// Opens `path` for reading without blocking (a FIFO with no writer would block a plain open) and makes sure it is
// a regular file. Returns the descriptor; throws quill::Error naming the file otherwise.
int open_regular(const std::string & path, struct stat & st) {
    const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw_error("%s: cannot open: %s", path.c_str(), strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        const bool dir = S_ISDIR(st.st_mode);
        close(fd);
        throw_error("%s: not a regular file%s", path.c_str(), dir ? " (a directory)" : "");
    }
    return fd;
}

}  // namespace

std::string read_file_bounded(const std::string & path, size_t max_bytes) {
    struct stat st;
    const int fd = open_regular(path, st);
    if ((uint64_t) st.st_size > max_bytes) {
        close(fd);
        throw_error("%s: file too large (%lld bytes; the limit is %zu)", path.c_str(), (long long) st.st_size, max_bytes);
    }
    std::string s;
    s.reserve((size_t) st.st_size);
    char buf[1 << 16];
    for (;;) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            close(fd);
            throw_error("%s: read failed: %s", path.c_str(), strerror(e));
        }
        if (n == 0) break;
        s.append(buf, (size_t) n);
        if (s.size() > max_bytes) {  // the file grew while being read
            close(fd);
            throw_error("%s: file too large (the limit is %zu bytes)", path.c_str(), max_bytes);
        }
    }
    close(fd);
    return s;
}

MappedFile::MappedFile(const std::string & path) {
    struct stat st;
    int fd = open_regular(path, st);
    if (fd < 0) throw_error("%s: cannot open: %s", path.c_str(), strerror(errno));
    size = (size_t) st.st_size;
    if (size > 0) {
        void * p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            throw_error("%s: cannot map: %s", path.c_str(), strerror(e));
        }
        data = (const uint8_t *) p;
    }
    close(fd);
}

MappedFile::~MappedFile() {
    if (data) munmap((void *) data, size);
}

ModelFile load_model(const std::string & path, const LoadOptions & opt) {
    struct stat st;
    if (stat(path.c_str(), &st) != 0) throw_error("%s: no such file or directory", path.c_str());
    if (S_ISDIR(st.st_mode)) return load_hf(path, opt);
    char magic[4] = {0, 0, 0, 0};
    {
        struct stat fst;
        const int fd = open_regular(path, fst);  // a FIFO or device is refused, not waited on
        ssize_t n;
        do n = pread(fd, magic, 4, 0);
        while (n < 0 && errno == EINTR);
        close(fd);
        if (n < 4) throw_error("%s: file too short to be a model (%zd bytes)", path.c_str(), n < 0 ? (ssize_t) 0 : n);
    }
    if (memcmp(magic, "QUIL", 4) == 0) return load_quill(path, opt);
    if (memcmp(magic, "GGUF", 4) == 0) return load_gguf(path, opt);
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".bin") == 0) return load_llama2c(path, opt);
    throw_error("%s: unknown model format (not a .quill or .gguf file, a llama2.c .bin checkpoint, or a Hugging Face directory)",
                path.c_str());
}

}  // namespace quill
