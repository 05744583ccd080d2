// libFuzzer target: the trainer's YAML config through load_config (YAML syntax, duplicate keys,
// sections, field types, validation, size limits, path resolution).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = qlora::fuzz::write_file("train.yaml", data, size);
    qlora::fuzz::expect_clean([&] { (void)qlora::train::load_config(path, {}); });
    return 0;
}
