// Tokenizer vs model vocabulary (model/vocab_check.h).
#include "model/vocab_check.h"

#include "core/error.h"

namespace qlora::model {

void check_vocab_fits(int64_t tokenizer_vocab, const std::string& tokenizer_source,
                      const LlamaConfig& config, const std::string& model_dir) {
    QLORA_CHECK(tokenizer_vocab <= config.vocab_size, "the tokenizer of ", tokenizer_source,
                " has ", tokenizer_vocab, " tokens, but ", model_dir,
                "/config.json has vocab_size ", config.vocab_size, ": token ids up to ",
                tokenizer_vocab - 1,
                " would have no embedding; use the tokenizer the model was trained with");
}

}  // namespace qlora::model
