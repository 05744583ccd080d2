// libFuzzer target: a chat template's source through the Jinja engine (lexer, parser, evaluator
// under its render limits), rendered over a fixed conversation with and without the generation
// prompt, as qlora-train renders every record.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_template.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string source(reinterpret_cast<const char*>(data), size);
    static const nlohmann::ordered_json messages = nlohmann::ordered_json::parse(R"([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi \u00e9\u4f60 <|im_start|>"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": ""}])");
    qlora::fuzz::expect_clean([&] {
        const auto tmpl = qlora::chat::ChatTemplate::from_string(
            source, "fuzz.jinja", {{"bos_token", "<s>"}, {"eos_token", "</s>"}});
        (void)tmpl.render(messages, false);
        (void)tmpl.render(messages, true);
    });
    return 0;
}
