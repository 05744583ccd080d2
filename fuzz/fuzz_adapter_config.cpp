// libFuzzer target: adapter_config.json of a PEFT LoRA folder (beside a valid
// adapter_model.safetensors of r 2) through load_peft_adapter.
#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "io/safetensors.h"
#include "lora/peft_adapter.h"

namespace {

const std::string& folder() {
    static const std::string dir = [] {
        const std::string d = qlora::fuzz::scratch() + "/adapter";
        qlora::fuzz::write_file("adapter/.keep", "");
        const std::string m = "base_model.model.model.layers.0.self_attn.q_proj";
        qlora::io::save_safetensors(d + "/adapter_model.safetensors",
                                    {{m + ".lora_A.weight", at::full({2, 8}, 0.5)},
                                     {m + ".lora_B.weight", at::zeros({8, 2})}});
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string dir = folder();
    qlora::fuzz::write_file("adapter/adapter_config.json", data, size);
    qlora::fuzz::expect_clean([&] { (void)qlora::lora::load_peft_adapter(dir); });
    return 0;
}
