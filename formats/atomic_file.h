// An output file that appears whole or not at all, and never follows a link planted where it is written.
//
// On Linux the data goes to an unnamed file made with open(dir, O_TMPFILE): it has no name for a planted symlink
// to redirect, and the kernel frees it when the process dies, however it dies (SIGKILL included). commit() gives it
// its name: linkat() straight to the output path when nothing is there, else to a fresh random name in the same
// folder that rename() moves over the old file (a symlink at the output path is replaced, never followed).
// Where O_TMPFILE is not supported (some file systems) or QUILL_NO_O_TMPFILE=1 is set, the data goes to a
// random name created with O_CREAT|O_EXCL|O_NOFOLLOW, which SIGINT/SIGTERM/SIGHUP remove before the process
// ends (only SIGKILL can leave it there).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace quill {

class AtomicFile {
public:
    // Creates the temporary file in the output's folder. Throws quill::Error when it cannot.
    explicit AtomicFile(const std::string & path);
    ~AtomicFile();  // without commit(): the output path is untouched and nothing is left behind
    AtomicFile(const AtomicFile &) = delete;
    AtomicFile & operator=(const AtomicFile &) = delete;

    void pwrite(const void * data, size_t n, uint64_t offset);
    void append(const void * data, size_t n);  // at the end of what append() wrote so far
    void truncate(uint64_t size);
    // fsync, then give the file its name (replacing what was there), then fsync the folder.
    void commit();

    const std::string & path() const { return path_; }
    bool unnamed() const { return tmp_name_.empty(); }  // true on the O_TMPFILE path

private:
    std::string path_, dir_, tmp_name_;
    int fd_ = -1;
    int slot_ = -1;  // signal-cleanup registration of tmp_name_
    uint64_t append_off_ = 0;
    bool committed_ = false;
};

}  // namespace quill
