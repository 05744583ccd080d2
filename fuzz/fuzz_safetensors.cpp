// libFuzzer target: one .safetensors file (8-byte header length, JSON header, data) through
// SafetensorsReader, then every tensor's info and, when small, its data.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = qlora::fuzz::write_file("t.safetensors", data, size);
    qlora::fuzz::expect_clean([&] {
        qlora::io::SafetensorsReader reader(path);
        for (const std::string& name : reader.names()) {
            const qlora::io::TensorInfo& info = reader.info(name);
            if (info.end - info.begin <= (1u << 20)) {
                (void)reader.load(name);
                (void)reader.view(name);
            }
        }
        (void)reader.metadata();
    });
    return 0;
}
