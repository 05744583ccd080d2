// a.b and a[b] as jinja2's sandbox resolves them, and the Python methods of str, dict and list.
// A method Python has that is not implemented here is an error when called (never a silent
// Undefined); a name Python lacks is an Undefined, as jinja2 gives.
#include <set>

#include "jinja/args.h"
#include "jinja/builtins.h"
#include "jinja/evaluator.h"
#include "jinja/python_format.h"
#include "jinja/strings.h"
#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

const std::set<std::string> kStrMethods = {
    "capitalize",   "casefold",    "center",    "count",      "encode",       "endswith",
    "expandtabs",   "find",        "format",    "format_map", "index",        "isalnum",
    "isalpha",      "isascii",     "isdecimal", "isdigit",    "isidentifier", "islower",
    "isnumeric",    "isprintable", "isspace",   "istitle",    "isupper",      "join",
    "ljust",        "lower",       "lstrip",    "maketrans",  "partition",    "removeprefix",
    "removesuffix", "replace",     "rfind",     "rindex",     "rjust",        "rpartition",
    "rsplit",       "rstrip",      "split",     "splitlines", "startswith",   "strip",
    "swapcase",     "title",       "translate", "upper",      "zfill"};
const std::set<std::string> kDictMethods = {"clear",      "copy",   "fromkeys", "get",
                                            "items",      "keys",   "pop",      "popitem",
                                            "setdefault", "update", "values"};
const std::set<std::string> kDictUnsafe = {"clear", "pop", "popitem", "setdefault", "update"};
const std::set<std::string> kListMethods = {"append", "clear",   "copy",   "count",
                                            "extend", "index",   "insert", "pop",
                                            "remove", "reverse", "sort"};
const std::set<std::string> kListUnsafe = {"append", "clear", "pop",    "reverse",
                                           "insert", "sort",  "extend", "remove"};

Value method(const std::string& name, NativeFunction fn) {
    return Value::function(name, std::move(fn));
}

Value unsafe(const Value& obj, const std::string& name) {
    return Value::undefined(
        "access to attribute '" + name + "' of '" + obj.type_name() + "' object is unsafe.", true);
}

[[noreturn]] void unsupported_method(const std::string& type, const std::string& name) {
    fail(TemplateError::Kind::kUnsupported,
         type + "." + name + "() is not implemented by this engine");
}

std::optional<std::string> optional_string(const ArgReader& r, size_t i) {
    const Value* v = r.get(i);
    if (!v || v->is_none()) return std::nullopt;
    if (!v->is_string())
        fail(TemplateError::Kind::kType, "expected a string or None, got " + v->type_name());
    return v->as_string();
}

Value string_list(const std::vector<std::string>& parts) {
    ValueList out;
    for (const auto& p : parts) out.emplace_back(p);
    return Value::list(std::move(out));
}

bool all_code_points(const std::string& s, bool (*pred)(char32_t)) {
    const auto cps = unicode::code_points(s);
    return !cps.empty() && std::all_of(cps.begin(), cps.end(), pred);
}

// startswith / endswith: a string or a tuple of strings.
bool affix_match(const std::string& s, const Value& affix, bool at_start) {
    auto one = [&](const Value& v) {
        if (!v.is_string())
            fail(TemplateError::Kind::kType,
                 "startswith/endswith first arg must be str or a tuple of str");
        const std::string& a = v.as_string();
        if (a.size() > s.size()) return false;
        return at_start ? s.compare(0, a.size(), a) == 0
                        : s.compare(s.size() - a.size(), a.size(), a) == 0;
    };
    if (affix.is_tuple()) {
        return std::any_of(affix.as_list().begin(), affix.as_list().end(), one);
    }
    return one(affix);
}

// str.format with automatic or explicit field numbers and names; no format specs.
std::string format_fields(const std::string& fmt, const CallArgs& a) {
    std::string out;
    size_t auto_index = 0;
    for (size_t i = 0; i < fmt.size(); ++i) {
        const char c = fmt[i];
        if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
            out += c;
            ++i;
            continue;
        }
        if (c != '{') {
            out += c;
            continue;
        }
        const size_t close = fmt.find('}', i);
        if (close == std::string::npos)
            fail(TemplateError::Kind::kType, "Single '{' encountered in format string");
        const std::string field = fmt.substr(i + 1, close - i - 1);
        if (field.find_first_of(":!.[") != std::string::npos) {
            fail(TemplateError::Kind::kUnsupported, "str.format field '{" + field + "}'");
        }
        const Value* v = nullptr;
        if (field.empty() || std::isdigit(static_cast<unsigned char>(field[0]))) {
            const size_t idx = field.empty() ? auto_index++ : std::stoul(field);
            if (idx < a.positional.size()) v = &a.positional[idx];
        } else {
            v = a.keyword_arg(field);
        }
        if (!v)
            fail(TemplateError::Kind::kType, "Replacement index or key '" + field + "' is missing");
        out += python_str(*v);
        i = close;
    }
    return out;
}

Value partition(const std::string& s, const std::string& sep, bool from_right) {
    const size_t at = from_right ? s.rfind(sep) : s.find(sep);
    if (at == std::string::npos) {
        return from_right ? Value::list({Value(""), Value(""), Value(s)}, SeqKind::kTuple)
                          : Value::list({Value(s), Value(""), Value("")}, SeqKind::kTuple);
    }
    return Value::list({Value(s.substr(0, at)), Value(sep), Value(s.substr(at + sep.size()))},
                       SeqKind::kTuple);
}

Value call_str_method(const std::string& s, const std::string& name, const CallArgs& a);

Value call_str_predicate(const std::string& s, const std::string& name) {
    if (name == "isalnum") return Value(all_code_points(s, unicode::is_alnum));
    if (name == "isalpha") return Value(all_code_points(s, unicode::is_alpha));
    if (name == "isdigit" || name == "isdecimal" || name == "isnumeric") {
        return Value(all_code_points(s, unicode::is_digit));
    }
    if (name == "isspace") return Value(all_code_points(s, unicode::is_space));
    if (name == "isascii") {
        return Value(std::all_of(s.begin(), s.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; }));
    }
    const auto cps = unicode::code_points(s);
    bool cased = false, ok = true;
    for (const char32_t c : cps) {
        if (unicode::is_cased(c)) cased = true;
        if (name == "islower" && unicode::is_upper(c)) ok = false;
        if (name == "isupper" && unicode::is_lower(c)) ok = false;
    }
    return Value(cased && ok);
}

Value call_str_method(const std::string& s, const std::string& name, const CallArgs& a) {
    using strings::Side;
    if (name.rfind("is", 0) == 0 && name != "istitle" && name != "isidentifier" &&
        name != "isprintable") {
        ArgReader r("str." + name, a, {});
        return call_str_predicate(s, name);
    }
    if (name == "strip" || name == "lstrip" || name == "rstrip") {
        ArgReader r("str." + name, a, {"chars"});
        const Side side = name == "strip"    ? Side::kBoth
                          : name == "lstrip" ? Side::kLeft
                                             : Side::kRight;
        return Value(strings::strip(s, optional_string(r, 0), side));
    }
    if (name == "split" || name == "rsplit") {
        ArgReader r("str." + name, a, {"sep", "maxsplit"});
        const auto sep = optional_string(r, 0);
        if (sep && sep->empty()) fail(TemplateError::Kind::kType, "empty separator");
        return string_list(strings::split(s, sep, r.integer(1, -1), name == "rsplit"));
    }
    if (name == "splitlines") {
        ArgReader r("str.splitlines", a, {"keepends"});
        return string_list(strings::splitlines(s, r.flag(0, false)));
    }
    if (name == "startswith" || name == "endswith") {
        ArgReader r("str." + name, a, {"prefix"});
        return Value(affix_match(s, r.required(0), name == "startswith"));
    }
    if (name == "lower") return Value(unicode::lower(s));
    if (name == "upper") return Value(unicode::upper(s));
    if (name == "casefold") return Value(unicode::lower(s));
    if (name == "title") return Value(strings::title(s));
    if (name == "capitalize") return Value(strings::capitalize(s));
    if (name == "swapcase") return Value(strings::swapcase(s));
    if (name == "replace") {
        ArgReader r("str.replace", a, {"old", "new", "count"});
        return Value(strings::replace(s, r.string(0, ""), r.string(1, ""), r.integer(2, -1)));
    }
    if (name == "find" || name == "rfind" || name == "index" || name == "rindex") {
        ArgReader r("str." + name, a, {"sub"});
        const int64_t at = strings::find(s, r.string(0, ""), name[0] == 'r');
        if (at < 0 && name.find("index") != std::string::npos)
            fail(TemplateError::Kind::kType, "substring not found");
        return Value(at);
    }
    if (name == "count") {
        ArgReader r("str.count", a, {"sub"});
        return Value(strings::count(s, r.string(0, "")));
    }
    if (name == "join") {
        ArgReader r("str.join", a, {"iterable"});
        std::string out;
        bool first = true;
        for (const Value& v : iterate(r.required(0))) {
            if (!v.is_string()) {
                fail(TemplateError::Kind::kType,
                     "sequence item: expected str instance, " + v.type_name() + " found");
            }
            if (!first) out += s;
            out += v.as_string();
            first = false;
        }
        return Value(std::move(out));
    }
    if (name == "removeprefix" || name == "removesuffix") {
        ArgReader r("str." + name, a, {"affix"});
        const std::string x = r.string(0, "");
        if (name == "removeprefix" && s.compare(0, x.size(), x) == 0)
            return Value(s.substr(x.size()));
        if (name == "removesuffix" && !x.empty() && x.size() <= s.size() &&
            s.compare(s.size() - x.size(), x.size(), x) == 0) {
            return Value(s.substr(0, s.size() - x.size()));
        }
        return Value(s);
    }
    if (name == "ljust" || name == "rjust" || name == "center") {
        ArgReader r("str." + name, a, {"width", "fillchar"});
        const Side side = name == "ljust"   ? Side::kLeft
                          : name == "rjust" ? Side::kRight
                                            : Side::kBoth;
        return Value(strings::pad(s, r.integer(0, 0), r.string(1, " "), side));
    }
    if (name == "zfill") {
        ArgReader r("str.zfill", a, {"width"});
        const bool sign = !s.empty() && (s[0] == '-' || s[0] == '+');
        const std::string padded = strings::pad(
            s.substr(sign ? 1 : 0), r.integer(0, 0) - (sign ? 1 : 0), "0", Side::kRight);
        return Value((sign ? s.substr(0, 1) : "") + padded);
    }
    if (name == "partition" || name == "rpartition") {
        ArgReader r("str." + name, a, {"sep"});
        return partition(s, r.string(0, ""), name == "rpartition");
    }
    if (name == "format") return Value(format_fields(s, a));
    unsupported_method("str", name);
}

Value dict_view(const ValueDict& d, const std::string& which) {
    ValueList out;
    for (const auto& [k, v] : d.items) {
        if (which == "items") out.push_back(Value::list({Value(k), v}, SeqKind::kTuple));
        if (which == "keys") out.emplace_back(k);
        if (which == "values") out.push_back(v);
    }
    return Value::list(std::move(out), SeqKind::kDictView);
}

Value dict_method(const Value& obj, const std::string& name) {
    if (kDictUnsafe.count(name)) return unsafe(obj, name);
    return method("dict." + name, [obj, name](const CallArgs& a) -> Value {
        if (name == "get") {
            ArgReader r("dict.get", a, {"key", "default"});
            const Value& key = r.required(0);
            const Value* found = key.is_string() ? obj.as_dict().find(key.as_string()) : nullptr;
            return found ? *found : r.value_or(1, Value::none());
        }
        if (name == "items" || name == "keys" || name == "values") {
            ArgReader r("dict." + name, a, {});
            return dict_view(obj.as_dict(), name);
        }
        if (name == "copy") return Value::dict(obj.as_dict());
        unsupported_method("dict", name);
    });
}

Value list_method(const Value& obj, const std::string& name) {
    if (kListUnsafe.count(name)) return unsafe(obj, name);
    return method("list." + name, [obj, name](const CallArgs& a) -> Value {
        if (name == "copy") return Value::list(obj.as_list(), obj.seq_kind());
        ArgReader r("list." + name, a, {"value"});
        const Value& x = r.required(0);
        int64_t n = 0;
        for (size_t i = 0; i < obj.as_list().size(); ++i) {
            if (!values_equal(obj.as_list()[i], x)) continue;
            if (name == "index") return Value(static_cast<int64_t>(i));
            ++n;
        }
        if (name == "index") fail(TemplateError::Kind::kType, python_repr(x) + " is not in list");
        return Value(n);
    });
}

std::string object_name(const Value& v) { return v.type_name() + " object"; }

}  // namespace

Value get_attribute(const Value& object, const std::string& name) {
    const std::string missing = "'" + object_name(object) + "' has no attribute '" + name + "'";
    if (!name.empty() && name[0] == '_') {  // the sandbox refuses every underscore attribute
        return Value::undefined(missing);
    }
    switch (object.kind()) {
        case Value::Kind::kString:
            if (kStrMethods.count(name)) {
                const std::string s = object.as_string();
                return method("str." + name,
                              [s, name](const CallArgs& a) { return call_str_method(s, name, a); });
            }
            return Value::undefined(missing);
        case Value::Kind::kDict: {
            if (kDictMethods.count(name)) return dict_method(object, name);
            const Value* v = object.as_dict().find(name);
            return v ? *v : Value::undefined(missing);
        }
        case Value::Kind::kNamespace: {
            const Value* v = object.as_dict().find(name);
            return v ? *v : Value::undefined(missing);
        }
        case Value::Kind::kList:
            if (object.is_plain_sequence() && kListMethods.count(name)) {
                if (object.is_tuple() && name != "index" && name != "count")
                    return Value::undefined(missing);
                return list_method(object, name);
            }
            return Value::undefined(missing);
        default:
            return Value::undefined(missing);
    }
}

Value python_attribute(const Value& object, const std::string& name) {
    if (object.is_dict() && !kDictMethods.count(name)) {
        return Value::undefined("'dict object' has no attribute '" + name + "'");
    }
    return get_attribute(object, name);
}

Value get_item(const Value& object, const Value& key) {
    if (object.is_dict() && key.is_string()) {
        const Value* v = object.as_dict().find(key.as_string());
        if (v) return *v;
    }
    if ((object.is_plain_sequence() || object.seq_kind() == SeqKind::kRange) && object.is_list() &&
        (key.is_int() || key.is_bool())) {
        const auto& items = object.as_list();
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(items.size());
        if (i >= 0 && i < static_cast<int64_t>(items.size())) return items[static_cast<size_t>(i)];
    }
    if (object.is_string() && (key.is_int() || key.is_bool())) {
        const auto cps = unicode::code_points(object.as_string());
        int64_t i = key.as_int();
        if (i < 0) i += static_cast<int64_t>(cps.size());
        if (i >= 0 && i < static_cast<int64_t>(cps.size())) {
            return Value(unicode::to_utf8(cps, static_cast<size_t>(i), static_cast<size_t>(i) + 1));
        }
    }
    if (key.is_string() && !object.is_dict()) return get_attribute(object, key.as_string());
    if (key.is_string() && object.is_dict() && kDictMethods.count(key.as_string())) {
        return get_attribute(object, key.as_string());
    }
    return Value::undefined("'" + object_name(object) + "' has no attribute " + python_repr(key));
}

}  // namespace qlora::jinja
