// The connection layer of quill serve, under cpp-httplib's request parser and router.
//
// httplib (0.11.4, Debian's compiled build) serves each connection on a fixed thread pool and reads the request
// line and headers with a per-recv timeout only, so a few dozen clients that send a header line every couple of
// seconds ("slowloris") hold every thread and the server stops answering. HttpServer replaces that part:
//
//   - connections run on a task queue that starts a thread per connection, up to --max-connections; a connection
//     beyond that gets a short 503 (code "server_busy") from the accepting thread and is closed at once, so it
//     never waits behind slow ones;
//   - each connection is read through ConnStream (http_conn.cpp): poll-based timeouts, reads buffered 4 KiB at a
//     time, and a deadline for the request line plus headers (--header-timeout) that the request's setup
//     callback lifts once they are parsed, so bodies get the ordinary read timeout; the headers may also not
//     exceed kMaxHeaderBytes in all;
//   - keep-alive is handled here too, checking for shutdown every 50 ms, so that stopping the server does not
//     wait for idle connections to time out.
//
// process_and_close_socket is a private virtual of httplib::Server: overriding it is allowed (access does not
// affect overriding), and process_request, which parses, routes and writes one request, is protected.
#pragma once

#include "server/http_lib.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace quill {

class Metrics;

struct ConnLimits {
    double header_timeout = 10.0;  // seconds for the request line and headers, from their first byte
    int max_connections = 256;     // connections served at once; more get 503 and are closed
    std::string busy_body;         // the JSON body of that 503
};

class HttpServer : public httplib::Server {
public:
    static constexpr size_t kMaxHeaderBytes = 64 * 1024;  // request line plus headers

    HttpServer(ConnLimits limits, Metrics & metrics);  // metrics: the connection counters

    // httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed when Debian built the library): a
    // burst of clients connecting at once would overflow it and wait a second for their SYN to be retried. Linux
    // lets listen() be called again on a listening socket to raise the backlog.
    void raise_backlog(int backlog);

    bool stopping() const { return svr_sock_ == INVALID_SOCKET; }
    double read_timeout() const { return (double) read_timeout_sec_ + (double) read_timeout_usec_ * 1e-6; }
    double write_timeout() const { return (double) write_timeout_sec_ + (double) write_timeout_usec_ * 1e-6; }

private:
    bool process_and_close_socket(socket_t sock) override;
    void reject(socket_t sock);

    const ConnLimits limits_;
    Metrics & metrics_;
};

// For handlers, on the thread that serves their connection:
// true when the client has closed (or reset) the connection; false outside a connection thread.
bool http_client_gone();
// true when the current request failed because its request line and headers did not arrive in time.
bool http_header_timed_out();
// The client's address and port (for the access log of requests that failed before httplib filled them in).
void http_peer(std::string & ip, int & port);

}  // namespace quill
