// A run killed while appending to metrics.jsonl leaves a partial last line; appending the resumed
// run's lines after it would glue the two into one invalid JSON line. Before appending, the
// partial tail (bytes after the last '\n') is cut off.
#pragma once

#include <string>

namespace qlora::train {

// Truncates `path` after its last newline; a missing file is fine. Returns the bytes removed.
size_t drop_partial_last_line(const std::string& path);

}  // namespace qlora::train
