// Output-vs-input checks on resolved paths, and removal of the parent folders a failed output made.
#include "io/path_guard.h"

#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace fs = std::filesystem;

namespace qlora::io {
namespace {

// true when `inner` is `outer` or lies below it (both resolved).
bool is_within(const fs::path& inner, const fs::path& outer) {
    auto i = inner.begin();
    for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
        if (o->empty()) continue;  // the empty last element of "a/b/"
        if (i == inner.end() || *i != *o) return false;
    }
    return true;
}

fs::path without_trailing_separator(fs::path p) {
    std::string s = p.string();
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    return fs::path(s);
}

}  // namespace

std::string resolved_path(const std::string& path) {
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    if (ec) abs = fs::path(path);
    fs::path resolved = fs::weakly_canonical(abs, ec);
    if (ec) resolved = abs.lexically_normal();
    return without_trailing_separator(resolved).string();
}

void check_output_not_input(const NamedPath& output, const std::vector<NamedPath>& inputs) {
    QLORA_CHECK(!output.path.empty(), output.role, " must not be empty");
    const fs::path out = resolved_path(output.path);
    for (const NamedPath& in : inputs) {
        if (in.path.empty()) continue;
        const fs::path input = resolved_path(in.path);
        const bool same = out == input;
        const bool contains = !same && is_within(input, out);
        const bool inside = !same && is_within(out, input);
        QLORA_CHECK(
            !same && !contains && !inside, output.role, " ", output.path,
            same       ? " is "
            : contains ? " contains "
                       : " lies inside ",
            in.role, " ", in.path, " (resolved: ", out.string(), " vs ", input.string(),
            "); writing there would destroy the input, so it is refused even with --overwrite; "
            "choose an output outside it");
    }
}

CreatedParents::CreatedParents(const std::string& path) {
    const fs::path target = fs::absolute(without_trailing_separator(path)).lexically_normal();
    std::vector<fs::path> missing;
    std::error_code ec;
    for (fs::path p = target.parent_path(); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
        missing.push_back(p);
        if (p == p.root_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (!fs::create_directory(*it, ec) || ec) break;  // the writer below reports the failure
        created_.push_back(it->string());
    }
}

CreatedParents::~CreatedParents() {
    // rmdir removes only empty folders: anything another process put there stays.
    for (auto it = created_.rbegin(); it != created_.rend(); ++it) ::rmdir(it->c_str());
}

}  // namespace qlora::io
