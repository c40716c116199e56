#include "model/unicode.h"

#include <algorithm>
#include <array>

namespace quill {

namespace {
#include "model/unicode_data.inc"

constexpr size_t k_n_runs = sizeof(k_ucat_runs) / sizeof(k_ucat_runs[0]);

// Classes of the first 256 code points, the common case, filled once from the run table.
struct Latin1Table {
    std::array<uint8_t, 256> cat{};
    Latin1Table() {
        for (uint32_t cp = 0; cp < 256; ++cp) cat[cp] = lookup(cp);
    }
    static uint8_t lookup(uint32_t cp) {
        size_t lo = 0, hi = k_n_runs;  // find the last run starting at or before cp
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (k_ucat_runs[mid][0] <= cp) lo = mid; else hi = mid;
        }
        return (uint8_t) k_ucat_runs[lo][1];
    }
};

const Latin1Table & latin1() {
    static const Latin1Table t;
    return t;
}

struct ByteLevelTable {
    std::array<std::string, 256> enc;
    std::array<uint32_t, 256> cp{};
    ByteLevelTable() {
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            cp[b] = printable ? b : next++;
            utf8_append(enc[b], cp[b]);
        }
    }
};

const ByteLevelTable & byte_level() {
    static const ByteLevelTable t;
    return t;
}

}  // namespace

ucat unicode_category(uint32_t cp) {
    if (cp < 256) return (ucat) latin1().cat[cp];
    if (cp > 0x10FFFF) return UCAT_OTHER;
    return (ucat) Latin1Table::lookup(cp);
}

bool unicode_is_whitespace(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    for (const auto & r : k_white_space) {
        if (cp < r[0]) return false;
        if (cp <= r[1]) return true;
    }
    return false;
}

size_t utf8_seq_len(uint8_t lead) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[lead >> 4];
}

uint32_t utf8_next(const std::string & s, size_t & pos) {
    const uint8_t * p = (const uint8_t *) s.data() + pos;
    const size_t left = s.size() - pos;
    const uint8_t b0 = p[0];
    auto cont = [&](size_t i) { return i < left && (p[i] & 0xC0) == 0x80; };
    if (b0 < 0x80) {
        pos += 1;
        return b0;
    }
    if ((b0 & 0xE0) == 0xC0 && cont(1)) {
        pos += 2;
        return ((uint32_t) (b0 & 0x1F) << 6) | (p[1] & 0x3F);
    }
    if ((b0 & 0xF0) == 0xE0 && cont(1) && cont(2)) {
        pos += 3;
        return ((uint32_t) (b0 & 0x0F) << 12) | ((uint32_t) (p[1] & 0x3F) << 6) | (p[2] & 0x3F);
    }
    if ((b0 & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
        pos += 4;
        return ((uint32_t) (b0 & 0x07) << 18) | ((uint32_t) (p[1] & 0x3F) << 12) | ((uint32_t) (p[2] & 0x3F) << 6) | (p[3] & 0x3F);
    }
    pos += 1;  // malformed: skip one byte, like llama.cpp
    return 0xFFFD;
}

std::vector<uint32_t> utf8_to_cpts(const std::string & s) {
    std::vector<uint32_t> out;
    out.reserve(s.size());
    size_t pos = 0;
    while (pos < s.size()) out.push_back(utf8_next(s, pos));
    return out;
}

void utf8_append(std::string & out, uint32_t cp) {
    if (cp < 0x80) {
        out += (char) cp;
    } else if (cp < 0x800) {
        out += (char) (0xC0 | (cp >> 6));
        out += (char) (0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += (char) (0xE0 | (cp >> 12));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    } else {
        out += (char) (0xF0 | ((cp >> 18) & 0x07));
        out += (char) (0x80 | ((cp >> 12) & 0x3F));
        out += (char) (0x80 | ((cp >> 6) & 0x3F));
        out += (char) (0x80 | (cp & 0x3F));
    }
}

const std::string & byte_to_unicode(uint8_t b) { return byte_level().enc[b]; }

int unicode_to_byte(uint32_t cp) {
    if (cp < 256) {
        bool printable = (cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE);
        if (printable) return (int) cp;
    }
    if (cp >= 256 && cp < 256 + 68) {  // 68 bytes are remapped to U+0100..U+0143, in byte order
        const auto & t = byte_level();
        for (int b = 0; b < 256; ++b)
            if (t.cp[b] == cp) return b;
    }
    return -1;
}

std::string byte_level_encode(const std::string & bytes) {
    const auto & t = byte_level();
    std::string out;
    out.reserve(bytes.size() * 2);
    for (unsigned char c : bytes) out += t.enc[c];
    return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizers. Each loop iteration finds the match of the regex at `pos` by trying its alternatives in order,
// exactly as a backtracking regex engine would, and emits it.

namespace {

struct Cursor {
    const std::vector<uint32_t> & c;
    size_t n;
    explicit Cursor(const std::vector<uint32_t> & cpts) : c(cpts), n(cpts.size()) {}
    bool letter(size_t i) const { return i < n && unicode_category(c[i]) == UCAT_LETTER; }
    bool number(size_t i) const { return i < n && unicode_category(c[i]) == UCAT_NUMBER; }
    bool space(size_t i) const { return i < n && unicode_is_whitespace(c[i]); }
    // [^\s\p{L}\p{N}]
    bool other(size_t i) const {
        if (i >= n) return false;
        ucat k = unicode_category(c[i]);
        return k != UCAT_LETTER && k != UCAT_NUMBER && !unicode_is_whitespace(c[i]);
    }
    bool newline(size_t i) const { return i < n && (c[i] == '\r' || c[i] == '\n'); }
    uint32_t lower_ascii(size_t i) const {
        uint32_t x = i < n ? c[i] : 0;
        return (x >= 'A' && x <= 'Z') ? x + 32 : x;
    }
    // Length of the contraction 's|'t|'re|'ve|'m|'ll|'d at i (0 if none); case-insensitive when `icase`.
    size_t contraction(size_t i, bool icase) const {
        if (i >= n || c[i] != '\'' || i + 1 >= n) return 0;
        uint32_t a = icase ? lower_ascii(i + 1) : c[i + 1];
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
        if (i + 2 >= n) return 0;
        uint32_t b = icase ? lower_ascii(i + 2) : c[i + 2];
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
        return 0;
    }
    // Whitespace alternatives shared by both regexes: \s+(?!\S)|\s+ (the run minus its last character when a
    // non-space follows, else the whole run). Returns the match length, 0 when pos is not whitespace.
    size_t space_run(size_t pos) const {
        size_t e = pos;
        while (space(e)) ++e;
        size_t run = e - pos;
        if (run > 1 && e < n) return run - 1;
        return run;
    }
};

void pretokenize_gpt2(const Cursor & t, std::vector<size_t> & lens) {
    size_t pos = 0;
    while (pos < t.n) {
        size_t len = t.contraction(pos, false);
        if (!len) {
            size_t p = pos + (t.c[pos] == ' ' ? 1 : 0);  // the optional leading space of " ?X+"
            size_t e = p;
            if (t.letter(p)) {
                while (t.letter(e)) ++e;
            } else if (t.number(p)) {
                while (t.number(e)) ++e;
            } else if (t.other(p)) {
                while (t.other(e)) ++e;
            }
            if (e > p) len = e - pos;
        }
        if (!len) len = t.space_run(pos);
        if (!len) len = 1;  // unreachable: every code point is whitespace, letter, number or other
        lens.push_back(len);
        pos += len;
    }
}

void pretokenize_llama3(const Cursor & t, std::vector<size_t> & lens) {
    size_t pos = 0;
    while (pos < t.n) {
        size_t len = t.contraction(pos, true);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (!len && !t.newline(pos) && !t.number(pos) && (t.letter(pos) || t.letter(pos + 1))) {
            size_t e = pos + 1;
            while (t.letter(e)) ++e;
            len = e - pos;
        }
        // \p{N}{1,3}
        if (!len && t.number(pos)) {
            size_t e = pos;
            while (e - pos < 3 && t.number(e)) ++e;
            len = e - pos;
        }
        // " ?[^\s\p{L}\p{N}]+[\r\n]*"
        if (!len) {
            size_t p = pos + (t.c[pos] == ' ' ? 1 : 0);
            if (t.other(p)) {
                size_t e = p;
                while (t.other(e)) ++e;
                while (t.newline(e)) ++e;
                len = e - pos;
            }
        }
        // \s*[\r\n]+ : a whitespace run containing a newline ends after its last newline
        if (!len && t.space(pos)) {
            size_t e = pos, last_nl = 0;
            for (; t.space(e); ++e)
                if (t.newline(e)) last_nl = e + 1;
            len = last_nl ? last_nl - pos : t.space_run(pos);
        }
        if (!len) len = 1;
        lens.push_back(len);
        pos += len;
    }
}

}  // namespace

void pretokenize(PreTokenizer kind, const std::vector<uint32_t> & cpts, std::vector<size_t> & lens) {
    Cursor t(cpts);
    switch (kind) {
        case PreTokenizer::GPT2: pretokenize_gpt2(t, lens); break;
        case PreTokenizer::LLAMA3: pretokenize_llama3(t, lens); break;
    }
}

}  // namespace quill
