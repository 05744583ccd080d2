// A data file turned into tokenized samples, and the train/eval split the config asks for.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/records.h"
#include "data/sample.h"
#include "data/templates.h"

namespace qlora::train {
struct DataConfig;
}

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
Dataset load_dataset(const std::string& path, const tokenizer::Tokenizer& tok, const DatasetOptions& options);

// Moves a deterministic fraction (by seed) of `samples` into the returned eval set: at least one
// sample, and at least one left for training. The rest keep their order.
std::vector<Sample> split_eval(std::vector<Sample>& samples, double fraction, uint64_t seed);

struct DataSplits {
    Dataset train;
    std::vector<Sample> eval;  // empty when the config names neither data.eval nor data.eval_split
};

DatasetOptions dataset_options(const train::DataConfig& config);
// data.train, and data.eval or data.eval_split, as the config says.
DataSplits load_splits(const train::DataConfig& config, uint64_t seed, const tokenizer::Tokenizer& tok);

}  // namespace qlora::data
