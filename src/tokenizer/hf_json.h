// Checked reads of tokenizer.json fields: a wrong or missing field is a one-line error naming the
// file and the JSON path ("tokenizer.json: pre_tokenizer.pretokenizers[1].behavior ...").
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace qlora::tokenizer::hf_json {

using nlohmann::json;

// `where`: "<file>: <path>" of the object holding the field.
std::string type_of(const json& object, const std::string& where);
std::string get_string(const json& object, const char* key, const std::string& where);
std::string get_string_or(const json& object, const char* key, const std::string& fallback,
                          const std::string& where);
bool get_bool_or(const json& object, const char* key, bool fallback, const std::string& where);
int64_t get_int_or(const json& object, const char* key, int64_t fallback, const std::string& where);
const json& get_array(const json& object, const char* key, const std::string& where);
// A readable excerpt of a JSON value for error messages.
std::string excerpt(const json& value);
// An integer in [0, limit): parsed text gives unsigned numbers, a tokenizer.json built in memory
// (one rebuilt from a GGUF) may hold signed ones; both count.
bool is_index_below(const json& value, uint64_t limit);

// A {"String": s} or {"Regex": r} pattern object.
struct Pattern {
    std::string text;
    bool is_regex = false;
};
Pattern get_pattern(const json& object, const char* key, const std::string& where);

}  // namespace qlora::tokenizer::hf_json
