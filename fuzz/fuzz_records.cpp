// libFuzzer target: training records through read_records. The first byte picks the file type
// (.jsonl / .json / .txt), the record format (text / alpaca / chat) and on_bad_record; the rest is
// the file.
#include <cstddef>
#include <cstdint>

#include "data/records.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const char* extensions[] = {".jsonl", ".json", ".txt"};
    const qlora::data::Format formats[] = {qlora::data::Format::kText, qlora::data::Format::kAlpaca,
                                           qlora::data::Format::kChat};
    const uint8_t pick = data[0];
    const std::string path =
        qlora::fuzz::write_file(std::string("records") + extensions[pick % 3], data + 1, size - 1);
    qlora::fuzz::expect_clean([&] {
        (void)qlora::data::read_records(path, formats[(pick / 3) % 3], (pick / 9) % 2 == 1);
    });
    return 0;
}
