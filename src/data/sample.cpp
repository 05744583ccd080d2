// Segments -> tokens and masked labels.
#include "data/sample.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {

int64_t Sample::num_label_tokens() const {
    return std::count_if(labels.begin(), labels.end(), [](int64_t l) { return l != kIgnoreIndex; });
}

Sample tokenize_segments(const std::vector<Segment>& segments, const tokenizer::Tokenizer& tok,
                         const TokenizeOptions& options) {
    QLORA_CHECK(tok.bos_id() >= 0 && tok.eos_id() >= 0, "tokenizer ", tok.path(),
                " has no BOS/EOS ids; the data pipeline needs both");
    Sample s;
    auto push = [&](int64_t id, bool label) {
        s.tokens.push_back(id);
        s.labels.push_back(label ? id : kIgnoreIndex);
    };
    push(tok.bos_id(), false);
    for (const Segment& seg : segments) {
        const bool label = seg.completion || options.train_on_inputs;
        if (seg.bos) push(tok.bos_id(), label);
        for (int64_t id : tok.encode(seg.text, /*add_bos=*/false, /*add_eos=*/false))
            push(id, label);
        if (seg.completion) push(tok.eos_id(), true);
    }
    if (static_cast<int64_t>(s.tokens.size()) > options.max_seq_len) {
        s.tokens.resize(options.max_seq_len);
        s.labels.resize(options.max_seq_len);
    }
    return s;
}

}  // namespace qlora::data
