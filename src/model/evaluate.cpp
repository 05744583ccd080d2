// Document reading and windowed cross-entropy.
#include "model/evaluate.h"

#include <cmath>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "io/finite_check.h"

namespace qlora::model {
namespace {

std::string strip(const std::string& s) {
    const char* ws = " \t\r\n";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string document_of(const nlohmann::json& j, const std::string& where) {
    QLORA_CHECK(j.is_object(), where, ": expected a JSON object, found ", j.type_name());
    auto str = [&](const char* key) {
        return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    if (j.contains("text")) {
        QLORA_CHECK(j["text"].is_string(), where, ": 'text' expected a string, found ", j["text"].dump());
        return str("text");
    }
    if (j.contains("prompt") || j.contains("completion")) return str("prompt") + str("completion");
    if (j.contains("instruction") || j.contains("output")) {
        std::string doc = str("instruction");
        for (const char* key : {"input", "output"}) {
            if (!str(key).empty()) doc += (doc.empty() ? "" : "\n\n") + str(key);
        }
        return doc;
    }
    QLORA_FAIL(where, ": expected a 'text' field (or prompt/completion, or instruction/input/output)");
}

}  // namespace

std::vector<std::string> read_documents(const std::string& path, const std::string& format) {
    std::ifstream in(path);
    QLORA_CHECK(in.good(), "cannot read data file ", path);
    std::vector<std::string> docs;
    std::string line;
    if (format == "text") {
        std::string current;
        while (std::getline(in, line)) {
            if (strip(line) == "<|endoftext|>") {
                docs.push_back(strip(current));
                current.clear();
            } else {
                current += line + "\n";
            }
        }
        docs.push_back(strip(current));
    } else if (format == "jsonl") {
        int64_t number = 0;
        while (std::getline(in, line)) {
            ++number;
            if (strip(line).empty()) continue;
            const std::string where = path + ":" + std::to_string(number);
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error& e) {
                QLORA_FAIL(where, ": not valid JSON (", e.what(), ")");
            }
            docs.push_back(strip(document_of(j, where)));
        }
    } else {
        QLORA_FAIL("data format must be text or jsonl, got '", format, "'");
    }
    std::erase_if(docs, [](const std::string& d) { return d.empty(); });
    QLORA_CHECK(!docs.empty(), path, ": no documents found");
    return docs;
}

std::vector<int64_t> tokenize_documents(const tokenizer::Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents) {
    std::vector<int64_t> stream;
    for (const auto& doc : documents) {
        std::vector<int64_t> ids = tokenizer.encode(doc, /*add_bos=*/true);
        stream.insert(stream.end(), ids.begin(), ids.end());
    }
    return stream;
}

EvalResult evaluate_stream(Llama& model, const std::vector<int64_t>& stream, int64_t max_seq_len,
                           int64_t skip_target) {
    QLORA_CHECK(max_seq_len >= 1, "max sequence length must be >= 1, got ", max_seq_len);
    QLORA_CHECK(stream.size() >= 2, "evaluation needs at least two tokens, got ", stream.size());
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(stream.size());
    at::Tensor all = at::tensor(stream, at::kLong);
    double total = 0.0;
    int64_t count = 0;
    // Window w: inputs stream[s, s + L), targets stream[s + 1, s + L + 1); the next window starts
    // at the last target, so every token but the first is a target exactly once.
    for (int64_t s = 0; s + 1 < n; s += max_seq_len) {
        const int64_t len = std::min(max_seq_len, n - 1 - s);
        at::Tensor inputs = all.narrow(0, s, len).view({1, len});
        at::Tensor targets = all.narrow(0, s + 1, len).clone();
        if (skip_target >= 0) targets.masked_fill_(targets == skip_target, -100);
        at::Tensor logits = model->forward(inputs)[0].to(at::kFloat);  // [len, V]
        total += at::cross_entropy_loss(logits, targets.to(logits.device()), {}, at::Reduction::Sum, -100)
                     .item<double>();
        count += (targets != -100).sum().item<int64_t>();
    }
    QLORA_CHECK(count > 0, "no tokens to score (every target was skipped)");
    EvalResult r;
    r.tokens = count;
    r.loss = total / static_cast<double>(count);
    r.perplexity = std::exp(r.loss);
    // Never print {"loss": null}: a NaN comes from the weights (named) or from overflow.
    if (!std::isfinite(r.loss) || !std::isfinite(r.perplexity)) {
        const std::optional<std::string> bad = io::first_nonfinite_tensor(*model);
        QLORA_RUNTIME_CHECK(false, "eval loss is not finite (", r.loss, "): ",
                            bad ? "the model's tensor '" + *bad + "' holds NaN or Inf"
                                : std::string("the logits overflowed; try --dtype float32"));
    }
    return r;
}

}  // namespace qlora::model
