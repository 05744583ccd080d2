// Post-processors, as HF's process() for a single sequence.
#include "tokenizer/post_processors.h"

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_json.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

class TemplateProcessing final : public PostProcessor {
  public:
    TemplateProcessing(const json& config, const std::string& where) {
        const json& single = hf_json::get_array(config, "single", where);
        QLORA_CHECK(config.contains("special_tokens") && config["special_tokens"].is_object(),
                    where, ": expected 'special_tokens' as an object");
        const json& specials = config["special_tokens"];
        bool seen_sequence = false;
        for (size_t i = 0; i < single.size(); ++i) {
            const std::string at = where + ".single[" + std::to_string(i) + "]";
            const json& piece = single[i];
            if (piece.contains("Sequence")) {
                QLORA_CHECK(!seen_sequence, at, ": the single template has two sequences");
                seen_sequence = true;
                continue;
            }
            QLORA_CHECK(piece.contains("SpecialToken"), at,
                        ": expected {\"SpecialToken\": ...} or {\"Sequence\": ...}, found ",
                        hf_json::excerpt(piece));
            const std::string name = hf_json::get_string(piece["SpecialToken"], "id", at);
            QLORA_CHECK(specials.contains(name), at, ": special token '", name,
                        "' is not in special_tokens");
            const json& ids = hf_json::get_array(specials[name], "ids", where + ".special_tokens");
            for (const json& id : ids) {
                QLORA_CHECK(hf_json::is_index_below(id, uint64_t{1} << 62), where,
                            ".special_tokens.", name, ": ids must be non-negative integers, found ",
                            hf_json::excerpt(id));
                (seen_sequence ? suffix_ : prefix_).push_back(id.get<int64_t>());
            }
        }
        QLORA_CHECK(seen_sequence, where, ": the single template has no {\"Sequence\": ...}");
    }
    void process(Encoding& e, bool add_special_tokens, const TokenText&) const override {
        if (!add_special_tokens) return;
        e.ids.insert(e.ids.begin(), prefix_.begin(), prefix_.end());
        e.offsets.insert(e.offsets.begin(), prefix_.size(), {0, 0});
        e.ids.insert(e.ids.end(), suffix_.begin(), suffix_.end());
        e.offsets.insert(e.offsets.end(), suffix_.size(), {0, 0});
    }
    std::vector<int64_t> prefix_ids() const override { return prefix_; }
    std::vector<int64_t> suffix_ids() const override { return suffix_; }

  private:
    std::vector<int64_t> prefix_, suffix_;
};

// With trim_offsets, a token's offsets leave out its leading and trailing spaces (Ġ).
class ByteLevelProcessor final : public PostProcessor {
  public:
    ByteLevelProcessor(bool trim_offsets, bool add_prefix_space)
        : trim_(trim_offsets), add_prefix_space_(add_prefix_space) {}
    void process(Encoding& e, bool, const TokenText& token_text) const override {
        if (!trim_) return;
        const std::string& space = byte_level::char_of_byte(' ');
        for (size_t i = 0; i < e.ids.size(); ++i) {
            const std::string_view t = token_text(e.ids[i]);
            size_t lead = 0;
            while ((lead + 1) * space.size() <= t.size() &&
                   t.compare(lead * space.size(), space.size(), space) == 0) {
                ++lead;
            }
            // Counted independently: a lone "Ġ" is both leading and trailing, as in HF.
            size_t trail = 0;
            while ((trail + 1) * space.size() <= t.size() &&
                   t.compare(t.size() - (trail + 1) * space.size(), space.size(), space) == 0) {
                ++trail;
            }
            auto& [b, en] = e.offsets[i];
            if (lead > 0) {
                const bool first = i == 0 || b == 0;
                if (!(first && add_prefix_space_ && lead == 1)) b = std::min(b + lead, en);
            }
            if (trail > 0 && en >= trail) en = std::max(en - trail, b);
        }
    }

  private:
    bool trim_, add_prefix_space_;
};

class SequenceProcessor final : public PostProcessor {
  public:
    explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> steps)
        : steps_(std::move(steps)) {}
    void process(Encoding& e, bool add_special_tokens, const TokenText& token_text) const override {
        for (const auto& step : steps_) step->process(e, add_special_tokens, token_text);
    }
    std::vector<int64_t> prefix_ids() const override {
        std::vector<int64_t> out;
        for (const auto& step : steps_) {
            auto p = step->prefix_ids();
            out.insert(out.end(), p.begin(), p.end());
        }
        return out;
    }
    std::vector<int64_t> suffix_ids() const override {
        std::vector<int64_t> out;
        for (const auto& step : steps_) {
            auto s = step->suffix_ids();
            out.insert(out.end(), s.begin(), s.end());
        }
        return out;
    }

  private:
    std::vector<std::unique_ptr<PostProcessor>> steps_;
};

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json& config, const std::string& where) {
    if (config.is_null()) return nullptr;
    const std::string type = hf_json::type_of(config, where);
    if (type == "TemplateProcessing") return std::make_unique<TemplateProcessing>(config, where);
    if (type == "ByteLevel") {
        return std::make_unique<ByteLevelProcessor>(
            hf_json::get_bool_or(config, "trim_offsets", true, where),
            hf_json::get_bool_or(config, "add_prefix_space", true, where));
    }
    if (type == "Sequence") {
        const json& list = hf_json::get_array(config, "processors", where);
        std::vector<std::unique_ptr<PostProcessor>> steps;
        for (size_t i = 0; i < list.size(); ++i) {
            auto step =
                make_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
            if (step) steps.push_back(std::move(step));
        }
        return std::make_unique<SequenceProcessor>(std::move(steps));
    }
    QLORA_FAIL(where, ": post-processor type '", type,
               "' is not supported (supported: TemplateProcessing, ByteLevel, Sequence)");
}

}  // namespace qlora::tokenizer
