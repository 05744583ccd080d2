// Checked tokenizer.json field access.
#include "tokenizer/hf_json.h"

#include "core/error.h"

namespace qlora::tokenizer::hf_json {

std::string excerpt(const json& value) {
    std::string s = value.dump();
    return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

bool is_index_below(const json& value, uint64_t limit) {
    if (value.is_number_unsigned()) return value.get<uint64_t>() < limit;
    return value.is_number_integer() && value.get<int64_t>() >= 0 &&
           static_cast<uint64_t>(value.get<int64_t>()) < limit;
}

std::string type_of(const json& object, const std::string& where) {
    QLORA_CHECK(object.is_object(), where, ": expected an object, found ", excerpt(object));
    return get_string(object, "type", where);
}

std::string get_string(const json& object, const char* key, const std::string& where) {
    QLORA_CHECK(object.is_object() && object.contains(key) && object[key].is_string(), where,
                ": expected a string '", key, "', found ",
                object.is_object() && object.contains(key) ? excerpt(object[key]) : "nothing");
    return object[key].get<std::string>();
}

std::string get_string_or(const json& object, const char* key, const std::string& fallback,
                          const std::string& where) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    return get_string(object, key, where);
}

bool get_bool_or(const json& object, const char* key, bool fallback, const std::string& where) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    QLORA_CHECK(object[key].is_boolean(), where, ": expected true/false for '", key, "', found ",
                excerpt(object[key]));
    return object[key].get<bool>();
}

int64_t get_int_or(const json& object, const char* key, int64_t fallback,
                   const std::string& where) {
    if (!object.contains(key) || object[key].is_null()) return fallback;
    QLORA_CHECK(object[key].is_number_integer(), where, ": expected an integer '", key, "', found ",
                excerpt(object[key]));
    return object[key].get<int64_t>();
}

const json& get_array(const json& object, const char* key, const std::string& where) {
    QLORA_CHECK(object.is_object() && object.contains(key) && object[key].is_array(), where,
                ": expected an array '", key, "', found ",
                object.is_object() && object.contains(key) ? excerpt(object[key]) : "nothing");
    return object[key];
}

Pattern get_pattern(const json& object, const char* key, const std::string& where) {
    QLORA_CHECK(object.contains(key) && object[key].is_object(), where, ": expected '", key,
                "' as {\"String\": ...} or {\"Regex\": ...}, found ",
                object.contains(key) ? excerpt(object[key]) : "nothing");
    const json& p = object[key];
    if (p.contains("Regex")) return {get_string(p, "Regex", where + "." + key), true};
    return {get_string(p, "String", where + "." + key), false};
}

}  // namespace qlora::tokenizer::hf_json
