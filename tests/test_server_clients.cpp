// quill serve with real clients: the official openai npm client (installed into tests/server/node_modules with
// `npm ci` when missing) and the built-in chat page in headless Chromium (installed with apt-get when missing).
// When a client cannot be set up the test is skipped with a message, or fails under CI=true.
#include "tests/server/harness.h"

#include <sys/stat.h>

using namespace srvtest;

namespace {

const std::string kScripts = std::string(QUILL_SOURCE_DIR) + "/tests/server";

bool file_exists(const std::string & p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// "" when node can run the scripts, else why not.
std::string node_ready() {
    std::string out;
    if (run_command("node -e \"process.exit(parseInt(process.versions.node) >= 20 ? 0 : 1)\"", &out) != 0)
        return "Node.js 20 or newer is needed (node: " + out + ")";
    return "";
}

// Installs the openai package from tests/server/package-lock.json when it is not there yet.
std::string openai_ready() {
    std::string why = node_ready();
    if (!why.empty()) return why;
    if (file_exists(kScripts + "/node_modules/openai/package.json")) return "";
    std::string out;
    const std::string cmd = "cd '" + kScripts +
                            "' && flock /tmp/quill-npm-install.lock sh -c "
                            "'test -f node_modules/openai/package.json || npm ci --no-audit --no-fund --loglevel=error'";
    if (run_command(cmd, &out) != 0 || !file_exists(kScripts + "/node_modules/openai/package.json"))
        return "npm ci in tests/server failed: " + out;
    return "";
}

std::string chromium_path() {
    const char * env = std::getenv("QUILL_CHROMIUM");
    return env && *env ? env : "/usr/bin/chromium";
}

// Installs Debian's chromium package when it is missing (needs root).
std::string chromium_ready() {
    std::string why = node_ready();
    if (!why.empty()) return why;
    const std::string path = chromium_path();
    if (access(path.c_str(), X_OK) == 0) return "";
    if (geteuid() != 0) return path + " is missing and installing chromium needs root (apt-get install chromium)";
    std::string out;
    const std::string cmd = "flock /tmp/quill-apt-chromium.lock sh -c 'test -x /usr/bin/chromium || "
                            "(DEBIAN_FRONTEND=noninteractive apt-get update -qq && apt-get install -y -qq chromium >/dev/null)'";
    if (run_command(cmd, &out) != 0 || access(path.c_str(), X_OK) != 0) return "apt-get install chromium failed: " + out;
    return "";
}

#define REQUIRE_READY(expr)                                                                 \
    do {                                                                                    \
        const std::string why_ = (expr);                                                    \
        if (!why_.empty()) {                                                                \
            if (ci_mode()) FAIL("CI=true and a client is not available: " << why_);        \
            MESSAGE("SKIP: " << why_);                                                      \
            return;                                                                         \
        }                                                                                   \
    } while (0)

}  // namespace

TEST_CASE("server: the official openai npm client, chat and completions, streaming and not") {
    REQUIRE_SHARED();
    REQUIRE_READY(openai_ready());
    ServerProcess srv({"--api-key", "test-key-123"});
    std::string out;
    const int rc = run_command("node '" + kScripts + "/openai_client.mjs' " + srv.url() + "/v1 test-key-123", &out);
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find("openai client: all checks passed") != std::string::npos);
    CHECK(srv.stop() == 0);
}

TEST_CASE("server: the chat page in headless Chromium streams replies, keeps the conversation, and stops") {
    REQUIRE_SHARED();
    REQUIRE_READY(chromium_ready());
    ServerProcess srv({"-c", "4096"});
    httplib::Client c = srv.client();

    // What the page must show for its first message: the same reply, non-streamed.
    const json direct = json::parse(post(c, "/v1/chat/completions",
                                         json{{"messages", {{{"role", "user"}, {"content", "Once upon a time"}}}}, {"temperature", 0}, {"max_tokens", 40}}
                                             .dump())
                                        .body);
    const std::string expected = direct["choices"][0]["message"]["content"];

    const std::string shots = make_temp_dir(), profile = make_temp_dir();
    const std::string shot = shots + "/chat-page.png";
    std::string flag, probe;
    if (run_command("node -e \"process.exit(typeof WebSocket === 'function' ? 0 : 1)\"", &probe) != 0) flag = "--experimental-websocket ";
    std::string out;
    const int rc = run_command("node " + flag + "'" + kScripts + "/chat_page.mjs' '" + chromium_path() + "' '" + srv.url() +
                                   "/?q=Once%20upon%20a%20time&temperature=0&max_tokens=40' '" + shot + "' '" + profile + "'",
                               &out);
    run_command("rm -rf '" + profile + "'", nullptr);
    INFO(out);
    REQUIRE(rc == 0);
    const json r = json::parse(out.substr(out.rfind("{\"first\"")));

    // 1. The first reply streamed in (several deltas) and is the model's reply.
    CHECK(r["first"]["state"] == "done");
    CHECK(r["first"]["deltas"].get<int>() > 5);
    CHECK(r["first"]["reply"] == expected);
    // 2. The second message was sent with the conversation so far.
    CHECK(r["second"]["state"] == "done");
    CHECK(!r["second"]["reply"].get<std::string>().empty());
    CHECK(r["second"]["usage"]["prompt_tokens"].get<int>() >
          r["first"]["usage"]["prompt_tokens"].get<int>() + r["first"]["usage"]["completion_tokens"].get<int>());
    // 3. Stop ended the third reply, and the server freed its slot.
    CHECK(r["third"]["state"] == "stopped");
    CHECK(r["bubbles"].size() == 6);
    CHECK(eventually([&] { return metric(c, "quill_slots_busy") == 0; }, 5.0));
    CHECK(eventually([&] { return metric(c, "quill_requests_cancelled_total") >= 1; }, 5.0));
    CHECK(r["third"]["deltas"].get<int>() < 3000);  // stopped while the server was still generating

    // The screenshot is a PNG of a real page.
    const std::string png = read_file(shot);
    CHECK(png.size() > 5000);
    CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    MESSAGE("chat page screenshot: " << shot);
    CHECK(srv.stop() == 0);
}
