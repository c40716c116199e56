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

MappedFile::MappedFile(const std::string & path) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error("%s: cannot open: %s", path.c_str(), strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        throw_error("%s: not a regular file", path.c_str());
    }
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
        FILE * f = fopen(path.c_str(), "rb");
        if (!f) throw_error("%s: cannot open: %s", path.c_str(), strerror(errno));
        size_t n = fread(magic, 1, 4, f);
        fclose(f);
        if (n < 4) throw_error("%s: file too short to be a model (%zu bytes)", path.c_str(), n);
    }
    if (memcmp(magic, "QUIL", 4) == 0) return load_quill(path, opt);
    if (memcmp(magic, "GGUF", 4) == 0) return load_gguf(path, opt);
    if (path.size() > 4 && path.compare(path.size() - 4, 4, ".bin") == 0) return load_llama2c(path, opt);
    throw_error("%s: unknown model format (not a .quill or .gguf file, a llama2.c .bin checkpoint, or a Hugging Face directory)",
                path.c_str());
}

}  // namespace quill
