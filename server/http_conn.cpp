// The connection layer under httplib: a growing task queue with a connection cap, a socket stream with a header
// deadline, and the keep-alive loop (see http_conn.h).
#include "server/http_conn.h"

#include "server/metrics.h"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace quill {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kStopCheckMs = 50;                        // how often a waiting connection looks for shutdown
constexpr std::chrono::seconds kIdleThreadExit(30);     // an idle connection thread ends after this long

// Set by ConnQueue while it runs a connection's task on the accepting thread: refuse it (503) instead of serving.
thread_local bool t_reject = false;

// Starts a thread per connection, reusing idle ones, up to `cap` connections queued or running; beyond that the
// task runs at once on the calling (accepting) thread with t_reject set, and HttpServer answers 503 and closes.
class ConnQueue final : public httplib::TaskQueue {
public:
    explicit ConnQueue(int cap) : cap_(cap) {}
    ~ConnQueue() override { shutdown(); }

    void enqueue(std::function<void()> fn) override {
        std::vector<std::thread> finished;
        bool refuse = false;
        {
            std::lock_guard<std::mutex> lk(mu_);
            for (int id : exited_) {
                auto it = threads_.find(id);
                if (it != threads_.end()) {
                    finished.push_back(std::move(it->second));
                    threads_.erase(it);
                }
            }
            exited_.clear();
            if ((int) jobs_.size() + running_ >= cap_) {
                refuse = true;
            } else {
                jobs_.push_back(std::move(fn));
                if ((int) jobs_.size() <= idle_) {
                    cv_.notify_one();
                } else {
                    const int id = next_id_++;
                    try {
                        threads_.emplace(id, std::thread([this, id] { worker(id); }));
                    } catch (const std::exception &) {  // no more threads: refuse this connection
                        fn = std::move(jobs_.back());
                        jobs_.pop_back();
                        refuse = true;
                    }
                }
            }
        }
        for (std::thread & t : finished) t.join();
        if (refuse) {
            t_reject = true;
            fn();
            t_reject = false;
        }
    }

    void shutdown() override {
        std::map<int, std::thread> threads;
        {
            std::lock_guard<std::mutex> lk(mu_);
            shutdown_ = true;
            threads.swap(threads_);
        }
        cv_.notify_all();
        for (auto & t : threads) t.second.join();
    }

private:
    void worker(int id) {
        std::unique_lock<std::mutex> lk(mu_);
        for (;;) {
            ++idle_;
            const bool woken = cv_.wait_for(lk, kIdleThreadExit, [&] { return !jobs_.empty() || shutdown_; });
            --idle_;
            if (jobs_.empty()) {
                if (shutdown_ || !woken) break;
                continue;
            }
            std::function<void()> fn = std::move(jobs_.front());
            jobs_.pop_front();
            ++running_;
            lk.unlock();
            fn();
            fn = nullptr;
            lk.lock();
            --running_;
        }
        if (!shutdown_) exited_.push_back(id);  // joined by the next enqueue (or by shutdown)
    }

    const int cap_;
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void()>> jobs_;
    std::map<int, std::thread> threads_;
    std::vector<int> exited_;
    int idle_ = 0, running_ = 0, next_id_ = 0;
    bool shutdown_ = false;
};

int ms_until(Clock::time_point t, Clock::time_point now) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
    return (int) std::max<int64_t>(0, std::min<int64_t>(ms, 1 << 30));
}

Clock::duration seconds(double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); }

// One connection's socket, as httplib reads and writes it.
class ConnStream final : public httplib::Stream {
public:
    ConnStream(int fd, const HttpServer & svr) : fd_(fd), svr_(svr) {}

    // --- the keep-alive loop's side ---

    // Waits up to `timeout` for the next request's first byte (or EOF). False on timeout or shutdown.
    bool wait_request(double timeout) {
        if (pos_ < len_) return true;
        const auto until = Clock::now() + seconds(timeout);
        for (;;) {
            if (svr_.stopping()) return false;
            const auto now = Clock::now();
            if (now >= until) return false;
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, std::min(kStopCheckMs, ms_until(until, now)));
            if (r > 0) return true;
            if (r < 0 && errno != EINTR) return false;
        }
    }
    // The request line and headers must be in by `deadline`.
    void begin_headers(Clock::time_point deadline) {
        in_headers_ = true;
        header_deadline_ = deadline;
        header_bytes_ = 0;
        header_timed_out_ = false;
    }
    // Called (through process_request's setup_request) once the headers are parsed.
    void end_headers() { in_headers_ = false; }
    bool header_failed() const { return in_headers_; }  // the headers never completed
    bool header_timed_out() const { return header_timed_out_; }

    // The peer closed or reset the connection (data it sent but we have not read yet counts as alive).
    bool peer_gone() const {
        pollfd p{fd_, POLLIN, 0};
        int r;
        do r = ::poll(&p, 1, 0);
        while (r < 0 && errno == EINTR);
        if (r < 0) return true;
        if (r == 0) return false;
        if (p.revents & (POLLERR | POLLNVAL)) return true;
        char c;
        ssize_t n;
        do n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n > 0) return false;
        if (n == 0) return true;
        return !(errno == EAGAIN || errno == EWOULDBLOCK);
    }

    // --- httplib::Stream ---

    bool is_readable() const override { return pos_ < len_ || wait_readable(); }

    bool is_writable() const override { return wait_writable() && !peer_gone(); }

    ssize_t read(char * ptr, size_t size) override {
        if (size == 0) return 0;
        if (in_headers_ && header_bytes_ >= HttpServer::kMaxHeaderBytes) return -1;
        if (pos_ >= len_) {
            pos_ = len_ = 0;
            // A large read of the body goes straight to the caller; everything else through the buffer, since
            // httplib reads the request line and headers one byte at a time.
            const bool direct = !in_headers_ && size >= sizeof buf_;
            const ssize_t n = recv_some(direct ? ptr : buf_, direct ? size : sizeof buf_);
            if (n <= 0 || direct) return n;
            len_ = (size_t) n;
        }
        const size_t n = std::min(size, len_ - pos_);
        memcpy(ptr, buf_ + pos_, n);
        pos_ += n;
        if (in_headers_) header_bytes_ += n;
        return (ssize_t) n;
    }

    ssize_t write(const char * ptr, size_t size) override {
        for (;;) {
            const ssize_t n = ::send(fd_, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n >= 0) return n;
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
            if (!wait_writable()) return -1;
        }
    }

    void get_remote_ip_and_port(std::string & ip, int & port) const override {
        sockaddr_storage a;
        socklen_t len = sizeof a;
        if (getpeername(fd_, (sockaddr *) &a, &len) == 0) address(a, len, ip, port);
    }
    void get_local_ip_and_port(std::string & ip, int & port) const override {
        sockaddr_storage a;
        socklen_t len = sizeof a;
        if (getsockname(fd_, (sockaddr *) &a, &len) == 0) address(a, len, ip, port);
    }
    socket_t socket() const override { return fd_; }

private:
    static void address(const sockaddr_storage & a, socklen_t len, std::string & ip, int & port) {
        if (a.ss_family == AF_INET) port = ntohs(((const sockaddr_in *) &a)->sin_port);
        else if (a.ss_family == AF_INET6) port = ntohs(((const sockaddr_in6 *) &a)->sin6_port);
        else return;
        char host[NI_MAXHOST];
        if (getnameinfo((const sockaddr *) &a, len, host, sizeof host, nullptr, 0, NI_NUMERICHOST) == 0) ip = host;
    }

    // Until data (or EOF) can be read: false on the read timeout, the header deadline or shutdown.
    bool wait_readable() const {
        const auto now0 = Clock::now();
        auto until = now0 + seconds(svr_.read_timeout());
        if (in_headers_) until = std::min(until, header_deadline_);
        for (;;) {
            const auto now = Clock::now();
            if (now >= until) {
                if (in_headers_ && now >= header_deadline_) header_timed_out_ = true;
                return false;
            }
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, std::min(kStopCheckMs, ms_until(until, now)));
            if (r > 0) return true;
            if (r < 0 && errno != EINTR) return false;
            if (svr_.stopping()) return false;
        }
    }

    bool wait_writable() const {
        const auto until = Clock::now() + seconds(svr_.write_timeout());
        for (;;) {
            const auto now = Clock::now();
            if (now >= until) return false;
            pollfd p{fd_, POLLOUT, 0};
            const int r = ::poll(&p, 1, ms_until(until, now));
            if (r > 0) return (p.revents & (POLLERR | POLLNVAL)) == 0;
            if (r < 0 && errno != EINTR) return false;
        }
    }

    ssize_t recv_some(char * dst, size_t cap) {
        for (;;) {
            if (!wait_readable()) return -1;
            const ssize_t n = ::recv(fd_, dst, cap, MSG_DONTWAIT);
            if (n >= 0) return n;
            if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
        }
    }

    const int fd_;
    const HttpServer & svr_;
    char buf_[4096];
    size_t pos_ = 0, len_ = 0;
    bool in_headers_ = false;
    mutable bool header_timed_out_ = false;
    Clock::time_point header_deadline_;
    size_t header_bytes_ = 0;
};

// The stream of the connection this thread serves, for http_client_gone() and http_header_timed_out().
thread_local ConnStream * t_conn = nullptr;

}  // namespace

bool http_client_gone() { return t_conn && t_conn->peer_gone(); }
bool http_header_timed_out() { return t_conn && t_conn->header_timed_out(); }
void http_peer(std::string & ip, int & port) {
    if (t_conn) t_conn->get_remote_ip_and_port(ip, port);
}

HttpServer::HttpServer(ConnLimits limits, Metrics & metrics) : limits_(std::move(limits)), metrics_(metrics) {
    const int cap = std::max(1, limits_.max_connections);
    new_task_queue = [cap] { return new ConnQueue(cap); };
}

void HttpServer::raise_backlog(int backlog) {
    const socket_t fd = svr_sock_;
    if (fd != INVALID_SOCKET) ::listen(fd, backlog);
}

// Over the cap: a short 503, on the accepting thread, without waiting for anything.
void HttpServer::reject(socket_t sock) {
    metrics_.connections_rejected++;
    const std::string & body = limits_.busy_body;
    const std::string msg = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\nRetry-After: 1\r\nConnection: close\r\n\r\n" + body;
    ssize_t n;
    do n = ::send(sock, msg.data(), msg.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    ::shutdown(sock, SHUT_WR);
    // Whatever the client already sent is read and dropped, so that closing sends a FIN rather than a reset that
    // could discard the 503 before the client reads it.
    char buf[4096];
    while (::recv(sock, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    ::close(sock);
}

bool HttpServer::process_and_close_socket(socket_t sock) {
    if (t_reject) {
        reject(sock);
        return false;
    }
    metrics_.connections_open++;
    ConnStream strm(sock, *this);
    t_conn = &strm;
    bool ret = false;
    const auto header_timeout = seconds(limits_.header_timeout);
    const std::function<void(httplib::Request &)> setup = [&strm](httplib::Request &) { strm.end_headers(); };
    for (size_t left = keep_alive_max_count_; left > 0 && !stopping(); --left) {
        if (!strm.wait_request((double) keep_alive_timeout_sec_)) break;
        strm.begin_headers(Clock::now() + header_timeout);
        bool closed = false;
        ret = process_request(strm, left == 1, closed, setup);
        if (strm.header_timed_out()) metrics_.header_timeouts++;
        if (!ret || closed || strm.header_failed()) break;
    }
    t_conn = nullptr;
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    metrics_.connections_open--;
    return ret;
}

}  // namespace quill
