#include "formats/atomic_file.h"

#include "ggml-lite/common.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <random>
#include <sys/stat.h>
#include <unistd.h>

namespace quill {

namespace {

// Named temporary files (the fallback path) that a signal must remove. Fixed storage, so that the handler only
// reads memory and calls unlink(), both async-signal-safe.
constexpr int kSlots = 16;
constexpr size_t kPathMax = 4096;
char g_paths[kSlots][kPathMax];
std::atomic<bool> g_used[kSlots];
std::mutex g_register_mutex;
bool g_handlers_installed = false;
struct sigaction g_previous[3];
const int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

void on_signal(int sig) {
    for (int i = 0; i < kSlots; ++i) {
        if (g_used[i].load()) unlink(g_paths[i]);
    }
    // Then whatever the process did before (the default: die by this signal, so the exit status tells).
    for (int k = 0; k < 3; ++k) {
        if (kSignals[k] == sig) sigaction(sig, &g_previous[k], nullptr);
    }
    raise(sig);
}

int register_path(const std::string & p) {
    if (p.size() >= kPathMax) return -1;
    std::lock_guard<std::mutex> lock(g_register_mutex);
    if (!g_handlers_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (int k = 0; k < 3; ++k) {
            struct sigaction old;
            sigaction(kSignals[k], nullptr, &old);
            g_previous[k] = old;
            // A signal the process ignores (nohup) stays ignored; one with its own handler keeps it.
            if (old.sa_handler == SIG_DFL) sigaction(kSignals[k], &sa, nullptr);
        }
        g_handlers_installed = true;
    }
    for (int i = 0; i < kSlots; ++i) {
        if (!g_used[i].load()) {
            memcpy(g_paths[i], p.c_str(), p.size() + 1);
            g_used[i].store(true);
            return i;
        }
    }
    return -1;  // more than kSlots outputs at once: still removed by the destructor, just not on a signal
}

void unregister_path(int slot) {
    if (slot < 0) return;
    std::lock_guard<std::mutex> lock(g_register_mutex);
    g_used[slot].store(false);
}

std::string dir_of(const std::string & path) {
    const size_t slash = path.rfind('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string base_of(const std::string & path) {
    const size_t slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string random_suffix() {
    static std::mutex m;
    static std::mt19937_64 rng(std::random_device{}() ^ ((uint64_t) getpid() << 32));
    std::lock_guard<std::mutex> lock(m);
    return strfmt("%016llx", (unsigned long long) rng());
}

// Gives the unnamed file open as `fd` the name `target` (fails with EEXIST when something is there). Through
// /proc/self/fd, which needs no privilege; without /proc, AT_EMPTY_PATH (which needs CAP_DAC_READ_SEARCH).
int link_fd(int fd, const std::string & target) {
    const std::string proc = strfmt("/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, target.c_str(), AT_SYMLINK_FOLLOW) == 0) return 0;
    const int e = errno;
    if (e == ENOENT && access("/proc/self/fd", F_OK) != 0) return linkat(fd, "", AT_FDCWD, target.c_str(), AT_EMPTY_PATH);
    errno = e;
    return -1;
}

bool env_no_tmpfile() {
    const char * v = getenv("QUILL_NO_O_TMPFILE");
    return v && *v && strcmp(v, "0") != 0;
}

}  // namespace

AtomicFile::AtomicFile(const std::string & path) : path_(path), dir_(dir_of(path)) {
    if (path.empty()) throw_error("no output path given");
    struct stat st;
    if (lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw_error("%s: is a directory", path.c_str());
#ifdef O_TMPFILE
    if (!env_no_tmpfile()) {
        fd_ = open(dir_.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
        if (fd_ < 0 && errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
            throw_error("%s: cannot create the output file in %s: %s", path.c_str(), dir_.c_str(), strerror(errno));
        if (fd_ < 0 && errno == ENOENT) throw_error("%s: the folder %s does not exist", path.c_str(), dir_.c_str());
    }
#endif
    if (fd_ < 0) {
        // Fallback: a fresh random name that must not exist (O_EXCL) and is never a link (O_NOFOLLOW). The name is
        // registered for removal on a signal before the file is created: registered after, a signal in between
        // (delivered to any of the process's threads) would leave it behind. Unlinking a name not created yet is
        // harmless; a name taken by another file (EEXIST, a 64-bit random collision) is unregistered at once.
        for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
            tmp_name_ = dir_ + "/." + base_of(path) + ".tmp." + random_suffix();
            slot_ = register_path(tmp_name_);
            fd_ = open(tmp_name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd_ >= 0) break;
            const int e = errno;
            unregister_path(slot_);
            slot_ = -1;
            if (e != EEXIST) throw_error("%s: cannot create: %s", tmp_name_.c_str(), strerror(e));
        }
        if (fd_ < 0) {
            tmp_name_.clear();
            throw_error("%s: cannot create a temporary file beside it", path.c_str());
        }
    }
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) close(fd_);
    if (!committed_ && !tmp_name_.empty()) unlink(tmp_name_.c_str());
    unregister_path(slot_);
}

void AtomicFile::pwrite(const void * data, size_t n, uint64_t off) {
    const char * p = (const char *) data;
    while (n > 0) {
        const ssize_t w = ::pwrite(fd_, p, n, (off_t) off);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw_error("%s: write failed: %s", path_.c_str(), strerror(errno));
        }
        p += w;
        n -= (size_t) w;
        off += (uint64_t) w;
    }
}

void AtomicFile::append(const void * data, size_t n) {
    pwrite(data, n, append_off_);
    append_off_ += n;
}

void AtomicFile::truncate(uint64_t size) {
    if (ftruncate(fd_, (off_t) size) != 0) throw_error("%s: cannot size the file: %s", path_.c_str(), strerror(errno));
}

void AtomicFile::commit() {
    if (committed_) return;
    if (fsync(fd_) != 0) throw_error("%s: fsync failed: %s", path_.c_str(), strerror(errno));
    if (tmp_name_.empty()) {
        // Straight to the output path when nothing is there: no moment with a stray name.
        if (link_fd(fd_, path_) != 0) {
            if (errno != EEXIST) throw_error("%s: cannot create: %s", path_.c_str(), strerror(errno));
            // Something is there (an old output, or a link): a fresh name beside it, then rename over it.
            std::string name;
            for (int attempt = 0; attempt < 16; ++attempt) {
                name = dir_ + "/." + base_of(path_) + ".tmp." + random_suffix();
                if (link_fd(fd_, name) == 0) break;
                if (errno != EEXIST) throw_error("%s: cannot create: %s", name.c_str(), strerror(errno));
                name.clear();
            }
            if (name.empty()) throw_error("%s: cannot create a temporary name beside it", path_.c_str());
            if (rename(name.c_str(), path_.c_str()) != 0) {
                const int e = errno;
                unlink(name.c_str());
                throw_error("cannot replace %s: %s", path_.c_str(), strerror(e));
            }
        }
    } else if (rename(tmp_name_.c_str(), path_.c_str()) != 0) {
        throw_error("cannot rename %s to %s: %s", tmp_name_.c_str(), path_.c_str(), strerror(errno));
    }
    committed_ = true;
    close(fd_);
    fd_ = -1;
    unregister_path(slot_);
    slot_ = -1;
    // The new name itself must survive a power cut.
    const int dfd = open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

}  // namespace quill
