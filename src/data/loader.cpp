// Epoch plans (shuffle, pack, group by length, batch) and the resumable cursor.
#include "data/loader.h"

#include <algorithm>

#include "core/error.h"
#include "data/rng.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {
namespace {

constexpr int64_t kGroupChunkBatches = 64;  // HF's LengthGroupedSampler uses megabatches of 50
constexpr uint64_t kShufflePurpose = 1;

}  // namespace

DataLoader::DataLoader(std::vector<Sample> samples, const LoaderOptions& options)
    : samples_(std::move(samples)), options_(options) {
    QLORA_CHECK(!samples_.empty(), "DataLoader: no samples");
    QLORA_CHECK(options_.micro_batch > 0, "DataLoader: micro_batch must be > 0, got ",
                options_.micro_batch);
    for (const Sample& s : samples_) {
        QLORA_CHECK(!s.tokens.empty() && s.tokens.size() == s.labels.size(),
                    "DataLoader: a sample must have tokens and as many labels");
        QLORA_CHECK(
            !options_.packing || static_cast<int64_t>(s.tokens.size()) <= options_.max_seq_len,
            "DataLoader: a sample is longer than max_seq_len=", options_.max_seq_len);
    }
}

const std::vector<std::vector<std::vector<int64_t>>>& DataLoader::plan(int64_t epoch) {
    if (epoch == planned_epoch_) return plan_;
    const int64_t n = static_cast<int64_t>(samples_.size());
    std::vector<int64_t> order(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
    SplitMix64 rng = seeded_stream(options_.seed, kShufflePurpose, static_cast<uint64_t>(epoch));
    if (options_.shuffle) shuffle_in_place(order, rng);

    std::vector<std::vector<int64_t>> rows;
    if (options_.packing) {
        rows = pack_rows(order, samples_, options_.max_seq_len);
    } else {
        for (int64_t i : order) rows.push_back({i});
    }
    auto row_len = [&](const std::vector<int64_t>& row) {
        int64_t len = 0;
        for (int64_t i : row) len += static_cast<int64_t>(samples_[i].tokens.size());
        return len;
    };
    if (options_.group_by_length) {
        const size_t chunk = static_cast<size_t>(kGroupChunkBatches * options_.micro_batch);
        for (size_t begin = 0; begin < rows.size(); begin += chunk) {
            const auto end =
                rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), begin + chunk));
            std::stable_sort(rows.begin() + static_cast<std::ptrdiff_t>(begin), end,
                             [&](const auto& a, const auto& b) { return row_len(a) > row_len(b); });
        }
    }
    plan_.clear();
    for (size_t r = 0; r < rows.size(); r += static_cast<size_t>(options_.micro_batch)) {
        const size_t end = std::min(rows.size(), r + static_cast<size_t>(options_.micro_batch));
        plan_.emplace_back(rows.begin() + static_cast<std::ptrdiff_t>(r),
                           rows.begin() + static_cast<std::ptrdiff_t>(end));
    }
    if (options_.group_by_length && options_.shuffle) shuffle_in_place(plan_, rng);
    planned_epoch_ = epoch;
    return plan_;
}

int64_t DataLoader::batches_in_epoch(int64_t epoch) {
    return static_cast<int64_t>(plan(epoch).size());
}

Batch DataLoader::batch_at(int64_t epoch, int64_t index) {
    const auto& batches = plan(epoch);
    QLORA_CHECK(index >= 0 && index < static_cast<int64_t>(batches.size()), "DataLoader: batch ",
                index, " out of range for epoch ", epoch, " (", batches.size(), " batches)");
    std::vector<std::vector<const Sample*>> rows;
    for (const auto& row : batches[index]) {
        rows.emplace_back();
        for (int64_t i : row) rows.back().push_back(&samples_[i]);
    }
    return collate(rows, options_.pad_id);
}

Batch DataLoader::next() {
    if (cursor_.index >= batches_in_epoch(cursor_.epoch)) {
        ++cursor_.epoch;
        cursor_.index = 0;
    }
    Batch b = batch_at(cursor_.epoch, cursor_.index);
    ++cursor_.index;
    return b;
}

void DataLoader::restore(const LoaderState& state) {
    QLORA_CHECK(
        state.epoch >= 0 && state.index >= 0 && state.index <= batches_in_epoch(state.epoch),
        "DataLoader: cannot restore cursor {epoch ", state.epoch, ", index ", state.index,
        "}: the data differs from the checkpoint's (", batches_in_epoch(state.epoch),
        " batches in that epoch)");
    cursor_ = state;
}

}  // namespace qlora::data
