#include "cli/commands/args.h"

#include "ggml-lite/common.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <omp.h>
#include <set>
#include <thread>
#include <fstream>

namespace quill {

Args::Args(std::string cmd, std::string synopsis, std::vector<OptSpec> specs)
    : cmd_(std::move(cmd)), synopsis_(std::move(synopsis)), specs_(std::move(specs)) {
    specs_.push_back({{"-h", "--help"}, "", "", "show this help"});
}

const OptSpec * Args::find(const std::string & name) const {
    for (const OptSpec & s : specs_) {
        for (const std::string & n : s.names) {
            if (n == name) return &s;
        }
    }
    return nullptr;
}

bool Args::parse(int argc, char ** argv) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (isdigit((unsigned char) a[1]) || a[1] == '.'))) {
            std::string val;
            bool has_eq = false;
            size_t eq = a.find('=');
            if (a.rfind("--", 0) == 0 && eq != std::string::npos) {
                val = a.substr(eq + 1);
                a = a.substr(0, eq);
                has_eq = true;
            }
            const OptSpec * s = find(a);
            if (!s) throw_error("%s: unknown option '%s' (see quill %s --help)", cmd_.c_str(), a.c_str(), cmd_.c_str());
            if (s->names[0] == "-h") {
                printf("%s", help().c_str());
                return false;
            }
            if (!s->value.empty() && !has_eq) {
                if (i + 1 >= argc) throw_error("%s: option %s needs a value (%s)", cmd_.c_str(), a.c_str(), s->value.c_str());
                val = argv[++i];
            }
            check(*s, a, val);
            values_[s->names[0]] = val;
        } else {
            positional_.push_back(a);
        }
    }
    return true;
}

void Args::check(const OptSpec & s, const std::string & name, const std::string & v) const {
    const OptCheck & c = s.check;
    if (c.kind == OptCheck::ANY) return;
    if (c.kind == OptCheck::CHOICE) {
        if (v.empty() && s.def.empty()) return;  // "" is the default: "pick it for me"
        std::string list;
        for (const std::string & x : c.choices) {
            if (x == v) return;
            list += (list.empty() ? "" : ", ") + x;
        }
        throw_error("%s: option %s must be one of %s, got '%s'", cmd_.c_str(), name.c_str(), list.c_str(), v.c_str());
    }
    const bool integer = c.kind == OptCheck::INT;
    const std::string what = integer ? strfmt("an integer between %lld and %lld", (long long) c.lo, (long long) c.hi)
                                     : strfmt("a number between %g and %g", c.lo, c.hi);
    char * end = nullptr;
    errno = 0;
    bool ok = !v.empty() && !isspace((unsigned char) v[0]);
    if (ok && integer) {
        const long long x = strtoll(v.c_str(), &end, 10);
        ok = *end == '\0' && errno == 0 && (double) x >= c.lo && (double) x <= c.hi;
    } else if (ok) {
        const double x = strtod(v.c_str(), &end);
        ok = *end == '\0' && errno == 0 && std::isfinite(x) && x >= c.lo && x <= c.hi;
    }
    if (!ok) throw_error("%s: option %s must be %s, got '%s'", cmd_.c_str(), name.c_str(), what.c_str(), v.c_str());
}

bool Args::has(const std::string & name) const {
    const OptSpec * s = find(name);
    return s && values_.count(s->names[0]);
}

std::string Args::str(const std::string & name) const {
    const OptSpec * s = find(name);
    GL_ASSERT(s);
    auto it = values_.find(s->names[0]);
    return it != values_.end() ? it->second : s->def;
}

long long Args::num(const std::string & name) const {
    const OptSpec * s = find(name);
    GL_ASSERT(s);
    const std::string v = str(name);
    // An option without a declared range still never wraps around: it must fit the int32 its callers store.
    OptSpec spec = *s;
    if (spec.check.kind != OptCheck::INT) spec.check = int_in(INT32_MIN, INT32_MAX);
    check(spec, name, v);  // the default too
    return strtoll(v.c_str(), nullptr, 10);
}

double Args::real(const std::string & name) const {
    const OptSpec * s = find(name);
    GL_ASSERT(s);
    const std::string v = str(name);
    OptSpec spec = *s;
    if (spec.check.kind != OptCheck::INT && spec.check.kind != OptCheck::REAL) spec.check = real_in(-1e300, 1e300);  // finite
    check(spec, name, v);
    return strtod(v.c_str(), nullptr);
}

std::string Args::help() const {
    std::string out = "usage: quill " + cmd_ + " " + synopsis_ + "\n\noptions:\n";
    for (const OptSpec & s : specs_) {
        std::string left = "  ";
        for (size_t k = 0; k < s.names.size(); ++k) left += (k ? ", " : "") + s.names[k];
        if (!s.value.empty()) left += " " + s.value;
        if (left.size() < 30) left.resize(30, ' ');
        else left += "  ";
        out += left + s.help;
        if (!s.def.empty()) out += " (default: " + s.def + ")";
        out += "\n";
    }
    return out;
}

// Physical cores: distinct (physical id, core id) pairs in /proc/cpuinfo, else the logical count.
static int physical_cores() {
    std::ifstream f("/proc/cpuinfo");
    std::set<std::string> cores;
    std::string line, phys;
    while (std::getline(f, line)) {
        if (line.rfind("physical id", 0) == 0) phys = line.substr(line.find(':') + 1);
        if (line.rfind("core id", 0) == 0) cores.insert(phys + "/" + line.substr(line.find(':') + 1));
    }
    int n = (int) cores.size();
    int logical = (int) std::thread::hardware_concurrency();
    return n > 0 && n <= logical ? n : (logical > 0 ? logical : 1);
}

void set_threads(long long n) {
    if (n < 0 || n > 4096) throw_error("invalid thread count %lld", n);
    omp_set_num_threads(n == 0 ? physical_cores() : (int) n);
}

}  // namespace quill
