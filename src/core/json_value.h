// Typed reads of JSON values that came from a file. nlohmann's get<T>() turns any JSON number into
// any arithmetic T with a plain cast: undefined behaviour for a float outside T's range (the
// trainer-state fuzzer found "step": 8.9e62), and silent truncation of 2.5 to 2 or of 2^40 to an
// int. So an integer is taken only from an integral JSON number that fits T; the readers of
// checkpoints, adapters and bitsandbytes quant_state use json_as / json_field / json_field_or.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace qlora {

namespace detail {
template <typename T>
struct is_vector : std::false_type {};
template <typename U>
struct is_vector<std::vector<U>> : std::true_type {};
}  // namespace detail

// v as T, or nullopt when v is not a T: bool from true/false, an integral T from an integral
// number within T's range, double from any number, std::string from a string, std::vector<U>
// from an array whose every element is a U.
template <typename T>
std::optional<T> json_as(const nlohmann::json& v) {
    if constexpr (std::is_same_v<T, bool>) {
        if (!v.is_boolean()) return std::nullopt;
        return v.get<bool>();
    } else if constexpr (std::is_integral_v<T>) {
        if (!v.is_number_integer()) return std::nullopt;
        if (v.is_number_unsigned()) {
            const uint64_t u = v.get<uint64_t>();
            if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) return std::nullopt;
            return static_cast<T>(u);
        }
        const int64_t s = v.get<int64_t>();
        if (s < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
            (s > 0 &&
             static_cast<uint64_t>(s) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
            return std::nullopt;
        return static_cast<T>(s);
    } else if constexpr (std::is_same_v<T, double>) {
        if (!v.is_number()) return std::nullopt;
        return v.get<double>();
    } else if constexpr (std::is_same_v<T, std::string>) {
        if (!v.is_string()) return std::nullopt;
        return v.get<std::string>();
    } else {
        static_assert(detail::is_vector<T>::value,
                      "json_as: bool, integers, double, string, vector");
        if (!v.is_array()) return std::nullopt;
        T out;
        out.reserve(v.size());
        for (const nlohmann::json& e : v) {
            auto x = json_as<typename T::value_type>(e);
            if (!x) return std::nullopt;
            out.push_back(std::move(*x));
        }
        return out;
    }
}

// What json_as<T> accepts, for messages: "an integer in [0, 2147483647]", "a list of strings".
template <typename T>
std::string json_kind() {
    if constexpr (std::is_same_v<T, bool>) {
        return "true or false";
    } else if constexpr (std::is_integral_v<T>) {
        return "an integer in [" + std::to_string(std::numeric_limits<T>::min()) + ", " +
               std::to_string(std::numeric_limits<T>::max()) + "]";
    } else if constexpr (std::is_same_v<T, double>) {
        return "a number";
    } else if constexpr (std::is_same_v<T, std::string>) {
        return "a string";
    } else {
        return "a list, each " + json_kind<typename T::value_type>();
    }
}

// The value of object[key] as T, or qlora::Error "<where>: \"<key>\" is missing" / "<where>:
// \"<key>\" must be <kind>, found <value, cut>". `where` names the file (and the object in it).
template <typename T>
T json_field(const nlohmann::json& object, const char* key, const std::string& where) {
    QLORA_CHECK(object.is_object() && object.contains(key), where, ": \"", key, "\" is missing");
    const nlohmann::json& v = object.at(key);
    std::optional<T> x = json_as<T>(v);
    QLORA_CHECK(x.has_value(), where, ": \"", key, "\" must be ", json_kind<T>(), ", found ",
                v.dump().substr(0, 60));
    return std::move(*x);
}

// The same, with `fallback` when the key is absent or null.
template <typename T>
T json_field_or(const nlohmann::json& object, const char* key, T fallback,
                const std::string& where) {
    if (!object.is_object() || !object.contains(key) || object.at(key).is_null()) return fallback;
    return json_field<T>(object, key, where);
}

}  // namespace qlora
