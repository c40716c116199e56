// Shared pieces of the libFuzzer targets in tests/fuzz (built with -DQUILL_FUZZ=ON, run by scripts/fuzz.sh).
//
// Every target feeds one untrusted input to a reader, then exercises what the loaded input feeds (tokenizer, model,
// chat template), with bounded work per input. Only the project's documented error types are caught (quill::Error,
// and ApiError for request parsing): any other exception escapes, aborts, and is reported by libFuzzer as a crash,
// as are sanitizer reports and the contract checks below (FUZZ_CHECK).
#pragma once

#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "model/tokenizer.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace quill_fuzz {

// Aborts with a message when a documented contract does not hold (libFuzzer records the input as a crash); built
// into the ordinary test suite (QUILL_FUZZ_NO_MAIN) it throws ContractViolation instead.
struct ContractViolation : std::logic_error {
    using std::logic_error::logic_error;
};
[[noreturn]] void contract_failed(const char * file, int line, const char * expr, const std::string & detail);
#define FUZZ_CHECK(x, detail) \
    do { if (!(x)) ::quill_fuzz::contract_failed(__FILE__, __LINE__, #x, (detail)); } while (0)

// Called from LLVMFuzzerInitialize: one OpenMP thread (the work per input is tiny, and the fuzzer runs one job per
// core), quiet logging.
void init_process();

// A per-process scratch directory for the inputs that the readers want as files (they mmap them): under /dev/shm
// when it is usable, else $TMPDIR or /tmp; named after the target and the pid; removed at exit.
const std::string & scratch_dir(const char * target);
// Writes bytes to scratch_dir()/name (truncating) and returns the path. Aborts when the write fails.
std::string write_scratch(const std::string & dir, const std::string & name, const void * data, size_t size);
void remove_scratch(const std::string & dir, const std::string & name);

// Several files in one fuzz input: the parts between separators (kFileSep, chosen so it never occurs in real model
// files and is easy for the mutator to keep intact). Missing trailing parts are absent files. split_files() returns
// at most max_parts parts; the last one holds the rest.
extern const char kFileSep[];  // "\n--quill-fuzz-file--\n"
std::vector<std::string> split_files(const uint8_t * data, size_t size, size_t max_parts);
std::string join_files(const std::vector<std::string> & parts);

// ../shared (QUILL_SHARED when set), or "" when it is not there.
std::string shared_root();

// The stories260K tokenizer (tok512.bin from ../shared), or a synthetic SentencePiece vocabulary of the same size
// when ../shared is missing. Built once.
const quill::Tokenizer & stories_tokenizer();

// Encodes a few fixed texts and `extra` (capped) with and without specials, checks that every id is in the
// vocabulary, decodes them, and walks the first and last token pieces.
void exercise_tokenizer(const quill::Tokenizer & tok, const std::string & extra = "");

// What a loaded model feeds: every metadata value printed, the first and last row of each tensor widened to
// float, the tokenizer built from the metadata (when it can be), the chat template resolved, and the LlamaModel
// built and run for a few tokens in a tiny context. quill::Error from each stage is expected for bad input.
void exercise_model(const quill::ModelFile & mf);

// fuzz_gguf and fuzz_quill's LLVMFuzzerCustomMutator (model_mutator.cpp): half the time libFuzzer's own mutation,
// half the time one to three structured changes of a GGUF or quill header (a metadata value retyped or set to an
// extreme, a key added, dropped or duplicated, an array resized, a tensor's shape, type, offset or name changed),
// written back with the tensor data re-aligned.
size_t mutate_model_file(uint8_t * data, size_t size, size_t max_size, unsigned seed);

// Loads a model with `load()` and exercises it (exercise_model); quill::Error, the answer to bad input, is expected.
template <typename Load> void load_and_exercise(Load load) {
    try {
        const quill::ModelFile mf = load();
        exercise_model(mf);
    } catch (const quill::Error &) {
    }
}

}  // namespace quill_fuzz

// The libFuzzer entry points of a target whose input function is `fn`: init_process() first, and the stories
// tokenizer built before the first input when `warm_tokenizer`. QUILL_FUZZ_MODEL_MUTATOR adds the structure-aware
// mutator of GGUF and quill files. Built into the test suite (QUILL_FUZZ_NO_MAIN), they are left out.
#ifndef QUILL_FUZZ_NO_MAIN
#define QUILL_FUZZ_ENTRY(fn, warm_tokenizer)                                                                       \
    extern "C" int LLVMFuzzerInitialize(int *, char ***) {                                                         \
        quill_fuzz::init_process();                                                                                \
        if (warm_tokenizer) (void) quill_fuzz::stories_tokenizer();                                                \
        return 0;                                                                                                  \
    }                                                                                                              \
    extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) { return fn(data, size); }
#define QUILL_FUZZ_MODEL_MUTATOR                                                                                   \
    extern "C" size_t LLVMFuzzerCustomMutator(uint8_t * data, size_t size, size_t max_size, unsigned int seed) { \
        return quill_fuzz::mutate_model_file(data, size, max_size, seed);                                          \
    }
#else
#define QUILL_FUZZ_ENTRY(fn, warm_tokenizer)
#define QUILL_FUZZ_MODEL_MUTATOR
#endif
