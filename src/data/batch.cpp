// Collation into tensors and greedy packing.
#include "data/batch.h"

#include <algorithm>

#include "core/error.h"

namespace qlora::data {

Batch collate(const std::vector<std::vector<const Sample*>>& rows, int64_t pad_id) {
    QLORA_CHECK(!rows.empty(), "collate: no rows");
    const int64_t B = static_cast<int64_t>(rows.size());
    int64_t T = 1;
    for (const auto& row : rows) {
        int64_t len = 0;
        for (const Sample* s : row) len += static_cast<int64_t>(s->tokens.size());
        T = std::max(T, len);
    }
    const auto opts = at::TensorOptions().dtype(at::kLong);
    Batch b;
    b.tokens = at::full({B, T}, pad_id, opts);
    b.labels = at::full({B, T}, kIgnoreIndex, opts);
    b.position_ids = at::zeros({B, T}, opts);
    b.document_ids = at::full({B, T}, -1, opts);
    auto tok = b.tokens.accessor<int64_t, 2>();
    auto lab = b.labels.accessor<int64_t, 2>();
    auto pos = b.position_ids.accessor<int64_t, 2>();
    auto doc = b.document_ids.accessor<int64_t, 2>();
    for (int64_t r = 0; r < B; ++r) {
        int64_t t = 0;
        for (size_t d = 0; d < rows[r].size(); ++d) {
            const Sample& s = *rows[r][d];
            for (size_t i = 0; i < s.tokens.size(); ++i, ++t) {
                tok[r][t] = s.tokens[i];
                lab[r][t] = s.labels[i];
                pos[r][t] = static_cast<int64_t>(i);
                doc[r][t] = static_cast<int64_t>(d);
            }
            b.num_label_tokens += s.num_label_tokens();
            b.num_tokens += static_cast<int64_t>(s.tokens.size());
        }
    }
    // [B, T, 1] == [B, 1, T]: same sample; padding keys are masked, padding queries keep the
    // diagonal.
    const at::Tensor same = b.document_ids.unsqueeze(2) == b.document_ids.unsqueeze(1);
    const at::Tensor real_key = (b.document_ids >= 0).unsqueeze(1);
    const at::Tensor diagonal = at::eye(T, at::TensorOptions().dtype(at::kBool)).unsqueeze(0);
    b.attention_mask = ((same & real_key) | diagonal).unsqueeze(1);
    return b;
}

std::vector<std::vector<int64_t>> pack_rows(const std::vector<int64_t>& order,
                                            const std::vector<Sample>& samples, int64_t row_len) {
    std::vector<std::vector<int64_t>> rows;
    int64_t used = 0;
    for (int64_t idx : order) {
        const int64_t len = static_cast<int64_t>(samples.at(idx).tokens.size());
        QLORA_CHECK(len <= row_len, "pack_rows: sample ", idx, " has ", len,
                    " tokens, more than the row's ", row_len);
        if (rows.empty() || used + len > row_len) {
            rows.emplace_back();
            used = 0;
        }
        rows.back().push_back(idx);
        used += len;
    }
    return rows;
}

}  // namespace qlora::data
