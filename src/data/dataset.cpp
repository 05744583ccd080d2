// Records -> samples for a whole file, and the eval split.
#include "data/dataset.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/log.h"
#include "data/chat_format.h"
#include "data/record_limits.h"
#include "data/rng.h"

namespace qlora::data {

Dataset load_dataset(const std::string& path, const tokenizer::Tokenizer& tok,
                     const DatasetOptions& options) {
    ReadResult read = read_records(path, options.format, options.skip_bad);
    Dataset ds;
    ds.skipped = std::move(read.skipped);
    ds.samples.reserve(read.records.size());
    const int64_t byte_budget = record_byte_budget(options.tokenize.max_seq_len);
    const ResolvedTemplate tmpl = resolve_template(options.tmpl, tok);
    TokenizeOptions full = options.tokenize;
    full.max_seq_len = INT64_MAX;
    for (Record& r : read.records) {
        cap_record_bytes(r, byte_budget);  // bounded tokenizing work however long the record
        Sample s = tmpl.chat && options.format != Format::kText
                       ? tokenize_with_chat_template(r, options.format, *tmpl.chat, tok, full)
                       : tokenize_segments(render(r, options.format, tmpl.tmpl), tok, full);
        if (static_cast<int64_t>(s.tokens.size()) > options.tokenize.max_seq_len) {
            ++ds.truncated;
            s.tokens.resize(options.tokenize.max_seq_len);
            s.labels.resize(options.tokenize.max_seq_len);
        }
        if (s.num_label_tokens() == 0) {
            ++ds.dropped;  // a prompt longer than max_seq_len: nothing left to learn
            continue;
        }
        ds.samples.push_back(std::move(s));
    }
    QLORA_CHECK(!ds.samples.empty(), path,
                ": no sample keeps a completion token within data.max_seq_len=",
                options.tokenize.max_seq_len);
    if (!ds.skipped.empty() || ds.truncated > 0 || ds.dropped > 0) {
        log_warn(path, ": ", ds.samples.size(), " samples; skipped ", ds.skipped.size(),
                 " malformed records, truncated ", ds.truncated, " samples to ",
                 options.tokenize.max_seq_len, " tokens, dropped ", ds.dropped,
                 " whose completion fell beyond it");
    }
    return ds;
}

std::vector<Sample> split_eval(std::vector<Sample>& samples, double fraction, uint64_t seed) {
    const int64_t n = static_cast<int64_t>(samples.size());
    QLORA_CHECK(n >= 2, "data.eval_split needs at least 2 samples, found ", n);
    const int64_t n_eval =
        std::clamp<int64_t>(static_cast<int64_t>(std::ceil(fraction * n)), 1, n - 1);
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    SplitMix64 rng = seeded_stream(seed, /*purpose=*/2, /*epoch=*/0);
    shuffle_in_place(order, rng);
    std::vector<bool> is_eval(n, false);
    for (int64_t i = 0; i < n_eval; ++i) is_eval[order[i]] = true;
    std::vector<Sample> train, eval;
    for (int64_t i = 0; i < n; ++i) (is_eval[i] ? eval : train).push_back(std::move(samples[i]));
    samples = std::move(train);
    return eval;
}

DataSplits load_splits(const SplitSources& sources, const DatasetOptions& options, uint64_t seed,
                       const tokenizer::Tokenizer& tok) {
    DataSplits splits;
    splits.train = load_dataset(sources.train, tok, options);
    if (sources.eval) {
        splits.eval = load_dataset(*sources.eval, tok, options).samples;
    } else if (sources.eval_split) {
        splits.eval = split_eval(splits.train.samples, *sources.eval_split, seed);
    }
    return splits;
}

}  // namespace qlora::data
