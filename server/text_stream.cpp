#include "server/text_stream.h"

#include <algorithm>

namespace quill {

namespace {

// Length of the sequence a lead byte starts (0: not a lead byte), and the range its second byte must be in.
int utf8_lead(unsigned char b, unsigned char & lo, unsigned char & hi) {
    lo = 0x80, hi = 0xBF;
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) {
        if (b == 0xE0) lo = 0xA0;  // no overlong forms
        if (b == 0xED) hi = 0x9F;  // no surrogates
        return 3;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        if (b == 0xF0) lo = 0x90;  // no overlong forms
        if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
        return 4;
    }
    return 0;
}

// How many bytes of the sequence starting at s[i] are well-formed (up to its length len, or the end n).
int utf8_valid_run(const unsigned char * s, size_t i, size_t n, int len, unsigned char lo, unsigned char hi) {
    int k = 1;
    while (k < len && i + (size_t) k < n) {
        unsigned char c = s[i + (size_t) k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (c < l || c > h) break;
        ++k;
    }
    return k;
}

}  // namespace

std::string utf8_sanitize(const char * p, size_t n) {
    static const char kReplacement[] = "\xEF\xBF\xBD";
    const unsigned char * s = (const unsigned char *) p;
    std::string out;
    out.reserve(n);
    size_t i = 0;
    while (i < n) {
        unsigned char lo, hi;
        int len = utf8_lead(s[i], lo, hi);
        if (len == 1) {
            out.push_back((char) s[i++]);
            continue;
        }
        if (len > 1 && utf8_valid_run(s, i, n, len, lo, hi) == len) {
            out.append(p + i, (size_t) len);
            i += (size_t) len;
            continue;
        }
        out.append(kReplacement, 3);
        ++i;
    }
    return out;
}

size_t utf8_complete_end(const char * p, size_t from, size_t n) {
    const unsigned char * s = (const unsigned char *) p;
    // Only the last three bytes can belong to an incomplete sequence; find the last lead byte among them.
    for (size_t back = 1; back <= 3 && back <= n - from; ++back) {
        size_t i = n - back;
        unsigned char lo, hi;
        int len = utf8_lead(s[i], lo, hi);
        if (len == 0 && s[i] >= 0x80 && s[i] <= 0xBF) continue;  // a continuation byte: look further back
        if (len > 1 && (size_t) len > back && utf8_valid_run(s, i, n, len, lo, hi) == (int) back) return i;
        break;  // an ASCII byte, a complete sequence or an invalid byte: nothing to hold back
    }
    return n;
}

void TextStream::reset(const std::vector<std::string> * stops) {
    stops_ = stops;
    max_stop_ = 0;
    if (stops_) {
        for (const std::string & s : *stops_) max_stop_ = std::max(max_stop_, s.size());
    }
    text_.clear();
    sent_ = 0;
    stopped_ = false;
}

bool TextStream::append(const std::string & bytes) {
    if (stopped_) return true;
    const size_t old = text_.size();
    text_ += bytes;
    if (!stops_ || max_stop_ == 0) return false;
    // A stop string cannot start before sent_ (text that could begin one is never sent), nor end before `old`
    // (it would have been found earlier).
    size_t from = std::max(sent_, old >= max_stop_ ? old - max_stop_ + 1 : 0);
    size_t best = std::string::npos;
    for (const std::string & s : *stops_) {
        if (s.empty()) continue;
        size_t at = text_.find(s, from);
        if (at < best) best = at;
    }
    if (best == std::string::npos) return false;
    text_.resize(best);
    stopped_ = true;
    return true;
}

std::string TextStream::take(bool final) {
    size_t end = text_.size();
    if (!final && !stopped_) {
        // Hold back the longest tail that is a proper prefix of a stop string.
        if (stops_ && max_stop_ > 0) {
            size_t start = std::max(sent_, end >= max_stop_ ? end - max_stop_ + 1 : 0);
            for (size_t at = start; at < end; ++at) {
                const size_t len = end - at;
                bool prefix = false;
                for (const std::string & s : *stops_) {
                    if (s.size() > len && s.compare(0, len, text_, at, len) == 0) {
                        prefix = true;
                        break;
                    }
                }
                if (prefix) {
                    end = at;
                    break;
                }
            }
        }
        end = utf8_complete_end(text_.data(), sent_, end);
    }
    if (end <= sent_) return std::string();
    std::string out = utf8_sanitize(text_.data() + sent_, end - sent_);
    sent_ = end;
    return out;
}

}  // namespace quill
