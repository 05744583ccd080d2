// fresh_dir(name): test::scratch_dir without its crash. libtorch.so exports its own
// std::filesystem::remove_all, which segfaults on an existing folder, so clear it with rm -rf first.
#pragma once

#include <string>

#include "support/test_support.h"

namespace qlora::test {

inline std::string fresh_dir(const std::string& name) {
    run_command("rm -rf '" + std::string(QLORA_BINARY_DIR) + "/test-scratch/" + name + "'");
    return scratch_dir(name);
}

}  // namespace qlora::test
