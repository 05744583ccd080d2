// libFuzzer target: a checkpoint's trainer state through load_checkpoint. The input is
// trainer_state.json, optionally followed by "\n==SAFETENSORS==\n" and the bytes of
// trainer_state.safetensors (else a valid one is used); the adapter files beside it are valid.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "fuzz/fuzz_support.h"
#include "io/safetensors.h"
#include "lora/peft_adapter.h"
#include "train/train_state.h"

namespace {

constexpr std::string_view kSeparator = "\n==SAFETENSORS==\n";

const std::string& checkpoint() {
    static const std::string dir = [] {
        const std::string d = qlora::fuzz::scratch() + "/ckpt";
        qlora::lora::PeftAdapter adapter;
        adapter.config.r = 2;
        adapter.config.target_modules = {"q_proj"};
        const std::string m = "model.layers.0.self_attn.q_proj";
        adapter.tensors[qlora::lora::lora_name(m, 'A')] = at::full({2, 8}, 0.5);
        adapter.tensors[qlora::lora::lora_name(m, 'B')] = at::zeros({8, 2});
        qlora::fuzz::write_file("ckpt/.keep", "");
        qlora::lora::save_peft_adapter(d, adapter);
        qlora::io::save_safetensors(
            d + "/valid_state.safetensors",
            {{"optimizer.state.0.step", at::tensor({3}, at::kLong)},
             {"optimizer.state.0.exp_avg", at::zeros({2, 8})},
             {"rng.cpu", at::detail::getDefaultCPUGenerator().get_state()}});
        return d;
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string dir = checkpoint();
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const size_t sep = input.find(kSeparator);
    qlora::fuzz::write_file("ckpt/trainer_state.json", input.substr(0, sep));
    if (sep != std::string_view::npos) {
        qlora::fuzz::write_file("ckpt/trainer_state.safetensors",
                                input.substr(sep + kSeparator.size()));
    } else {
        std::filesystem::copy_file(dir + "/valid_state.safetensors",
                                   dir + "/trainer_state.safetensors",
                                   std::filesystem::copy_options::overwrite_existing);
    }
    qlora::fuzz::expect_clean([&] { (void)qlora::train::load_checkpoint(dir); });
    return 0;
}
