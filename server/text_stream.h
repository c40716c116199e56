// From generated token bytes to the text deltas the server sends.
//
// Two rules hold for every delta take() returns:
//   - no byte of a stop string is ever sent. Text that could be the beginning of a stop string is held back until
//     it is known not to be one, so a stop string spread over several tokens is still cut cleanly;
//   - a delta is valid UTF-8 made of whole characters. An incomplete sequence at the end (a byte token that is
//     the first half of a character) is held back until its other bytes arrive. Bytes that can never be part of
//     valid UTF-8 become U+FFFD, one per byte.
// The concatenation of all deltas equals take(true) on the same text in one go, so streamed and non-streamed
// responses carry the same text.
#pragma once

#include <string>
#include <vector>

namespace quill {

// Valid UTF-8 for n bytes: well-formed sequences are copied, every other byte becomes U+FFFD (a sequence cut off
// by the end of the buffer too). Overlong forms, surrogates and code points above U+10FFFF are not well-formed.
std::string utf8_sanitize(const char * s, size_t n);
inline std::string utf8_sanitize(const std::string & s) { return utf8_sanitize(s.data(), s.size()); }

// The largest end <= n such that s[from, end) does not finish inside a well-formed but incomplete UTF-8
// sequence (one that more bytes could still complete). `from` must be a character boundary.
size_t utf8_complete_end(const char * s, size_t from, size_t n);

class TextStream {
public:
    // Starts a new text. The stop strings (not owned) must outlive the stream; empty strings are ignored.
    void reset(const std::vector<std::string> * stops);

    // Adds the bytes of one token. Returns true when the text now contains a stop string: the text is cut just
    // before its first occurrence and nothing more may be appended.
    bool append(const std::string & bytes);

    // The next delta: everything that can be sent now, or, with final, everything not yet sent.
    std::string take(bool final);

    size_t size() const { return text_.size(); }  // bytes of text so far (after the cut at a stop string)
    size_t sent() const { return sent_; }         // bytes of it already returned by take()
    bool stopped() const { return stopped_; }

private:
    const std::vector<std::string> * stops_ = nullptr;
    size_t max_stop_ = 0;  // longest stop string, in bytes
    std::string text_;     // raw bytes (may be invalid UTF-8 until sanitized by take())
    size_t sent_ = 0;
    bool stopped_ = false;
};

}  // namespace quill
