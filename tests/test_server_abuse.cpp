// quill serve against abusive and unlucky clients, on loopback: slow-header connections ("slowloris") must not
// keep /health from answering and must be closed after --header-timeout; connections over --max-connections get a
// quick 503; a shutdown that cuts requests off says so with the status (non-streamed: 503 shutting_down) or with
// an error event before [DONE] (streamed); a non-streamed client that hangs up frees its slot at once; and an idle
// keep-alive connection does not hold up the shutdown.
#include "tests/server/harness.h"

#include <arpa/inet.h>
#include <atomic>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>

using namespace srvtest;

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// A blocking loopback connection (close-on-exec, so later servers do not inherit it); -1 when it fails.
int raw_connect(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t) port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, (const sockaddr *) &a, sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

bool raw_send(int fd, const std::string & s) { return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == (ssize_t) s.size(); }

// Reads until `until` has arrived (when not empty), EOF, an error or `timeout` seconds. eof: the peer closed.
std::string raw_read(int fd, double timeout, const std::string & until = "", bool * eof = nullptr) {
    std::string out;
    if (eof) *eof = false;
    const auto t0 = Clock::now();
    while (since(t0) < timeout) {
        if (!until.empty() && out.find(until) != std::string::npos) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) {
            if (eof) *eof = true;
            break;
        }
        out.append(buf, (size_t) n);
    }
    return out;
}

// Connections that send a request line and then one header line every 0.5 to 2 s, never finishing the headers.
// When the server closes one, it is noted (how long it lived, what it got) and opened again, so that `n` stay
// open until stop().
class Slowloris {
public:
    Slowloris(int port, int n) : port_(port), conns_((size_t) n) {
        thread_ = std::thread([this] { run(); });
    }
    ~Slowloris() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    int open() const { return open_; }
    // Filled by the thread; read after stop().
    std::vector<double> lifetimes;  // seconds from connect to the server closing the connection
    int answered_408 = 0, connect_failures = 0;

private:
    struct Conn {
        int fd = -1;
        Clock::time_point opened, next;
        int lines = 0;
        std::string got;
    };

    void run() {
        while (!stop_) {
            int n_open = 0;
            for (size_t i = 0; i < conns_.size(); ++i) {
                Conn & c = conns_[i];
                if (c.fd < 0) {
                    c = Conn{};
                    c.fd = raw_connect(port_);
                    if (c.fd < 0) {
                        connect_failures++;
                        continue;
                    }
                    c.opened = c.next = Clock::now();
                }
                if (Clock::now() >= c.next) {
                    const std::string line = c.lines == 0 ? "GET /health HTTP/1.1\r\n" : "X-Slow-" + std::to_string(c.lines) + ": zzz\r\n";
                    raw_send(c.fd, line);  // a failure shows as EOF/error below
                    c.lines++;
                    c.next = Clock::now() + std::chrono::milliseconds(500 + 250 * (int) (i % 7));  // 0.5 .. 2 s
                }
                ++n_open;
            }
            open_ = n_open;
            std::vector<pollfd> ps;
            for (Conn & c : conns_) ps.push_back(pollfd{c.fd, POLLIN, 0});
            if (::poll(ps.data(), ps.size(), 50) <= 0) continue;
            for (size_t i = 0; i < conns_.size(); ++i) {
                Conn & c = conns_[i];
                if (c.fd < 0 || !(ps[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                char buf[4096];
                const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n > 0) {
                    c.got.append(buf, (size_t) n);
                    continue;
                }
                if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
                lifetimes.push_back(since(c.opened));
                if (c.got.rfind("HTTP/1.1 408", 0) == 0) answered_408++;
                ::close(c.fd);
                c.fd = -1;
            }
        }
        for (Conn & c : conns_) {
            if (c.fd >= 0) ::close(c.fd);
        }
    }

    const int port_;
    std::vector<Conn> conns_;
    std::atomic<bool> stop_{false};
    std::atomic<int> open_{0};
    std::thread thread_;
};

}  // namespace

TEST_CASE("server abuse: 64 slow-header connections do not delay /health and are closed after --header-timeout") {
    REQUIRE_SHARED();
    const double header_timeout = 3.0;
    ServerProcess srv({"--header-timeout", "3"});
    Slowloris slow(srv.port(), 64);
    REQUIRE(eventually([&] { return slow.open() == 64; }, 5.0));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // every one has sent its request line

    // A fresh client polls /health every 250 ms for 12 s (four header timeouts): every answer within 1 s.
    int polls = 0, failures = 0;
    double worst = 0;
    const auto t0 = Clock::now();
    while (since(t0) < 12.0 && failures == 0) {
        httplib::Client c("127.0.0.1", srv.port());
        c.set_connection_timeout(2, 0);
        c.set_read_timeout(2, 0);
        const auto t = Clock::now();
        auto r = c.Get("/health");
        const double dt = since(t);
        worst = std::max(worst, dt);
        ++polls;
        if (!r || r->status != 200 || dt >= 1.0) {
            ++failures;
            MESSAGE("/health poll " << polls << " at " << since(t0) << " s: " << (r ? std::to_string(r->status) : "no answer") << " after " << dt << " s");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    slow.stop();
    MESSAGE(polls << " /health polls, slowest " << worst * 1000 << " ms; " << slow.lifetimes.size() << " slow connections closed by the server, "
                  << slow.answered_408 << " with 408");
    CHECK(failures == 0);
    CHECK(slow.connect_failures == 0);
    // Each of the 64 was closed at least once (about every 3 s), none later than the header timeout allows.
    CHECK(slow.lifetimes.size() >= 64);
    double longest = 0;
    for (double l : slow.lifetimes) longest = std::max(longest, l);
    CHECK(longest < header_timeout + 1.5);
    CHECK(slow.answered_408 >= 64);
    httplib::Client c = srv.client();
    CHECK(metric(c, "quill_header_timeouts_total") >= 64);
    CHECK(srv.stop() == 0);
}

TEST_CASE("server abuse: connections over --max-connections get a quick 503 server_busy and are closed") {
    REQUIRE_SHARED();
    ServerProcess srv({"--max-connections", "8"});
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the start-up /health connection is gone
    std::vector<int> held;
    for (int i = 0; i < 8; ++i) {
        const int fd = raw_connect(srv.port());
        REQUIRE(fd >= 0);
        raw_send(fd, "GET /health HTTP/1.1\r\n");  // and nothing more: the connection stays open
        held.push_back(fd);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    for (int i = 0; i < 3; ++i) {
        const auto t = Clock::now();
        const int fd = raw_connect(srv.port());
        REQUIRE(fd >= 0);
        raw_send(fd, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        bool eof = false;
        const std::string got = raw_read(fd, 3.0, "", &eof);
        const double dt = since(t);
        ::close(fd);
        INFO(got);
        CHECK(got.rfind("HTTP/1.1 503", 0) == 0);
        CHECK(got.find("\"server_busy\"") != std::string::npos);
        CHECK(got.find("Retry-After: 1") != std::string::npos);
        const size_t body = got.find("\r\n\r\n");
        CHECK((body != std::string::npos && is_error_shape(got.substr(body + 4))));
        CHECK(eof);  // closed at once
        CHECK(dt < 1.0);
    }
    for (int fd : held) ::close(fd);
    // Once the held connections are gone, new ones are served again.
    httplib::Client c = srv.client();
    CHECK(eventually([&] { return get(c, "/health").status == 200; }, 5.0));
    CHECK(metric(c, "quill_connections_rejected_total") >= 3);
    CHECK(srv.stop() == 0);
}

TEST_CASE("server abuse: requests cut off by the shutdown get 503 shutting_down, streams an error event before [DONE]") {
    REQUIRE_SHARED();
    // Two slots and room for four more in the queue; every request asks for 3000 tokens of a 4096 context, which
    // takes seconds at -t 1, so the 1 s drain cuts the generating ones off and the queued ones never start.
    ServerProcess srv({"--parallel", "2", "--queue", "4", "-c", "4096", "--drain-timeout", "1"});
    const int n_whole = 5;
    std::vector<HttpResult> whole((size_t) n_whole);
    HttpResult streamed;
    std::vector<std::thread> ts;
    for (int i = 0; i < n_whole; ++i) {
        ts.emplace_back([&, i] {
            httplib::Client c = srv.client();
            json b = {{"prompt", "Once upon a time"}, {"max_tokens", 3000}, {"temperature", 0}};
            if (i % 2) b = {{"messages", {{{"role", "user"}, {"content", "Tell me a story"}}}}, {"max_tokens", 3000}, {"temperature", 0}};
            whole[(size_t) i] = post(c, i % 2 ? "/v1/chat/completions" : "/v1/completions", b.dump());
        });
    }
    ts.emplace_back([&] {
        httplib::Client c = srv.client();
        const json b = {{"prompt", "Once upon a time"}, {"max_tokens", 3000}, {"temperature", 0}, {"stream", true}};
        streamed = post_stream(c, "/v1/completions", b.dump(), [](const std::string &) { return true; });
    });
    httplib::Client m = srv.client();
    const bool all_in = eventually([&] { return metric(m, "quill_slots_busy") == 2 && metric(m, "quill_queue_depth") == 4; }, 10.0);
    CHECK(all_in);
    const auto t_term = Clock::now();
    srv.signal(SIGTERM);
    for (std::thread & t : ts) t.join();
    const double cut_after = since(t_term);
    const int code = srv.wait_exit(10.0);
    MESSAGE("every client answered " << cut_after << " s after SIGTERM");

    int cut = 0;
    for (int i = 0; i < n_whole; ++i) {
        const HttpResult & r = whole[(size_t) i];
        INFO("request " << i << ": " << r.status << " " << r.body.substr(0, 300));
        json j;
        REQUIRE_NOTHROW(j = json::parse(r.body));
        if (r.status == 200) {
            // Only a request that really completed may say 200.
            CHECK(!j.contains("error"));
            CHECK(j["choices"][0]["finish_reason"] == "length");
        } else {
            CHECK(r.status == 503);
            CHECK(is_error_shape(r.body));
            CHECK(j["error"]["code"] == "shutting_down");
            ++cut;
        }
    }
    CHECK(cut >= 4);  // at least the queued ones

    INFO("stream: " << streamed.body.substr(streamed.body.size() > 600 ? streamed.body.size() - 600 : 0));
    CHECK(streamed.status == 200);
    const Sse s = parse_sse(streamed.body);
    CHECK(s.ok);
    CHECK(s.done);  // [DONE] came last
    REQUIRE(!s.events.empty());
    const json & last = s.events.back();  // the event just before [DONE]
    CHECK(last.contains("error"));
    if (last.contains("error")) CHECK(last["error"]["code"] == "shutting_down");
    CHECK(code == 0);
    CHECK(cut_after < 4.0);
}

TEST_CASE("server abuse: a non-streamed client that hangs up frees its slot at once") {
    REQUIRE_SHARED();
    ServerProcess srv({"--parallel", "1", "--queue", "0", "-c", "4096"});
    {
        httplib::Client c = srv.client();
        c.set_read_timeout(0, 500000);  // give up after half a second: the client closes the connection
        HttpResult r = post(c, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 4000}, {"temperature", 0}}.dump());
        CHECK(r.status == 0);
    }
    httplib::Client m = srv.client();
    // Tokens keep coming while the request waits, so only a check that does not wait for a pause notices.
    CHECK(eventually([&] { return metric(m, "quill_slots_busy") == 0; }, 2.0));
    CHECK(metric(m, "quill_requests_cancelled_total") == 1);
    const double generated = metric(m, "quill_generated_tokens_total");
    CHECK(generated < 4000);
    MESSAGE("the abandoned request stopped after " << generated << " of 4000 tokens");
    // The slot is free: with no queue, a new request is served rather than refused.
    HttpResult again = post(m, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 5}, {"temperature", 0}}.dump());
    CHECK(again.status == 200);
    CHECK(srv.stop() == 0);
}

TEST_CASE("server abuse: an idle keep-alive connection and a slow one do not hold up the shutdown") {
    REQUIRE_SHARED();
    ServerProcess srv;
    const int idle = raw_connect(srv.port());
    REQUIRE(idle >= 0);
    REQUIRE(raw_send(idle, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
    const std::string got = raw_read(idle, 3.0, "{\"status\":\"ok\"}");
    REQUIRE(got.find("{\"status\":\"ok\"}") != std::string::npos);
    CHECK(got.find("Keep-Alive") != std::string::npos);  // the connection stays open, waiting for the next request
    const int slow = raw_connect(srv.port());
    REQUIRE(slow >= 0);
    raw_send(slow, "GET /health HTTP/1.1\r\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const auto t = Clock::now();
    const int code = srv.stop(SIGTERM, 10.0);
    const double dt = since(t);
    MESSAGE("SIGTERM to exit: " << dt * 1000 << " ms");
    CHECK(code == 0);
    CHECK(dt < 2.0);  // httplib alone waited up to the 5 s keep-alive timeout
    ::close(idle);
    ::close(slow);
}
