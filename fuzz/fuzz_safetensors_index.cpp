// libFuzzer target: model.safetensors.index.json of a sharded folder (weight_map -> shard files)
// through SafetensorsFolder, beside one real shard holding tensors "a" and "b".
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "io/safetensors.h"

namespace {

const std::string& folder() {
    static const std::string dir = [] {
        const std::string d = qlora::fuzz::scratch() + "/sharded";
        qlora::fuzz::write_file("sharded/.keep", "");
        qlora::io::save_safetensors(
            d + "/model-00001-of-00002.safetensors",
            {{"a", at::arange(6, at::kFloat).view({2, 3})}, {"b", at::ones({4}, at::kHalf)}});
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string dir = folder();
    qlora::fuzz::write_file("sharded/model.safetensors.index.json", data, size);
    qlora::fuzz::expect_clean([&] {
        qlora::io::SafetensorsFolder files(dir);
        for (const std::string& name : files.names()) {
            (void)files.info(name);
            (void)files.load(name);
        }
        (void)files.files();
    });
    return 0;
}
