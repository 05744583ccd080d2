// Cutting over-long record fields before tokenizing (data/record_limits.h).
#include "data/record_limits.h"

#include <limits>
#include <string>

#include "core/limits.h"

namespace qlora::data {
namespace {

bool cap(std::string& text, size_t max_bytes) {
    if (text.size() <= max_bytes) return false;
    size_t cut = max_bytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
        --cut;  // not inside a character
    text.resize(cut);
    return true;
}

}  // namespace

int64_t record_byte_budget(int64_t max_seq_len) {
    if (max_seq_len <= 0) return 0;
    if (max_seq_len > std::numeric_limits<int64_t>::max() / limits::kMaxBytesPerToken) {
        return std::numeric_limits<int64_t>::max();
    }
    return max_seq_len * limits::kMaxBytesPerToken;
}

bool cap_record_bytes(Record& r, int64_t max_bytes) {
    if (max_bytes <= 0) return false;
    const auto max = static_cast<size_t>(max_bytes);
    bool cut = false;
    for (std::string* field : {&r.text, &r.instruction, &r.input, &r.output})
        cut = cap(*field, max) || cut;
    for (Message& m : r.messages) cut = cap(m.content, max) || cut;
    return cut;
}

}  // namespace qlora::data
