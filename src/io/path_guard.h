// Never destroy the user's inputs: an output path that is, contains or lies inside any input
// (after resolving "..", relative paths and symlinks) is refused before any work, whatever
// --overwrite says, because writing it (or replacing it atomically) would delete the input.
#pragma once

#include <string>
#include <vector>

namespace qlora::io {

struct NamedPath {
    std::string role;  // how the user named it: "--base", "model.path"
    std::string path;
};

// The path with every existing component resolved (symlinks followed) and the rest appended
// lexically: what the output would really be once created.
std::string resolved_path(const std::string& path);

// Throws qlora::Error (exit 2) naming both paths when `output` equals, contains or lies inside one
// of `inputs` (empty input paths are ignored).
void check_output_not_input(const NamedPath& output, const std::vector<NamedPath>& inputs);

// Folders created for an output's missing parents, removed again (deepest first, only while empty)
// unless keep() is called: a failed export leaves no folder behind that it created.
class CreatedParents {
  public:
    // Creates the missing ancestors of `path` (not `path` itself) and remembers them.
    explicit CreatedParents(const std::string& path);
    CreatedParents(const CreatedParents&) = delete;
    CreatedParents& operator=(const CreatedParents&) = delete;
    ~CreatedParents();
    void keep() { created_.clear(); }
    const std::vector<std::string>& created() const { return created_; }

  private:
    std::vector<std::string> created_;  // outermost first
};

}  // namespace qlora::io
