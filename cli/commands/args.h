// Table-driven command-line options shared by the subcommands: each option has its names, a value kind,
// a default shown in --help, and its help text. Unknown options and bad values are errors naming the option.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace quill {

// What an option's value must be, checked when it is parsed (and on its default), so every subcommand reports a
// bad value the same way: "run: option -c must be an integer between 0 and 16777216, got '4294967360'".
struct OptCheck {
    enum Kind { ANY, INT, REAL, CHOICE } kind = ANY;
    double lo = 0, hi = 0;             // INT and REAL: the inclusive range
    std::vector<std::string> choices;  // CHOICE: the accepted values
};
inline OptCheck int_in(long long lo, long long hi) { return {OptCheck::INT, (double) lo, (double) hi, {}}; }
inline OptCheck real_in(double lo, double hi) { return {OptCheck::REAL, lo, hi, {}}; }
inline OptCheck one_of(std::vector<std::string> choices) { return {OptCheck::CHOICE, 0, 0, std::move(choices)}; }

struct OptSpec {
    std::vector<std::string> names;  // e.g. {"-m", "--model"}
    std::string value;               // value placeholder ("FILE", "N"); empty for a flag
    std::string def;                 // default, as text ("" for none)
    std::string help;
    OptCheck check = {};             // what the value must be (num() and real() need INT and REAL)
};

class Args {
public:
    Args(std::string cmd, std::string synopsis, std::vector<OptSpec> specs);
    // Parses argv (after the subcommand). Positional arguments are collected. Returns false after printing help.
    bool parse(int argc, char ** argv);
    bool has(const std::string & name) const;
    std::string str(const std::string & name) const;  // value or default
    // An INT option's value, checked against its range (an option without one: against int32's).
    long long   num(const std::string & name) const;
    // A REAL or INT option's value, checked against its range (an option without one: any finite number).
    double      real(const std::string & name) const;
    bool        flag(const std::string & name) const { return has(name); }
    const std::vector<std::string> & positional() const { return positional_; }
    std::string help() const;

private:
    std::string cmd_, synopsis_;
    std::vector<OptSpec> specs_;
    std::map<std::string, std::string> values_;  // canonical (first) name -> value
    std::vector<std::string> positional_;
    const OptSpec * find(const std::string & name) const;
    void check(const OptSpec & s, const std::string & name, const std::string & value) const;
};

// Bounds shared by the subcommands' options: positions in a context (and tokens per batch or generation), threads.
constexpr long long kMaxTokens = 1 << 24;
constexpr long long kMaxThreads = 4096;

// Subcommands. Each returns the process exit code; errors are thrown as quill::Error.
int cmd_convert(int argc, char ** argv);
int cmd_run(int argc, char ** argv);
int cmd_perplexity(int argc, char ** argv);
int cmd_info(int argc, char ** argv);
int cmd_bench(int argc, char ** argv);

// Sets the OpenMP thread count from -t (0 = default: the physical cores).
void set_threads(long long n);

}  // namespace quill
