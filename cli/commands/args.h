// Table-driven command-line options shared by the subcommands: each option has its names, a value kind,
// a default shown in --help, and its help text. Unknown options and bad values are errors naming the option.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace quill {

struct OptSpec {
    std::vector<std::string> names;  // e.g. {"-m", "--model"}
    std::string value;               // value placeholder ("FILE", "N"); empty for a flag
    std::string def;                 // default, as text ("" for none)
    std::string help;
};

class Args {
public:
    Args(std::string cmd, std::string synopsis, std::vector<OptSpec> specs);
    // Parses argv (after the subcommand). Positional arguments are collected. Returns false after printing help.
    bool parse(int argc, char ** argv);
    bool has(const std::string & name) const;
    std::string str(const std::string & name) const;  // value or default
    long long   num(const std::string & name) const;  // integer; error naming the option when not one
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
};

// Subcommands. Each returns the process exit code; errors are thrown as quill::Error.
int cmd_convert(int argc, char ** argv);
int cmd_run(int argc, char ** argv);
int cmd_perplexity(int argc, char ** argv);
int cmd_info(int argc, char ** argv);
int cmd_bench(int argc, char ** argv);

// Sets the OpenMP thread count from -t (0 = default: the physical cores).
void set_threads(long long n);

}  // namespace quill
