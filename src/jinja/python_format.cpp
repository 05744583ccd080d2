// Python's str/repr of values and json.dumps, byte for byte (CPython's float_repr_style 'short',
// unicode_repr's quote choice, json's encoder escapes and separators).
#include "jinja/python_format.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "jinja/error.h"
#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

std::string hex_escape(char32_t cp) {
    char buf[16];
    if (cp < 0x100) {
        std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned>(cp));
    } else if (cp < 0x10000) {
        std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
    } else {
        std::snprintf(buf, sizeof buf, "\\U%08x", static_cast<unsigned>(cp));
    }
    return buf;
}

std::string string_repr(const std::string& s) {
    const bool has_single = s.find('\'') != std::string::npos;
    const bool has_double = s.find('"') != std::string::npos;
    const char quote = (has_single && !has_double) ? '"' : '\'';
    std::string out(1, quote);
    for (const char32_t cp : unicode::code_points(s)) {
        if (cp == static_cast<char32_t>(quote) || cp == '\\') {
            out += '\\';
            out += static_cast<char>(cp);
        } else if (cp == '\n') {
            out += "\\n";
        } else if (cp == '\r') {
            out += "\\r";
        } else if (cp == '\t') {
            out += "\\t";
        } else if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && !unicode::is_printable(cp))) {
            out += hex_escape(cp);
        } else {
            unicode::append_utf8(out, cp);
        }
    }
    return out + quote;
}

std::string sequence_text(const Value& v) {
    const bool tuple = v.is_tuple();
    std::string out = tuple ? "(" : "[";
    const auto& items = v.as_list();
    for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += ", ";
        out += python_repr(items[i]);
    }
    if (tuple && items.size() == 1) out += ",";
    return out + (tuple ? ")" : "]");
}

std::string dict_text(const ValueDict& d) {
    std::string out = "{";
    for (size_t i = 0; i < d.items.size(); ++i) {
        if (i) out += ", ";
        out += string_repr(d.items[i].first) + ": " + python_repr(d.items[i].second);
    }
    return out + "}";
}

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
    out += '"';
    for (const char32_t cp : unicode::code_points(s)) {
        switch (cp) {
            case '"':
                out += "\\\"";
                continue;
            case '\\':
                out += "\\\\";
                continue;
            case '\n':
                out += "\\n";
                continue;
            case '\r':
                out += "\\r";
                continue;
            case '\t':
                out += "\\t";
                continue;
            case '\b':
                out += "\\b";
                continue;
            case '\f':
                out += "\\f";
                continue;
            default:
                break;
        }
        char buf[16];
        if (cp < 0x20 || (ensure_ascii && cp >= 0x7F)) {
            if (cp >= 0x10000) {  // a surrogate pair, as Python writes it
                const char32_t v = cp - 0x10000;
                std::snprintf(buf, sizeof buf, "\\u%04x\\u%04x", 0xD800 + (unsigned)(v >> 10),
                              0xDC00 + (unsigned)(v & 0x3FF));
            } else {
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(cp));
            }
            out += buf;
        } else {
            unicode::append_utf8(out, cp);
        }
    }
    out += '"';
}

struct JsonWriter {
    const JsonDumpOptions& options;
    std::string item_separator;
    std::string key_separator;
    std::string out;

    void newline(int level) {
        if (!options.indent) return;
        out += '\n';
        out.append(static_cast<size_t>(std::max(0, *options.indent) * level), ' ');
    }

    void write(const Value& v, int level) {
        if (v.is_float()) {
            const double d = v.as_double();
            if (std::isnan(d)) {
                out += "NaN";
            } else if (std::isinf(d)) {
                out += d > 0 ? "Infinity" : "-Infinity";
            } else {
                out += python_float_repr(d);
            }
        } else if (v.is_plain_sequence()) {
            write_list(v.as_list(), level);
        } else if (v.is_dict()) {
            write_dict(v.as_dict(), level);
        } else if (v.is_string()) {
            json_string(out, v.as_string(), options.ensure_ascii);
        } else if (v.is_bool()) {
            out += v.as_bool() ? "true" : "false";
        } else if (v.is_int()) {
            out += std::to_string(v.as_int());
        } else if (v.is_none()) {
            out += "null";
        } else {
            fail(TemplateError::Kind::kType,
                 "Object of type " + v.type_name() + " is not JSON serializable");
        }
    }

    void write_list(const ValueList& items, int level) {
        if (items.empty()) {
            out += "[]";
            return;
        }
        out += '[';
        for (size_t i = 0; i < items.size(); ++i) {
            if (i) out += item_separator;
            newline(level + 1);
            write(items[i], level + 1);
        }
        newline(level);
        out += ']';
    }

    void write_dict(const ValueDict& d, int level) {
        if (d.items.empty()) {
            out += "{}";
            return;
        }
        std::vector<const std::pair<std::string, Value>*> order;
        for (const auto& item : d.items) order.push_back(&item);
        if (options.sort_keys) {
            std::stable_sort(order.begin(), order.end(),
                             [](auto* a, auto* b) { return a->first < b->first; });
        }
        out += '{';
        for (size_t i = 0; i < order.size(); ++i) {
            if (i) out += item_separator;
            newline(level + 1);
            json_string(out, order[i]->first, options.ensure_ascii);
            out += key_separator;
            write(order[i]->second, level + 1);
        }
        newline(level);
        out += '}';
    }
};

}  // namespace

std::string python_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
    char buf[64];
    const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
    std::string sci(buf, res.ptr);  // "-1.2345e+02": shortest round-trip digits
    const bool negative = sci[0] == '-';
    if (negative) sci.erase(0, 1);
    const size_t e = sci.find('e');
    const int exponent = std::stoi(sci.substr(e + 1));
    std::string digits = sci.substr(0, e);
    digits.erase(std::remove(digits.begin(), digits.end(), '.'), digits.end());
    std::string out = negative ? "-" : "";
    if (exponent < -4 || exponent >= 16) {
        out += digits.substr(0, 1);
        if (digits.size() > 1) out += "." + digits.substr(1);
        char exp_buf[16];
        std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+',
                      std::abs(exponent));
        return out + exp_buf;
    }
    if (exponent < 0)
        return out + "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    const auto int_digits = static_cast<size_t>(exponent + 1);
    if (digits.size() <= int_digits) {
        return out + digits + std::string(int_digits - digits.size(), '0') + ".0";
    }
    return out + digits.substr(0, int_digits) + "." + digits.substr(int_digits);
}

std::string python_str(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined:
            return "";
        case Value::Kind::kString:
            return v.as_string();
        default:
            return python_repr(v);
    }
}

std::string python_repr(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined:
            return "Undefined";
        case Value::Kind::kNone:
            return "None";
        case Value::Kind::kBool:
            return v.as_bool() ? "True" : "False";
        case Value::Kind::kInt:
            return std::to_string(v.as_int());
        case Value::Kind::kFloat:
            return python_float_repr(v.as_double());
        case Value::Kind::kString:
            return string_repr(v.as_string());
        case Value::Kind::kList:
            if (!v.is_plain_sequence()) {
                fail(TemplateError::Kind::kUnsupported,
                     "printing a " + v.type_name() + " object (Python prints its address or view)");
            }
            return sequence_text(v);
        case Value::Kind::kDict:
            return dict_text(v.as_dict());
        case Value::Kind::kNamespace:
            return "<Namespace " + dict_text(v.as_dict()) + ">";
        case Value::Kind::kFunction:
            fail(TemplateError::Kind::kUnsupported,
                 "printing the callable '" + v.function_name() + "' (Python prints its address)");
    }
    return "";
}

std::string json_dumps(const Value& v, const JsonDumpOptions& options) {
    JsonWriter w{options,
                 options.item_separator.value_or(options.indent ? "," : ", "),
                 options.key_separator.value_or(": "),
                 {}};
    w.write(v, 0);
    return std::move(w.out);
}

}  // namespace qlora::jinja
