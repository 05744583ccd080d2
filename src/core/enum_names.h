// The one table of names of an enum (quant.type, optim.name, data.format, ...): parsing, writing
// back and the list an error message offers all read it, so a name is written down once.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace qlora {

template <typename E>
struct EnumName {
    E value;
    std::string_view name;
};

// `key` is what an error names ("data.format"); an alias is a second row with the same value after
// the canonical one (name() writes the first row of a value).
template <typename E, std::size_t N>
struct EnumNames {
    std::string_view key;
    std::array<EnumName<E>, N> rows;

    std::optional<E> find(std::string_view name) const {
        for (const EnumName<E>& row : rows) {
            if (row.name == name) return row.value;
        }
        return std::nullopt;
    }
    E parse(std::string_view name) const {
        if (std::optional<E> v = find(name)) return *v;
        QLORA_FAIL(key, " must be one of ", list(), ", got '", name, "'");
    }
    std::string name(E value) const {
        for (const EnumName<E>& row : rows) {
            if (row.value == value) return std::string(row.name);
        }
        return "?";
    }
    // "a, b, c": every accepted name, aliases included.
    std::string list() const {
        std::string out;
        for (const EnumName<E>& row : rows)
            out += (out.empty() ? "" : ", ") + std::string(row.name);
        return out;
    }
};

template <typename E, std::size_t N>
constexpr EnumNames<E, N> enum_names(std::string_view key, const EnumName<E> (&rows)[N]) {
    return {key, std::to_array(rows)};
}

}  // namespace qlora
