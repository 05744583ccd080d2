// Decoders, each as HF's decode_chain.
#include "tokenizer/decoders.h"

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

// Characters of the byte alphabet back to bytes; a token with any other character (an added
// token like "<|eot_id|>" is all ASCII, which maps to itself) is kept as it is.
class ByteLevelDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const std::string& t : tokens) {
            if (auto b = byte_level::to_bytes(t)) {
                bytes += *b;
            } else {
                bytes += t;
            }
        }
        tokens.assign(1, std::move(bytes));
    }
};

class MetaspaceDecoder final : public Decoder {
  public:
    MetaspaceDecoder(std::string replacement, bool strip_first)
        : replacement_(std::move(replacement)), strip_first_(strip_first) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string& t = tokens[i];
            for (size_t at = 0; at < t.size();) {
                if (t.compare(at, replacement_.size(), replacement_) == 0) {
                    // HF drops every replacement of the first token (the prepended space and
                    // any that follow it there).
                    if (!(i == 0 && strip_first_)) out += ' ';
                    at += replacement_.size();
                } else {
                    out += t[at++];
                }
            }
            tokens[i] = std::move(out);
        }
    }

  private:
    std::string replacement_;
    bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
  public:
    ReplaceDecoder(std::string pattern, std::string content)
        : pattern_(std::move(pattern)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        if (pattern_.empty()) return;
        for (std::string& t : tokens) {
            std::string out;
            size_t last = 0;
            for (size_t at = t.find(pattern_); at != std::string::npos;
                 at = t.find(pattern_, last)) {
                out.append(t, last, at - last);
                out += content_;
                last = at + pattern_.size();
            }
            out.append(t, last, std::string::npos);
            t = std::move(out);
        }
    }

  private:
    std::string pattern_, content_;
};

// Runs of "<0xAB>" tokens become their bytes when those form valid UTF-8, else one U+FFFD each.
class ByteFallbackDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        std::string pending;
        size_t pending_count = 0;
        auto flush = [&] {
            if (pending_count == 0) return;
            if (utf8::first_invalid(pending) == std::string::npos) {
                out.push_back(pending);
            } else {
                for (size_t i = 0; i < pending_count; ++i) out.emplace_back("\xEF\xBF\xBD");
            }
            pending.clear();
            pending_count = 0;
        };
        for (std::string& t : tokens) {
            if (auto b = byte_of(t)) {
                pending.push_back(static_cast<char>(*b));
                ++pending_count;
            } else {
                flush();
                out.push_back(std::move(t));
            }
        }
        flush();
        tokens = std::move(out);
    }

  private:
    static std::optional<int> byte_of(const std::string& t) {
        if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return std::nullopt;
        int value = 0;
        for (int i = 3; i < 5; ++i) {
            const char c = t[static_cast<size_t>(i)];
            const int d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                                 : -1;
            if (d < 0) return std::nullopt;
            value = value * 16 + d;
        }
        return value;
    }
};

class FuseDecoder final : public Decoder {
  public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public Decoder {
  public:
    StripDecoder(std::string content, size_t start, size_t stop)
        : content_(std::move(content)), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        const size_t n = content_.size();
        for (std::string& t : tokens) {
            size_t begin = 0;
            for (size_t k = 0; k < start_ && t.compare(begin, n, content_) == 0; ++k) begin += n;
            size_t end = t.size();
            for (size_t k = 0;
                 k < stop_ && end >= begin + n && t.compare(end - n, n, content_) == 0; ++k) {
                end -= n;
            }
            t = t.substr(begin, end - begin);
        }
    }

  private:
    std::string content_;
    size_t start_, stop_;
};

class SequenceDecoder final : public Decoder {
  public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps)
        : steps_(std::move(steps)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& step : steps_) step->decode_chain(tokens);
    }

  private:
    std::vector<std::unique_ptr<Decoder>> steps_;
};

std::unique_ptr<Decoder> make_metaspace_decoder(const json& config, const std::string& where) {
    const std::string replacement = hf_json::get_string_or(config, "replacement", "\u2581", where);
    bool strip_first = hf_json::get_bool_or(config, "add_prefix_space", true, where);
    if (config.contains("prepend_scheme")) {
        strip_first = hf_json::get_string(config, "prepend_scheme", where) != "never";
    }
    return std::make_unique<MetaspaceDecoder>(replacement, strip_first);
}

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& config, const std::string& where) {
    if (config.is_null()) return nullptr;
    const std::string type = hf_json::type_of(config, where);
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "Metaspace") return make_metaspace_decoder(config, where);
    if (type == "Replace") {
        const hf_json::Pattern p = hf_json::get_pattern(config, "pattern", where);
        QLORA_CHECK(!p.is_regex, where,
                    ": a Replace decoder with a regex pattern is not supported");
        return std::make_unique<ReplaceDecoder>(p.text,
                                                hf_json::get_string(config, "content", where));
    }
    if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse") return std::make_unique<FuseDecoder>();
    if (type == "Strip") {
        const std::string content = hf_json::get_string(config, "content", where);
        const int64_t start = hf_json::get_int_or(config, "start", 0, where);
        const int64_t stop = hf_json::get_int_or(config, "stop", 0, where);
        QLORA_CHECK(start >= 0 && stop >= 0 && start < (1 << 20) && stop < (1 << 20), where,
                    ": Strip start/stop must be small non-negative counts, found ", start, "/",
                    stop);
        return std::make_unique<StripDecoder>(content, static_cast<size_t>(start),
                                              static_cast<size_t>(stop));
    }
    if (type == "Sequence") {
        const json& list = hf_json::get_array(config, "decoders", where);
        std::vector<std::unique_ptr<Decoder>> steps;
        for (size_t i = 0; i < list.size(); ++i) {
            auto step = make_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
            if (step) steps.push_back(std::move(step));
        }
        return std::make_unique<SequenceDecoder>(std::move(steps));
    }
    QLORA_FAIL(where, ": decoder type '", type,
               "' is not supported (supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, "
               "Strip, Sequence)");
}

}  // namespace qlora::tokenizer
