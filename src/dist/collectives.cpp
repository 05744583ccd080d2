#include "dist/collectives.h"

#include <vector>

namespace qlora::dist {

std::string rank_list(const std::vector<int>& ranks) {
    std::string out = ranks.size() == 1 ? "rank " : "ranks ";
    for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
    return out;
}

}  // namespace qlora::dist
