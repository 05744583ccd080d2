// How Python turns the template's values into text: str() (what {{ x }} prints), repr() (inside
// printed lists and dicts), float repr, and json.dumps with transformers' tojson options.
#pragma once

#include <optional>
#include <string>

#include "jinja/value.h"

namespace qlora::jinja {

// str(v): None -> "None", True -> "True", 1.0 -> "1.0", lists/dicts as Python prints them.
// Undefined prints as "" (jinja2's default Undefined).
std::string python_str(const Value& v);
// repr(v): strings quoted as Python quotes them.
std::string python_repr(const Value& v);
// repr(float): the shortest round-trip digits, in Python's fixed/scientific choice.
std::string python_float_repr(double d);

struct JsonDumpOptions {
    bool ensure_ascii = false;
    std::optional<int> indent;                  // None: one line
    std::optional<std::string> item_separator;  // default ", " ("," with an indent)
    std::optional<std::string> key_separator;   // default ": "
    bool sort_keys = false;
};
// json.dumps(v, ...): the text transformers' tojson filter produces.
std::string json_dumps(const Value& v, const JsonDumpOptions& options);

}  // namespace qlora::jinja
