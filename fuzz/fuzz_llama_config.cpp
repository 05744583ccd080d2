// libFuzzer target: a Hugging Face config.json through LlamaConfig::load (JSON syntax, key types,
// bounds, relations, rope scaling, quantization_config), then the sizes derived from it.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "model/llama_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = qlora::fuzz::write_file("config.json", data, size);
    qlora::fuzz::expect_clean([&] {
        const qlora::model::LlamaConfig c = qlora::model::LlamaConfig::load(path);
        (void)c.num_parameters();
        (void)c.q_dim();
        (void)c.kv_dim();
        (void)c.is_eos(0);
    });
    return 0;
}
