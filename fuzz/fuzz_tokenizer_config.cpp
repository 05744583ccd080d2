// libFuzzer target: tokenizer_config.json beside the stories260K tokenizer.model (its
// added_tokens_decoder and bos/eos/pad/unk entries), through the Tokenizer constructor.
// QLORA_FUZZ_TOKENIZER_MODEL names the tokenizer.model (scripts/fuzz.sh sets it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz/fuzz_support.h"
#include "tokenizer/tokenizer.h"

namespace {

const std::string& folder() {
    static const std::string dir = [] {
        const char* model = std::getenv("QLORA_FUZZ_TOKENIZER_MODEL");
        if (model == nullptr) {
            std::fprintf(stderr, "set QLORA_FUZZ_TOKENIZER_MODEL to a tokenizer.model\n");
            std::abort();
        }
        std::ifstream in(model, std::ios::binary);
        std::ostringstream bytes;
        bytes << in.rdbuf();
        qlora::fuzz::write_file("tok/tokenizer.model", bytes.str());
        return qlora::fuzz::scratch() + "/tok";
    }();
    return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string dir = folder();
    qlora::fuzz::write_file("tok/tokenizer_config.json", data, size);
    qlora::fuzz::expect_clean([&] {
        qlora::tokenizer::Tokenizer tok(dir);
        (void)tok.bos_id();
        (void)tok.eos_id();
        (void)tok.pad_id();
    });
    return 0;
}
