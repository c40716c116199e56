// server_run: load once, serve, and shut down gracefully on SIGINT/SIGTERM.
#include "server/server.h"

#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "model/chat.h"
#include "model/llama.h"
#include "model/tokenizer.h"
#include "server/app.h"
#include "server/http_conn.h"
#include "server/metrics.h"
#include "server/scheduler.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <pthread.h>
#include <thread>

namespace quill {

namespace {

std::string base_name(const std::string & path) {
    std::string p = path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    const size_t slash = p.rfind('/');
    return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Waits up to `seconds` for a signal in `set` (blocked in every thread). Returns it, or 0 on timeout.
int wait_signal(const sigset_t & set, double seconds) {
    timespec ts;
    ts.tv_sec = (time_t) seconds;
    ts.tv_nsec = (long) ((seconds - (double) ts.tv_sec) * 1e9);
    const int sig = sigtimedwait(&set, nullptr, &ts);
    return sig > 0 ? sig : 0;
}

}  // namespace

int server_run(const ServerParams & p) {
    if (p.parallel < 1 || p.parallel > 256) throw_error("serve: --parallel must be between 1 and 256");
    if (p.queue < 0 || p.queue > 4096) throw_error("serve: --queue must be between 0 and 4096");
    if (p.port < 0 || p.port > 65535) throw_error("serve: --port must be between 0 and 65535");
    if (!(p.header_timeout > 0 && p.header_timeout <= 3600)) throw_error("serve: --header-timeout must be between 0 and 3600 seconds");
    if (p.max_connections < 1 || p.max_connections > 100000) throw_error("serve: --max-connections must be between 1 and 100000");

    // SIGINT and SIGTERM are blocked in every thread (the ones started below inherit the mask) and taken with
    // sigtimedwait by this thread, so shutdown runs as ordinary code, not in a signal handler.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    LoadOptions lo;
    lo.tokenizer_path = p.tokenizer_path;
    ModelFile mf = load_model(p.model_path, lo);
    const Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    const LlamaModel model(mf);
    check_vocab_matches(tok, model, mf.path);

    ContextParams cp;
    cp.n_ctx = p.n_ctx;
    cp.n_batch = std::max(p.n_batch, p.parallel);
    cp.n_seq = p.parallel;
    cp.kv_type = p.kv_type;
    Context ctx(model, cp);

    Metrics metrics;
    Scheduler sched(ctx, tok, metrics, p.queue);

    App app;
    app.params = p;
    app.tok = &tok;
    app.sched = &sched;
    app.metrics = &metrics;
    app.pc.tok = &tok;
    app.pc.chat_template = chat_template_resolve(p.chat_template, mf.meta);
    app.pc.bos_text = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
    app.pc.n_ctx = ctx.n_ctx();
    app.pc.max_choices = std::min(sched.capacity(), 16);
    app.model_id = p.alias.empty() ? base_name(p.model_path) : p.alias;
    app.created = (int64_t) std::time(nullptr);

    ConnLimits limits;
    limits.header_timeout = p.header_timeout;
    limits.max_connections = p.max_connections;
    limits.busy_body = http_dump(api_error_json(ApiError(503, "too many open connections; retry later", "", "server_busy")));
    HttpServer svr(limits, metrics);
    http_setup(svr, app);
    int port = p.port;
    if (port == 0) port = svr.bind_to_any_port(p.host);
    else if (!svr.bind_to_port(p.host, port)) port = -1;
    if (port <= 0) throw_error("serve: cannot listen on %s:%d (address in use or not available)", p.host.c_str(), p.port);
    svr.raise_backlog(1024);

    sched.start();
    std::thread http([&svr] { svr.listen_after_bind(); });
    fprintf(stderr,
            "quill serve: model %s (%s), %d slots x %d tokens, chat template %s%s\n"
            "quill serve: listening on http://%s:%d\n",
            app.model_id.c_str(), mf.format.c_str(), p.parallel, ctx.n_ctx(), app.pc.chat_template.c_str(),
            p.api_key.empty() ? "" : ", API key required", p.host.c_str(), port);
    fflush(stderr);

    int sig = 0;
    while (sig == 0) sig = wait_signal(sigs, 3600.0);

    // Graceful shutdown: refuse new work (503, /health too, so a load balancer moves on), let accepted requests
    // finish for up to drain_seconds (a second signal cuts that short), then cancel what is left and stop.
    fprintf(stderr, "quill serve: %s received, finishing %d active and %d queued choices (a second signal cancels them)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", sched.slots_busy(), sched.queue_depth());
    app.draining = true;
    sched.drain();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(p.drain_seconds);
    bool cancelled = false;
    while (!(sched.idle() && app.open_responses == 0)) {
        if (!cancelled && (std::chrono::steady_clock::now() >= deadline || wait_signal(sigs, 0.05) != 0)) {
            sched.cancel_all();
            cancelled = true;
        }
        if (cancelled && std::chrono::steady_clock::now() >= deadline + std::chrono::seconds(5)) break;  // clients that never read
        if (cancelled) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    svr.stop();
    http.join();
    sched.stop();
    fprintf(stderr, "quill serve: stopped\n");
    return 0;
}

}  // namespace quill
