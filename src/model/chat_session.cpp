// Conversation turns through the chat template (model/chat_session.h).
#include "model/chat_session.h"

#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace qlora::model {

ChatSession::ChatSession(Llama& model, const tokenizer::Tokenizer& tok,
                         chat::ChatTemplate chat_template, GenerateOptions options,
                         const std::string& system)
    : model_(model), tok_(tok), template_(std::move(chat_template)), options_(std::move(options)) {
    if (!system.empty()) messages_.push_back({{"role", "system"}, {"content", system}});
}

std::string ChatSession::reply(const std::string& user,
                               const std::function<void(const std::string&)>& on_text) {
    messages_.push_back({{"role", "user"}, {"content", user}});
    const std::string text = template_.render(messages_, /*add_generation_prompt=*/true);
    const std::vector<int64_t> prompt =
        tok_.encode_with_offsets(text, /*add_special_tokens=*/false).ids;
    TextStreamer streamer(tok_);
    const GenerateResult r = generate(model_, prompt, options_, [&](int64_t id) {
        const std::string piece = streamer.push({id});
        if (on_text && !piece.empty()) on_text(piece);
    });
    const std::string rest = streamer.finish();
    if (on_text && !rest.empty()) on_text(rest);
    std::vector<int64_t> fresh(r.tokens.begin() + r.prompt_tokens, r.tokens.end());
    const auto& stops = options_.stop_ids;
    if (!fresh.empty() && std::find(stops.begin(), stops.end(), fresh.back()) != stops.end()) {
        fresh.pop_back();  // the end-of-turn token is the template's to write
    }
    const std::string answer = tok_.decode(fresh, /*skip_special_tokens=*/true);
    messages_.push_back({{"role", "assistant"}, {"content", answer}});
    return answer;
}

}  // namespace qlora::model
