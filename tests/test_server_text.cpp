// Server text deltas: stop strings never emitted (also across tokens), UTF-8 held back until complete,
// invalid bytes replaced, and the deltas always add up to the one-shot text. Request parsing edge cases.
#include "server/oai_request.h"
#include "server/text_stream.h"
#include "tests/test_util.h"

#include <random>
#include <string>
#include <vector>

using namespace quill;

namespace {

// Feeds pieces one by one, collecting deltas; returns the concatenation and whether a stop string was hit.
std::string run_stream(const std::vector<std::string> & pieces, const std::vector<std::string> & stops, bool * stopped = nullptr,
                       std::vector<std::string> * deltas = nullptr) {
    TextStream ts;
    ts.reset(&stops);
    std::string out;
    bool hit = false;
    for (const std::string & p : pieces) {
        hit = ts.append(p);
        std::string d = ts.take(hit);
        if (deltas && !d.empty()) deltas->push_back(d);
        out += d;
        if (hit) break;
    }
    if (!hit) {
        std::string d = ts.take(true);
        if (deltas && !d.empty()) deltas->push_back(d);
        out += d;
    }
    if (stopped) *stopped = hit;
    return out;
}

bool valid_utf8(const std::string & s) { return utf8_sanitize(s) == s; }

}  // namespace

TEST_CASE("server text: a stop string spread over tokens is cut and never emitted") {
    std::vector<std::string> deltas;
    bool stopped = false;
    const std::string out = run_stream({"Hello", " wor", "ld", "!", " more"}, {"world!"}, &stopped, &deltas);
    CHECK(stopped);
    CHECK(out == "Hello ");
    for (const std::string & d : deltas) CHECK(d.find('w') == std::string::npos);

    // A held-back prefix that turns out not to be a stop string is released.
    CHECK(run_stream({"ab", "c", "abd"}, {"abx"}) == "abcabd");
    // The earliest of several stop strings wins, and text before it is kept.
    CHECK(run_stream({"one two three"}, {"three", "two"}) == "one ");
    // A stop string inside one token.
    CHECK(run_stream({"xxSTOPyy"}, {"STOP"}) == "xx");
    // Empty stop strings are ignored.
    CHECK(run_stream({"abc"}, {""}) == "abc");
}

TEST_CASE("server text: UTF-8 from byte tokens is held back until complete") {
    // "é" = C3 A9 and "€" = E2 82 AC, arriving one byte per token.
    std::vector<std::string> deltas;
    const std::string out = run_stream({"a", "\xC3", "\xA9", "\xE2", "\x82", "\xAC", "b"}, {}, nullptr, &deltas);
    CHECK(out == "a\xC3\xA9\xE2\x82\xAC" "b");
    for (const std::string & d : deltas) CHECK(valid_utf8(d));
    // A 4-byte character split 1 + 3.
    CHECK(run_stream({"\xF0", "\x9F\x98\x80"}, {}) == "\xF0\x9F\x98\x80");
}

TEST_CASE("server text: invalid bytes become U+FFFD") {
    CHECK(utf8_sanitize(std::string("a\xFF" "b")) == "a\xEF\xBF\xBD" "b");
    CHECK(utf8_sanitize(std::string("\xC0\xAF")) == "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
    CHECK(utf8_sanitize(std::string("\xED\xA0\x80")) == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
    CHECK(utf8_sanitize(std::string("\xE2\x82")) == "\xEF\xBF\xBD\xEF\xBF\xBD");  // cut off at the end
    // An incomplete sequence followed by ASCII is decided as soon as the ASCII arrives.
    CHECK(run_stream({"\xE2\x82", "A"}, {}) == "\xEF\xBF\xBD\xEF\xBF\xBD" "A");
    CHECK(utf8_complete_end("\xE2\x82", 0, 2) == 0);
    CHECK(utf8_complete_end("a\xE2\x82\xAC", 0, 4) == 4);
    CHECK(utf8_complete_end("a\xFF", 0, 2) == 2);
}

TEST_CASE("server text: deltas always add up to the one-shot text (random pieces and stop strings)") {
    std::mt19937 rng(7);
    const std::vector<std::string> alphabet = {"a", "b", " ", "\xC3", "\xA9", "\xE2", "\x82", "\xAC", "\xFF", "\xF0\x9F", "\x98\x80", "ab", "ba"};
    for (int iter = 0; iter < 2000; ++iter) {
        std::vector<std::string> pieces;
        const int n = 1 + (int) (rng() % 12);
        for (int i = 0; i < n; ++i) pieces.push_back(alphabet[rng() % alphabet.size()]);
        std::vector<std::string> stops;
        if (rng() % 2) stops.push_back(std::string(rng() % 2 ? "ab" : "b ") + (rng() % 2 ? "a" : ""));
        if (rng() % 3 == 0) stops.push_back("\xC3\xA9");

        std::string all;
        for (const std::string & p : pieces) all += p;
        size_t cut = std::string::npos;
        for (const std::string & s : stops) cut = std::min(cut, all.find(s));
        const std::string expect = utf8_sanitize(all.substr(0, cut));

        std::vector<std::string> deltas;
        bool stopped = false;
        const std::string got = run_stream(pieces, stops, &stopped, &deltas);
        INFO("iteration " << iter);
        CHECK(got == expect);
        CHECK(stopped == (cut != std::string::npos));
        for (const std::string & d : deltas) {
            CHECK(valid_utf8(d));
            for (const std::string & s : stops) CHECK(d.find(s) == std::string::npos);
        }
    }
}

TEST_CASE("server request: JSON nesting is bounded before parsing, malformed input is a 400") {
    CHECK_NOTHROW(parse_json_body(std::string(64, '[') + std::string(64, ']')));
    try {
        parse_json_body(std::string(100000, '['));
        FAIL("no error");
    } catch (const ApiError & e) {
        CHECK(e.status == 400);
    }
    // Brackets inside strings do not count.
    CHECK_NOTHROW(parse_json_body("{\"a\": \"" + std::string(1000, '[') + "\"}"));
    for (const char * bad : {"", "{", "{\"a\":}", "nul", "\"\xFF\"", "[1,]"}) {
        try {
            parse_json_body(bad);
            FAIL("no error for " << bad);
        } catch (const ApiError & e) {
            CHECK(e.status == 400);
            CHECK(e.code == "invalid_json");
        }
    }
}
