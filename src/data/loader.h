// DataLoader: the epoch-by-epoch order of batches as a pure function of (samples, options, seed,
// epoch), walked by a cursor {epoch, index} that a checkpoint saves and restores exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "data/batch.h"
#include "data/sample.h"

namespace qlora::data {

struct LoaderOptions {
    int64_t micro_batch = 1;
    int64_t max_seq_len = 512;  // the packed row length
    bool packing = false;
    bool group_by_length = false;
    bool shuffle = true;
    uint64_t seed = 42;
    int64_t pad_id = 0;
};

struct LoaderState {
    int64_t epoch = 0;  // 0-based
    int64_t index = 0;  // the next batch within the epoch
    bool operator==(const LoaderState&) const = default;
};

// Each epoch:
//  1. sample order: 0..n-1, Fisher-Yates shuffled by splitmix64(seed, epoch) when `shuffle`;
//  2. rows: one sample each, or greedy packing in that order up to max_seq_len tokens;
//  3. group_by_length: rows sorted by length (longest first) within chunks of 64 batches, then,
//  when
//     shuffling, the batches of the epoch shuffled so long and short ones alternate across steps;
//  4. batches: consecutive micro_batch rows; the last one of an epoch may be smaller.
class DataLoader {
  public:
    DataLoader(std::vector<Sample> samples, const LoaderOptions& options);

    // The batch at the cursor; the cursor then moves on, into the next epoch after the last batch.
    Batch next();
    // Batch `index` of `epoch`, without moving the cursor (eval loops, tests).
    Batch batch_at(int64_t epoch, int64_t index);
    // With packing this depends on the epoch's order; without, it is ceil(n / micro_batch).
    int64_t batches_in_epoch(int64_t epoch);

    LoaderState state() const { return cursor_; }
    // Continues exactly where `state` was taken: the same batches follow.
    void restore(const LoaderState& state);

    // Sample indices of each row of each batch of `epoch`.
    const std::vector<std::vector<std::vector<int64_t>>>& plan(int64_t epoch);
    const std::vector<Sample>& samples() const { return samples_; }
    const LoaderOptions& options() const { return options_; }

  private:
    std::vector<Sample> samples_;
    LoaderOptions options_;
    LoaderState cursor_;
    int64_t planned_epoch_ = -1;
    std::vector<std::vector<std::vector<int64_t>>> plan_;  // [batch][row][sample index]
};

}  // namespace qlora::data
