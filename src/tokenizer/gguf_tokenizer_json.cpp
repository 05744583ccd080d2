// tokenizer.json structure as the tokenizers library serializes it (tokenizers/src/tokenizer/
// serialization.rs); the pre-tokenizer per tokenizer.ggml.pre follows the tokenizer.json files of
// the models llama.cpp's convert_hf_to_gguf.py names that way; the SentencePiece translation
// follows transformers' convert_slow_tokenizer.py (LlamaConverter, SentencePieceExtractor).
#include "tokenizer/gguf_tokenizer_json.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

// llama.cpp's llama_token_type (tokenizer.ggml.token_type).
enum TokenType : int64_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6
};

struct Vocab {
    std::vector<std::string> tokens;
    std::vector<int64_t> types;  // NORMAL when the file has no token_type
    std::vector<double> scores;  // empty when the file has none
};

Vocab read_vocab(const io::GgufReader& g) {
    Vocab v;
    v.tokens = g.get("tokenizer.ggml.tokens").strings(g.key_context("tokenizer.ggml.tokens"));
    QLORA_CHECK(!v.tokens.empty(), g.key_context("tokenizer.ggml.tokens"), ": is empty");
    const size_t n = v.tokens.size();
    v.types.assign(n, kNormal);
    if (const io::GgufValue* t = g.find("tokenizer.ggml.token_type")) {
        v.types = t->ints(g.key_context("tokenizer.ggml.token_type"));
        QLORA_CHECK(v.types.size() == n, g.key_context("tokenizer.ggml.token_type"), ": has ",
                    v.types.size(), " entries, expected one per token (", n, ")");
    }
    if (const io::GgufValue* s = g.find("tokenizer.ggml.scores")) {
        v.scores = s->floats(g.key_context("tokenizer.ggml.scores"));
        QLORA_CHECK(v.scores.size() == n, g.key_context("tokenizer.ggml.scores"), ": has ",
                    v.scores.size(), " entries, expected one per token (", n, ")");
    }
    return v;
}

// A special id from tokenizer.ggml.<what>_token_id, or -1; checked against the vocabulary.
int64_t special_id(const io::GgufReader& g, const Vocab& v, const std::string& what) {
    const std::string key = "tokenizer.ggml." + what + "_token_id";
    if (!g.contains(key)) return -1;
    const uint64_t id = g.get_uint(key);
    QLORA_CHECK(id < v.tokens.size(), g.key_context(key), " = ", id, " is not below the ",
                v.tokens.size(), " tokens");
    return static_cast<int64_t>(id);
}

bool flag(const io::GgufReader& g, const std::string& key, bool fallback) {
    return g.contains(key) ? g.get_bool(key) : fallback;
}

json added_token(int64_t id, const std::string& content, bool special) {
    return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
            {"rstrip", false}, {"normalized", false}, {"special", special}};
}

json added_tokens(const Vocab& v) {
    json out = json::array();
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const int64_t t = v.types[id];
        if (t == kControl || t == kUnknown || t == kUserDefined) {
            out.push_back(added_token(static_cast<int64_t>(id), v.tokens[id], t != kUserDefined));
        }
    }
    return out;
}

// token -> id; a repeated token keeps its first id (llama.cpp's token_to_id does the same).
json vocab_object(const io::GgufReader& g, const Vocab& v) {
    json vocab = json::object();
    int64_t repeated = 0;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        if (vocab.contains(v.tokens[id])) {
            ++repeated;
            continue;
        }
        vocab[v.tokens[id]] = static_cast<int64_t>(id);
    }
    if (repeated > 0) {
        log_warn(g.path(), ": ", repeated,
                 " tokens repeat an earlier one; tokenizer.json maps each text to its first id");
    }
    return vocab;
}

// Prepends bos / appends eos as the GGUF's add_bos_token / add_eos_token ask.
json template_processing(const Vocab& v, int64_t bos, int64_t eos, bool add_bos, bool add_eos) {
    json single = json::array(), pair = json::array(), specials = json::object();
    auto special = [&](int64_t id, json& seq) {
        const std::string& tok = v.tokens[static_cast<size_t>(id)];
        seq.push_back({{"SpecialToken", {{"id", tok}, {"type_id", 0}}}});
        specials[tok] = {{"id", tok}, {"ids", {id}}, {"tokens", {tok}}};
    };
    if (add_bos && bos >= 0) special(bos, single);
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (add_eos && eos >= 0) special(eos, single);
    pair = single;
    if (add_bos && bos >= 0) special(bos, pair);
    pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
    if (add_eos && eos >= 0) special(eos, pair);
    return {{"type", "TemplateProcessing"},
            {"single", single},
            {"pair", pair},
            {"special_tokens", specials}};
}

// ---- gpt2: byte-level BPE ----------------------------------------------------------------------

json byte_level(bool trim_offsets, bool use_regex) {
    return {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", trim_offsets},
            {"use_regex", use_regex}};
}

json split_regex(const char* regex) {
    return {{"type", "Split"},
            {"pattern", {{"Regex", regex}}},
            {"behavior", "Isolated"},
            {"invert", false}};
}

constexpr const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct PreTokenizer {
    json normalizer;
    json pre_tokenizer;
    bool ignore_merges = false;
};

PreTokenizer pre_tokenizer_for(const io::GgufReader& g, const std::string& pre) {
    // ("default", also what a file without the key gets, is llama.cpp's own mix of regexes that no
    // Hugging Face tokenizer.json has; it is refused below.)
    if (pre == "gpt-2") return {nullptr, byte_level(true, true), false};
    if (pre == "smollm") {  // \p{N} split alone first, then GPT-2's regex
        json digits = {{"type", "Digits"}, {"individual_digits", true}};
        return {nullptr,
                {{"type", "Sequence"}, {"pretokenizers", {digits, byte_level(true, true)}}},
                false};
    }
    if (pre == "llama-bpe" || pre == "llama3") {
        return {nullptr,
                {{"type", "Sequence"},
                 {"pretokenizers", {split_regex(kLlama3Regex), byte_level(true, false)}}},
                true};  // Llama 3's tokenizer.json has ignore_merges (llama.cpp does the same)
    }
    if (pre == "qwen2") {
        return {{{"type", "NFC"}},
                {{"type", "Sequence"},
                 {"pretokenizers", {split_regex(kQwen2Regex), byte_level(false, false)}}},
                false};
    }
    QLORA_FAIL(g.key_context("tokenizer.ggml.pre"), ": pre-tokenizer '", pre,
               "' is not supported (expected one of ", gguf_supported_pre_tokenizers(), ")");
}

json gpt2_merges(const io::GgufReader& g) {
    const std::string key = "tokenizer.ggml.merges";
    json merges = json::array();
    const std::vector<std::string> lines = g.get(key).strings(g.key_context(key));
    for (size_t i = 0; i < lines.size(); ++i) {
        const std::string& m = lines[i];
        const size_t space = m.find(' ');
        QLORA_CHECK(space != std::string::npos && space > 0 && space + 1 < m.size() &&
                        m.find(' ', space + 1) == std::string::npos,
                    g.key_context(key), ": merge ", i, " '", m.substr(0, 60),
                    "' is not two tokens separated by one space");
        merges.push_back({m.substr(0, space), m.substr(space + 1)});
    }
    return merges;
}

json gpt2_tokenizer(const io::GgufReader& g, const Vocab& v) {
    const std::string pre = g.contains("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre")
                                                             : std::string("default");
    PreTokenizer p = pre_tokenizer_for(g, pre);
    const bool add_bos = flag(g, "tokenizer.ggml.add_bos_token", false);
    const bool add_eos = flag(g, "tokenizer.ggml.add_eos_token", false);
    json byte_post = {{"type", "ByteLevel"},
                      {"add_prefix_space", true},
                      {"trim_offsets", false},
                      {"use_regex", true}};
    json post = byte_post;
    if (add_bos || add_eos) {
        post = {{"type", "Sequence"},
                {"processors",
                 {byte_post, template_processing(v, special_id(g, v, "bos"),
                                                 special_id(g, v, "eos"), add_bos, add_eos)}}};
    }
    json model = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", nullptr},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", p.ignore_merges},
                  {"vocab", vocab_object(g, v)},
                  {"merges", gpt2_merges(g)}};
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added_tokens(v)},
            {"normalizer", p.normalizer},
            {"pre_tokenizer", p.pre_tokenizer},
            {"post_processor", post},
            {"decoder",
             {{"type", "ByteLevel"},
              {"add_prefix_space", true},
              {"trim_offsets", true},
              {"use_regex", true}}},
            {"model", model}};
}

// ---- llama: SentencePiece as BPE with byte fallback --------------------------------------------

// Lengths of the UTF-8 prefixes that end on a code point boundary (Python's merge[:index]).
std::vector<size_t> codepoint_splits(const std::string& s) {
    std::vector<size_t> out;
    for (size_t i = 1; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) out.push_back(i);
    }
    return out;
}

// SentencePieceExtractor.extract with scores: every split of a piece into two pieces is a merge,
// ranked by the merged piece's score (highest first, stable), ties within a piece by the ids.
json sentencepiece_merges(const Vocab& v) {
    std::unordered_map<std::string, int64_t> id_of;
    for (size_t id = 0; id < v.tokens.size(); ++id) id_of.emplace(v.tokens[id], id);
    struct Merge {
        int64_t left, right;
        double score;
    };
    std::vector<Merge> merges;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const std::string& piece = v.tokens[id];
        std::vector<Merge> local;
        for (size_t cut : codepoint_splits(piece)) {
            auto l = id_of.find(piece.substr(0, cut));
            auto r = id_of.find(piece.substr(cut));
            if (l != id_of.end() && r != id_of.end())
                local.push_back({l->second, r->second, v.scores[id]});
        }
        std::sort(local.begin(), local.end(), [](const Merge& a, const Merge& b) {
            return a.left != b.left ? a.left < b.left : a.right < b.right;
        });
        merges.insert(merges.end(), local.begin(), local.end());
    }
    std::stable_sort(merges.begin(), merges.end(),
                     [](const Merge& a, const Merge& b) { return a.score > b.score; });
    json out = json::array();
    for (const Merge& m : merges) {
        out.push_back(
            {v.tokens[static_cast<size_t>(m.left)], v.tokens[static_cast<size_t>(m.right)]});
    }
    return out;
}

json llama_tokenizer(const io::GgufReader& g, const Vocab& v) {
    QLORA_CHECK(!v.scores.empty(), g.path(),
                ": a SentencePiece ('llama') tokenizer needs tokenizer.ggml.scores");
    int64_t unk = special_id(g, v, "unknown");
    for (size_t id = 0; unk < 0 && id < v.types.size(); ++id) {
        if (v.types[id] == kUnknown) unk = static_cast<int64_t>(id);
    }
    const bool prefix = flag(g, "tokenizer.ggml.add_space_prefix", true);
    json decoders = {
        {{"type", "Replace"}, {"pattern", {{"String", "\xe2\x96\x81"}}}, {"content", " "}},
        {{"type", "ByteFallback"}},
        {{"type", "Fuse"}}};
    if (prefix)
        decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
    json model = {
        {"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", unk >= 0 ? json(v.tokens[static_cast<size_t>(unk)]) : json(nullptr)},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"ignore_merges", false},
        {"vocab", vocab_object(g, v)},
        {"merges", sentencepiece_merges(v)}};
    return {
        {"version", "1.0"},
        {"truncation", nullptr},
        {"padding", nullptr},
        {"added_tokens", added_tokens(v)},
        {"normalizer", nullptr},
        {"pre_tokenizer",
         {{"type", "Metaspace"},
          {"replacement", "\xe2\x96\x81"},
          {"prepend_scheme", prefix ? "first" : "never"},
          {"split", false}}},
        {"post_processor", template_processing(v, special_id(g, v, "bos"), special_id(g, v, "eos"),
                                               flag(g, "tokenizer.ggml.add_bos_token", true),
                                               flag(g, "tokenizer.ggml.add_eos_token", false))},
        {"decoder", {{"type", "Sequence"}, {"decoders", decoders}}},
        {"model", model}};
}

json tokenizer_config(const io::GgufReader& g, const Vocab& v, const std::string& model) {
    json c = {{"tokenizer_class", "PreTrainedTokenizerFast"},
              {"clean_up_tokenization_spaces", false}};
    const std::string arch =
        g.contains("general.architecture") ? g.get_string("general.architecture") : std::string();
    if (g.contains(arch + ".context_length"))
        c["model_max_length"] = g.get_uint(arch + ".context_length");
    for (const auto& [what, key] : {std::pair<const char*, const char*>{"bos", "bos_token"},
                                    {"eos", "eos_token"},
                                    {"unknown", "unk_token"},
                                    {"padding", "pad_token"}}) {
        const int64_t id = special_id(g, v, what);
        if (id >= 0) c[key] = v.tokens[static_cast<size_t>(id)];
    }
    c["add_bos_token"] = flag(g, "tokenizer.ggml.add_bos_token", model == "llama");
    c["add_eos_token"] = flag(g, "tokenizer.ggml.add_eos_token", false);
    if (g.contains("tokenizer.chat_template"))
        c["chat_template"] = g.get_string("tokenizer.chat_template");
    return c;
}

}  // namespace

GgufVocabKeys read_gguf_vocab_keys(const io::GgufReader& g) {
    const Vocab v = read_vocab(g);
    GgufVocabKeys k;
    k.model = g.get_string("tokenizer.ggml.model");
    k.pre = g.contains("tokenizer.ggml.pre") ? g.get_string("tokenizer.ggml.pre") : "default";
    k.tokens = v.tokens;
    k.types = v.types;
    k.scores = v.scores;
    if (const io::GgufValue* m = g.find("tokenizer.ggml.merges"))
        k.merges = m->strings(g.key_context("tokenizer.ggml.merges"));
    k.bos = special_id(g, v, "bos");
    k.eos = special_id(g, v, "eos");
    k.unk = special_id(g, v, "unknown");
    k.pad = special_id(g, v, "padding");
    for (auto [key, out] : {std::pair{"tokenizer.ggml.add_bos_token", &k.add_bos},
                            std::pair{"tokenizer.ggml.add_eos_token", &k.add_eos}}) {
        if (g.contains(key)) *out = g.get_bool(key);
    }
    return k;
}

const char* gguf_supported_pre_tokenizers() { return "gpt-2, smollm, llama-bpe, qwen2"; }

HfTokenizerJson gguf_hf_tokenizer(const io::GgufReader& g) {
    const std::string model = g.get_string("tokenizer.ggml.model");
    const Vocab v = read_vocab(g);
    HfTokenizerJson out;
    if (model == "gpt2") {
        out.tokenizer = gpt2_tokenizer(g, v);
    } else if (model == "llama") {
        out.tokenizer = llama_tokenizer(g, v);
    } else {
        QLORA_FAIL(g.key_context("tokenizer.ggml.model"), ": tokenizer model '", model,
                   "' is not supported (expected gpt2 or llama)");
    }
    out.tokenizer_config = tokenizer_config(g, v, model);
    return out;
}

}  // namespace qlora::tokenizer
