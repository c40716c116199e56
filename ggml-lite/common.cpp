#include "ggml-lite/common.h"

#include <vector>

namespace quill {

static std::string vstrfmt(const char * fmt, va_list ap) {
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(nullptr, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return fmt;
    std::string s((size_t) n, '\0');
    vsnprintf(s.data(), (size_t) n + 1, fmt, ap);
    return s;
}

std::string strfmt(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vstrfmt(fmt, ap);
    va_end(ap);
    return s;
}

void throw_error(const char * fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::string s = vstrfmt(fmt, ap);
    va_end(ap);
    throw Error(s);
}

}  // namespace quill

void gl_assert_fail(const char * file, int line, const char * expr) {
    fprintf(stderr, "%s:%d: internal error: GL_ASSERT(%s) failed\n", file, line, expr);
    fflush(stderr);
    abort();
}
