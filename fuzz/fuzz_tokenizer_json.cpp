// libFuzzer target: a tokenizer.json (model, added tokens, normalizer, pre-tokenizer,
// post-processor, decoder) through the Tokenizer constructor, then an encode of a varied text
// with and without special tokens and a decode of what came out.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_support.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string path = qlora::fuzz::write_file("tokenizer.json", data, size);
    qlora::fuzz::expect_clean([&] {
        const qlora::tokenizer::Tokenizer tok(path);
        const std::string text =
            "Hello  world\t\r\n 12345 don't \u00e9\u0301 \U0001F469\u200D\U0001F4BB <s>";
        for (bool special : {true, false}) (void)tok.decode(tok.encode(text, special), !special);
    });
    return 0;
}
