// Bounded work per record: a sample keeps at most max_seq_len tokens, and no tokenizer piece is
// longer than limits::kMaxBytesPerToken bytes, so each text field is cut to max_seq_len *
// kMaxBytesPerToken bytes (at a UTF-8 boundary) before it is tokenized. The cut never changes the
// first max_seq_len tokens, and a 50 MB record costs what a 32 KB one does.
#pragma once

#include <cstdint>

#include "data/records.h"

namespace qlora::data {

// The byte budget of one text field for a given max_seq_len (saturating).
int64_t record_byte_budget(int64_t max_seq_len);

// Cuts every text field of `r` to `max_bytes`; returns true when something was cut.
bool cap_record_bytes(Record& r, int64_t max_bytes);

}  // namespace qlora::data
