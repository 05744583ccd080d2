// libFuzzer target: one .gguf file through everything that reads a GGUF before any tensor math:
// the container (GgufReader: header, every metadata value, tensor infos, alignment), each small
// tensor's dequantization, the llama.* hyperparameters (GgufLlamaFile) and the tokenizer rebuilt
// from tokenizer.ggml.* (gguf_hf_tokenizer, then the Tokenizer over it).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "io/gguf_reader.h"
#include "model/gguf_model.h"
#include "tokenizer/gguf_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = qlora::fuzz::write_file("t.gguf", data, size);
    qlora::fuzz::expect_clean([&] {
        const qlora::io::GgufReader reader(path);
        for (const std::string& key : reader.keys()) (void)reader.get(key).describe();
        for (const qlora::io::GgufTensorInfo& t : reader.tensors()) {
            if (t.nbytes <= (1u << 16)) (void)reader.dequantize(t.name);
        }
    });
    qlora::fuzz::expect_clean([&] { (void)qlora::model::GgufLlamaFile(path); });
    qlora::fuzz::expect_clean([&] {
        const auto tok = qlora::tokenizer::Tokenizer(path);
        (void)tok.decode(tok.encode("Hello world <|im_start|> 123", true), false);
    });
    return 0;
}
