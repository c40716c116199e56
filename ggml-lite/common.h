// Errors and invariants shared by every part of quill.
//
// Untrusted input (files, HTTP bodies, CLI arguments) is rejected by throwing quill::Error with one clear
// message; the API edge (cli/main.cpp, the server) catches it and turns it into an exit code or a 4xx.
// Broken internal invariants use GL_ASSERT, which is always on and names the file and line.
#pragma once

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace quill {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// printf-style formatting into a std::string.
std::string strfmt(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

[[noreturn]] void throw_error(const char * fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace quill

[[noreturn]] void gl_assert_fail(const char * file, int line, const char * expr);

#define GL_ASSERT(x) do { if (!(x)) gl_assert_fail(__FILE__, __LINE__, #x); } while (0)
