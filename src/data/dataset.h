// A data file turned into tokenized samples, and the train/eval split the config asks for.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/records.h"
#include "data/sample.h"
#include "data/templates.h"

namespace qlora::data {

struct DatasetOptions {
    Format format = Format::kAlpaca;
    Template tmpl = Template::kAlpaca;
    TokenizeOptions tokenize;
    bool skip_bad = false;  // data.on_bad_record: skip
};

struct Dataset {
    std::vector<Sample> samples;
    std::vector<std::string> skipped;  // "FILE:LINE: why" per malformed record skipped
    int64_t truncated = 0;             // samples cut at max_seq_len
    int64_t dropped = 0;               // samples left without a label token by truncation
};

// Reads, renders and tokenizes every record of `path`, in file order; logs one warning summing
// up skipped, truncated and dropped samples.
Dataset load_dataset(const std::string& path, const tokenizer::Tokenizer& tok,
                     const DatasetOptions& options);

// Moves a deterministic fraction (by seed) of `samples` into the returned eval set: at least one
// sample, and at least one left for training. The rest keep their order.
std::vector<Sample> split_eval(std::vector<Sample>& samples, double fraction, uint64_t seed);

struct DataSplits {
    Dataset train;
    std::vector<Sample> eval;  // empty when the config names neither data.eval nor data.eval_split
};

// Where the samples come from: a training file, and an eval file or a fraction of the training
// file.
struct SplitSources {
    std::string train;
    std::optional<std::string> eval;
    std::optional<double> eval_split;
};
// The training file, and the eval file or a deterministic eval_split of the training samples.
DataSplits load_splits(const SplitSources& sources, const DatasetOptions& options, uint64_t seed,
                       const tokenizer::Tokenizer& tok);

}  // namespace qlora::data
