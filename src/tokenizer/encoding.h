// The result of encoding one text: ids and, per id, the byte range of the input it stands for
// (special tokens added by the post-processor cover nothing: {0, 0}).
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace qlora::tokenizer {

struct Encoding {
    std::vector<int64_t> ids;
    std::vector<std::pair<size_t, size_t>> offsets;  // [begin, end) bytes of the input text
};

}  // namespace qlora::tokenizer
