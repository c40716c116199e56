// Test harness for `quill serve`: starts the real binary on a free loopback port with stories260K, waits for
// /health, and always stops it (the destructor; the child also dies with the test process). Plus small HTTP
// helpers on cpp-httplib's client and an SSE parser.
#pragma once

#include "server/http_lib.h"
#include "tests/test_util.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace srvtest {

using json = nlohmann::json;

inline std::string read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

class ServerProcess {
public:
    // extra: arguments after the model ones; env: "NAME=value" entries added to the environment.
    explicit ServerProcess(const std::vector<std::string> & extra = {}, const std::vector<std::string> & env = {}) {
        ::signal(SIGPIPE, SIG_IGN);  // a client writing to a connection the server closed must get EPIPE, not die
        dir_ = make_temp_dir();
        log_ = dir_ + "/server.log";
        const std::string models = shared_path("models/stories260K");
        std::vector<std::string> args = {quill_binary(), "serve", "-m", models + "/stories260K.bin", "--tokenizer", models + "/tok512.bin",
                                         "--port", "0", "-t", "1"};
        args.insert(args.end(), extra.begin(), extra.end());
        const pid_t parent = getpid();
        pid_ = fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test process
            if (getppid() != parent) _exit(127);
            int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            for (const std::string & e : env) putenv(strdup(e.c_str()));
            std::vector<char *> argv;
            for (const std::string & a : args) argv.push_back(const_cast<char *>(a.c_str()));
            argv.push_back(nullptr);
            execv(argv[0], argv.data());
            _exit(127);
        }
        // The port is printed once the socket is bound; then /health must answer.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (port_ == 0) {
            const std::string log = read_file(log_);
            const size_t at = log.find("listening on http://127.0.0.1:");
            if (at != std::string::npos) port_ = std::atoi(log.c_str() + at + 30);
            if (port_ == 0) {
                int st;
                if (waitpid(pid_, &st, WNOHANG) == pid_) {
                    pid_ = -1;
                    FAIL("quill serve exited at start-up:\n" << log);
                }
                if (std::chrono::steady_clock::now() > deadline) {
                    stop(SIGKILL, 2.0);
                    FAIL("quill serve did not start within 30 s:\n" << log);
                }
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
        }
        httplib::Client c = client();
        for (;;) {
            auto r = c.Get("/health");
            if (r && r->status == 200) break;
            if (std::chrono::steady_clock::now() > deadline) {
                stop(SIGKILL, 2.0);
                FAIL("/health did not answer 200 within 30 s:\n" << log());
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    ~ServerProcess() {
        stop(SIGTERM, 10.0);
        if (!dir_.empty()) {
            unlink(log_.c_str());
            rmdir(dir_.c_str());
        }
    }
    ServerProcess(const ServerProcess &) = delete;
    ServerProcess & operator=(const ServerProcess &) = delete;

    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_); }
    const std::string & dir() const { return dir_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

    httplib::Client client(int read_timeout_sec = 60) const {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(read_timeout_sec, 0);
        c.set_connection_timeout(5, 0);
        return c;
    }

    void signal(int sig) {
        if (pid_ > 0) kill(pid_, sig);
    }

    // Sends sig and waits up to timeout seconds for the exit (then SIGKILL). Returns the exit code, or -1 when it
    // did not exit by itself (killed or crashed), or -2 when it had already been stopped.
    int stop(int sig = SIGTERM, double timeout = 10.0) {
        if (pid_ <= 0) return -2;
        kill(pid_, sig);
        return wait_exit(timeout);
    }

    // Waits up to timeout seconds for the process to exit by itself (then SIGKILL); same results as stop().
    int wait_exit(double timeout) {
        if (pid_ <= 0) return -2;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
        int st = 0;
        while (waitpid(pid_, &st, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &st, 0);
                pid_ = -1;
                return -1;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }

private:
    std::string dir_, log_;
    pid_t pid_ = -1;
    int port_ = 0;
};

struct HttpResult {
    int status = 0;       // 0: no response (connection error or cancelled)
    std::string body;
    httplib::Headers headers;
};

inline HttpResult post(httplib::Client & c, const std::string & path, const std::string & body, const httplib::Headers & h = {},
                       const std::string & type = "application/json") {
    HttpResult out;
    auto r = c.Post(path.c_str(), h, body, type.c_str());
    if (r) out.status = r->status, out.body = r->body, out.headers = r->headers;
    return out;
}

inline HttpResult get(httplib::Client & c, const std::string & path, const httplib::Headers & h = {}) {
    HttpResult out;
    auto r = c.Get(path.c_str(), h);
    if (r) out.status = r->status, out.body = r->body, out.headers = r->headers;
    return out;
}

// A POST whose response body is handed to on_data as it arrives; on_data returning false drops the connection.
inline HttpResult post_stream(httplib::Client & c, const std::string & path, const std::string & body,
                              const std::function<bool(const std::string & all)> & on_data, const httplib::Headers & h = {}) {
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = h;
    req.body = body;
    req.set_header("Content-Type", "application/json");
    HttpResult out;
    req.content_receiver = [&](const char * data, size_t n, uint64_t, uint64_t) {
        out.body.append(data, n);
        return on_data(out.body);
    };
    auto r = c.send(req);
    if (r) out.status = r->status, out.headers = r->headers;
    return out;
}

// Parses an SSE body: every "data: " payload in order; done tells whether "data: [DONE]" came last.
struct Sse {
    std::vector<json> events;
    bool done = false;
    bool ok = true;  // every payload was JSON
};

inline Sse parse_sse(const std::string & body) {
    Sse s;
    size_t pos = 0;
    while (pos < body.size()) {
        size_t end = body.find("\n\n", pos);
        if (end == std::string::npos) break;
        const std::string ev = body.substr(pos, end - pos);
        pos = end + 2;
        if (ev.rfind("data: ", 0) != 0) continue;
        const std::string data = ev.substr(6);
        if (data == "[DONE]") {
            s.done = true;
            continue;
        }
        s.done = false;
        try {
            s.events.push_back(json::parse(data));
        } catch (...) {
            s.ok = false;
        }
    }
    return s;
}

// Text of choice `index` in a stream (chat delta.content or completion text).
inline std::string sse_text(const Sse & s, int index = 0) {
    std::string t;
    for (const json & e : s.events) {
        if (!e.contains("choices")) continue;
        for (const json & c : e["choices"]) {
            if (c.value("index", -1) != index) continue;
            if (c.contains("delta") && c["delta"].contains("content") && c["delta"]["content"].is_string()) t += c["delta"]["content"].get<std::string>();
            if (c.contains("text") && c["text"].is_string()) t += c["text"].get<std::string>();
        }
    }
    return t;
}

inline std::string sse_finish(const Sse & s, int index = 0) {
    for (const json & e : s.events) {
        if (!e.contains("choices")) continue;
        for (const json & c : e["choices"]) {
            if (c.value("index", -1) == index && c.contains("finish_reason") && c["finish_reason"].is_string()) return c["finish_reason"];
        }
    }
    return "";
}

// A value from /metrics ("name" or "name{labels}"), -1 when absent.
inline double metric(httplib::Client & c, const std::string & name) {
    auto r = c.Get("/metrics");
    if (!r || r->status != 200) return -1;
    std::istringstream in(r->body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name + " ", 0) == 0) return std::atof(line.c_str() + name.size() + 1);
    }
    return -1;
}

// Polls until pred() holds or timeout seconds pass; returns pred()'s last value.
inline bool eventually(const std::function<bool()> & pred, double timeout) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
}

// An OpenAI error body: {"error": {"message": string, "type": string, "param", "code"}}.
inline bool is_error_shape(const std::string & body) {
    json j;
    try {
        j = json::parse(body);
    } catch (...) {
        return false;
    }
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return false;
    const json & e = j["error"];
    return e.contains("message") && e["message"].is_string() && !e["message"].get<std::string>().empty() && e.contains("type") &&
           e["type"].is_string() && e.contains("param") && e.contains("code");
}

}  // namespace srvtest
