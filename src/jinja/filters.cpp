// jinja2's built-in filters (jinja2/filters.py) plus transformers' tojson. Filters that return
// generators in jinja2 (map, select, reject, selectattr, rejectattr, unique, reverse on lists,
// items) return SeqKind::kGenerator values, which print and measure as jinja2's do (errors).
#include <algorithm>
#include <cmath>
#include <set>

#include "jinja/args.h"
#include "jinja/builtins.h"
#include "jinja/evaluator.h"
#include "jinja/python_format.h"
#include "jinja/strings.h"
#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

const std::set<std::string> kImplemented = {
    "abs",      "attr",     "batch", "capitalize", "center", "count",      "d",
    "default",  "dictsort", "e",     "escape",     "first",  "float",      "forceescape",
    "format",   "indent",   "int",   "items",      "join",   "last",       "length",
    "list",     "lower",    "map",   "max",        "min",    "reject",     "rejectattr",
    "replace",  "reverse",  "round", "safe",       "select", "selectattr", "sort",
    "string",   "sum",      "title", "tojson",     "trim",   "unique",     "upper",
    "wordcount"};
const std::set<std::string> kNotImplemented = {
    "filesizeformat", "groupby",   "pprint", "random",   "slice",  "striptags",
    "truncate",       "urlencode", "urlize", "wordwrap", "xmlattr"};

Value generator(ValueList items) { return Value::list(std::move(items), SeqKind::kGenerator); }

size_t python_len(const Value& v) {
    if (v.is_undefined()) return 0;
    if (v.is_string()) return unicode::length(v.as_string());
    if (v.is_dict()) return v.as_dict().items.size();
    if (v.is_list() && v.seq_kind() != SeqKind::kGenerator) return v.as_list().size();
    fail(TemplateError::Kind::kType, "object of type '" + v.type_name() + "' has no len()");
}

// jinja2's make_attrgetter: "a.b.0" looked up part by part with subscript semantics.
Value attribute_path(const Value& item, const std::string& path) {
    Value v = item;
    size_t pos = 0;
    while (true) {
        const size_t dot = path.find('.', pos);
        const std::string part =
            path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
        if (v.is_undefined()) fail(TemplateError::Kind::kUndefined, v.undefined_hint());
        const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
        v = get_item(v, numeric ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
        if (dot == std::string::npos) return v;
        pos = dot + 1;
    }
}

Value attribute_of(const Value& item, const Value& attribute) {
    if (attribute.is_int()) return get_item(item, attribute);
    if (!attribute.is_string()) fail(TemplateError::Kind::kType, "attribute must be a string");
    return attribute_path(item, attribute.as_string());
}

// Sort key: strings lowercased unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
    if (!case_sensitive && v.is_string()) return Value(unicode::lower(v.as_string()));
    return v;
}

Value do_join(const Value& input, const CallArgs& args) {
    ArgReader r("join", args, {"d", "attribute"});
    const std::string sep = python_str(r.value_or(0, Value("")));
    const Value* attribute = r.get(1);
    std::string out;
    bool first = true;
    for (const Value& item : iterate(input)) {
        if (!first) out += sep;
        out +=
            python_str(attribute && !attribute->is_none() ? attribute_of(item, *attribute) : item);
        first = false;
    }
    return Value(std::move(out));
}

Value do_default(const Value& input, const CallArgs& args) {
    ArgReader r("default", args, {"default_value", "boolean"});
    const bool use_default = input.is_undefined() || (r.flag(1, false) && !input.truthy());
    return use_default ? r.value_or(0, Value("")) : input;
}

Value do_tojson(const Value& input, const CallArgs& args) {
    ArgReader r("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonDumpOptions o;
    o.ensure_ascii = r.flag(0, false);
    const Value* indent = r.get(1);
    if (indent && !indent->is_none()) {
        if (!indent->is_int())
            fail(TemplateError::Kind::kUnsupported, "tojson(indent=) other than an integer");
        o.indent = static_cast<int>(std::clamp<int64_t>(indent->as_int(), -1, 1000));
    }
    const Value* seps = r.get(2);
    if (seps && !seps->is_none()) {
        if (!seps->is_plain_sequence() || seps->as_list().size() != 2 ||
            !seps->as_list()[0].is_string() || !seps->as_list()[1].is_string()) {
            fail(TemplateError::Kind::kType, "tojson(separators=) must be a pair of strings");
        }
        o.item_separator = seps->as_list()[0].as_string();
        o.key_separator = seps->as_list()[1].as_string();
    }
    o.sort_keys = r.flag(3, false);
    return Value(json_dumps(input, o));
}

Value do_indent(const Value& input, const CallArgs& args) {
    ArgReader r("indent", args, {"width", "first", "blank"});
    const Value width = r.value_or(0, Value(4));
    const std::string indention =
        width.is_string()
            ? width.as_string()
            : std::string(static_cast<size_t>(std::max<int64_t>(0, width.as_int())), ' ');
    const std::string s = python_str(input) + "\n";  // jinja2's own quirk, for splitlines
    auto lines = strings::splitlines(s, false);
    std::string rv;
    if (r.flag(2, false)) {
        for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + indention : "") + lines[i];
    } else {
        rv = lines.empty() ? "" : lines[0];
        for (size_t i = 1; i < lines.size(); ++i)
            rv += "\n" + (lines[i].empty() ? "" : indention + lines[i]);
    }
    if (r.flag(1, false)) rv = indention + rv;
    return Value(std::move(rv));
}

Value do_int(const Value& input, const CallArgs& args) {
    ArgReader r("int", args, {"default", "base"});
    const Value fallback = r.value_or(0, Value(0));
    if (input.is_int() || input.is_bool()) return Value(input.as_int());
    if (input.is_float()) {
        const double d = input.as_double();
        if (!std::isfinite(d) || std::fabs(d) > 9e18) return fallback;
        return Value(static_cast<int64_t>(d));
    }
    if (!input.is_string()) return fallback;
    std::string s = strings::strip(input.as_string(), std::nullopt, strings::Side::kBoth);
    s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
    const int base = static_cast<int>(r.integer(1, 10));
    try {
        size_t used = 0;
        const long long v = std::stoll(s, &used, base);
        if (used == s.size() && !s.empty()) return Value(static_cast<int64_t>(v));
        size_t fused = 0;
        const double d = std::stod(s, &fused);  // int(float(value))
        if (fused == s.size() && std::isfinite(d)) return Value(static_cast<int64_t>(d));
    } catch (const std::exception&) {
    }
    return fallback;
}

Value do_float(const Value& input, const CallArgs& args) {
    ArgReader r("float", args, {"default"});
    if (input.is_number()) return Value(input.as_double());
    if (input.is_string()) {
        const std::string s = strings::strip(input.as_string(), std::nullopt, strings::Side::kBoth);
        try {
            size_t used = 0;
            const double d = std::stod(s, &used);
            if (used == s.size()) return Value(d);
        } catch (const std::exception&) {
        }
    }
    return r.value_or(0, Value(0.0));
}

Value do_round(const Value& input, const CallArgs& args) {
    ArgReader r("round", args, {"precision", "method"});
    const int64_t precision = r.integer(0, 0);
    const std::string method = r.string(1, "common");
    if (!input.is_number())
        fail(TemplateError::Kind::kType, "type " + input.type_name() + " doesn't define __round__");
    const double scale = std::pow(10.0, static_cast<double>(precision));
    const double x = input.as_double() * scale;
    double y = 0;
    if (method == "common") {
        y = std::nearbyint(x);  // Python's round(): half to even
    } else if (method == "ceil") {
        y = std::ceil(x);
    } else if (method == "floor") {
        y = std::floor(x);
    } else {
        fail(TemplateError::Kind::kType, "method must be common, ceil or floor");
    }
    if (method == "common" && input.is_int() && precision >= 0) return Value(input.as_int());
    return Value(y / scale);
}

// select / reject / selectattr / rejectattr.
Value select_like(Evaluator& ev, const Value& input, const CallArgs& args, bool by_attribute,
                  bool keep_if) {
    size_t first_test_arg = by_attribute ? 1 : 0;
    if (by_attribute && args.positional.empty())
        fail(TemplateError::Kind::kType, "selectattr needs an attribute");
    ValueList out;
    for (const Value& item : iterate(input)) {
        const Value subject = by_attribute ? attribute_of(item, args.positional[0]) : item;
        bool passed = false;
        if (args.positional.size() <= first_test_arg) {
            passed = subject.truthy();
        } else {
            const Value& test = args.positional[first_test_arg];
            if (!test.is_string()) fail(TemplateError::Kind::kType, "test name must be a string");
            if (!is_known_test(test.as_string())) {
                fail(TemplateError::Kind::kType, "No test named '" + test.as_string() + "'.");
            }
            CallArgs test_args;
            test_args.positional.assign(
                args.positional.begin() + static_cast<long>(first_test_arg) + 1,
                args.positional.end());
            test_args.keyword = args.keyword;
            passed = ev.call_test(test.as_string(), subject, test_args);
        }
        if (passed == keep_if) out.push_back(item);
    }
    return generator(std::move(out));
}

Value do_map(Evaluator& ev, const Value& input, const CallArgs& args) {
    ValueList out;
    if (const Value* attribute = args.keyword_arg("attribute")) {
        const Value* fallback = args.keyword_arg("default");
        for (const Value& item : iterate(input)) {
            Value v = attribute_of(item, *attribute);
            out.push_back(v.is_undefined() && fallback ? *fallback : v);
        }
        return generator(std::move(out));
    }
    if (args.positional.empty() || !args.positional[0].is_string()) {
        fail(TemplateError::Kind::kType, "map() needs a filter name or attribute=");
    }
    const std::string filter = args.positional[0].as_string();
    if (!is_known_filter(filter))
        fail(TemplateError::Kind::kType, "No filter named '" + filter + "'.");
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    for (const Value& item : iterate(input)) out.push_back(ev.call_filter(filter, item, rest));
    return generator(std::move(out));
}

ValueList sorted(const Value& input, bool reverse, bool case_sensitive, const Value* attribute) {
    ValueList items = iterate(input);
    auto key = [&](const Value& v) {
        return sort_key(attribute && !attribute->is_none() ? attribute_of(v, *attribute) : v,
                        case_sensitive);
    };
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
        return reverse ? compare_values(key(b), key(a)) < 0 : compare_values(key(a), key(b)) < 0;
    });
    return items;
}

Value do_sort(const Value& input, const CallArgs& args) {
    ArgReader r("sort", args, {"reverse", "case_sensitive", "attribute"});
    return Value::list(sorted(input, r.flag(0, false), r.flag(1, false), r.get(2)));
}

Value do_dictsort(const Value& input, const CallArgs& args) {
    ArgReader r("dictsort", args, {"case_sensitive", "by", "reverse"});
    if (!input.is_dict()) fail(TemplateError::Kind::kType, "dictsort: input must be a mapping");
    const std::string by = r.string(1, "key");
    const size_t pos = by == "key" ? 0 : by == "value" ? 1 : 2;
    if (pos == 2)
        fail(TemplateError::Kind::kType, "You can only sort by either \"key\" or \"value\"");
    ValueList items;
    for (const auto& [k, v] : input.as_dict().items)
        items.push_back(Value::list({Value(k), v}, SeqKind::kTuple));
    const bool case_sensitive = r.flag(0, false), reverse = r.flag(2, false);
    std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
        const Value ka = sort_key(a.as_list()[pos], case_sensitive),
                    kb = sort_key(b.as_list()[pos], case_sensitive);
        return reverse ? compare_values(kb, ka) < 0 : compare_values(ka, kb) < 0;
    });
    return Value::list(std::move(items));
}

Value min_max(const Value& input, const CallArgs& args, bool want_max) {
    ArgReader r(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
    const ValueList items = iterate(input);
    if (items.empty())
        return Value::undefined(std::string("No aggregated item, sequence was empty."));
    const Value* attribute = r.get(1);
    const bool cs = r.flag(0, false);
    auto key = [&](const Value& v) {
        return sort_key(attribute ? attribute_of(v, *attribute) : v, cs);
    };
    const Value* best = &items[0];
    for (const Value& v : items) {
        const int c = compare_values(key(v), key(*best));
        if (want_max ? c > 0 : c < 0) best = &v;
    }
    return *best;
}

Value do_unique(const Value& input, const CallArgs& args) {
    ArgReader r("unique", args, {"case_sensitive", "attribute"});
    const Value* attribute = r.get(1);
    ValueList out, seen;
    for (const Value& v : iterate(input)) {
        const Value k = sort_key(attribute ? attribute_of(v, *attribute) : v, r.flag(0, false));
        if (std::any_of(seen.begin(), seen.end(),
                        [&](const Value& s) { return values_equal(s, k); }))
            continue;
        seen.push_back(k);
        out.push_back(v);
    }
    return generator(std::move(out));
}

Value do_sum(const Value& input, const CallArgs& args) {
    ArgReader r("sum", args, {"attribute", "start"});
    Value total = r.value_or(1, Value(0));
    const Value* attribute = r.get(0);
    for (const Value& v : iterate(input)) {
        total = binary_op("+", total,
                          attribute && !attribute->is_none() ? attribute_of(v, *attribute) : v);
    }
    return total;
}

Value do_first_last(const Value& input, bool first) {
    if (input.is_list() && input.seq_kind() == SeqKind::kGenerator && !first) {
        fail(TemplateError::Kind::kType, "'generator' object is not reversible");
    }
    const ValueList items = iterate(input);
    if (items.empty()) {
        return Value::undefined(first ? "No first item, sequence was empty."
                                      : "No last item, sequence was empty.");
    }
    return first ? items.front() : items.back();
}

Value do_items(const Value& input) {
    if (input.is_undefined()) return generator({});
    if (!input.is_dict())
        fail(TemplateError::Kind::kType, "Can only get item pairs from a mapping.");
    ValueList out;
    for (const auto& [k, v] : input.as_dict().items)
        out.push_back(Value::list({Value(k), v}, SeqKind::kTuple));
    return generator(std::move(out));
}

std::string html_escape(const std::string& s) {
    std::string out;
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&#34;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

// jinja2's title filter: each run after "-", whitespace or an opening bracket starts a word.
std::string jinja_title(const std::string& s) {
    std::string out;
    bool word_start = true;
    for (const char32_t c : unicode::code_points(s)) {
        const bool separator =
            c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || unicode::is_space(c);
        std::string one;
        unicode::append_utf8(one, c);
        if (separator) {
            out += one;
            word_start = true;
        } else {
            out += word_start ? unicode::upper(one) : unicode::lower(one);
            word_start = false;
        }
    }
    return out;
}

Value string_filter(const std::string& name, const Value& input, const CallArgs& args) {
    const std::string s = python_str(input);
    if (name == "lower") return Value(unicode::lower(s));
    if (name == "upper") return Value(unicode::upper(s));
    if (name == "capitalize") return Value(strings::capitalize(s));
    if (name == "title") return Value(jinja_title(s));
    if (name == "trim") {
        ArgReader r("trim", args, {"chars"});
        const Value* chars = r.get(0);
        return Value(strings::strip(
            s, chars && chars->is_string() ? std::optional(chars->as_string()) : std::nullopt,
            strings::Side::kBoth));
    }
    if (name == "center") {
        ArgReader r("center", args, {"width"});
        return Value(strings::pad(s, r.integer(0, 80), " ", strings::Side::kBoth));
    }
    if (name == "e" || name == "escape" || name == "forceescape") return Value(html_escape(s));
    if (name == "wordcount") {
        int64_t n = 0;
        bool in_word = false;
        for (const char32_t c : unicode::code_points(s)) {
            const bool w = unicode::is_alnum(c) || c == '_';
            n += (w && !in_word);
            in_word = w;
        }
        return Value(n);
    }
    ArgReader r("replace", args, {"old", "new", "count"});
    return Value(strings::replace(s, python_str(r.required(0)), python_str(r.required(1)),
                                  r.integer(2, -1)));
}

}  // namespace

bool is_known_filter(const std::string& name) {
    return kImplemented.count(name) || kNotImplemented.count(name);
}

Value apply_filter(Evaluator& ev, const std::string& name, const Value& input,
                   const CallArgs& args) {
    if (kNotImplemented.count(name))
        fail(TemplateError::Kind::kUnsupported, "the '" + name + "' filter is not implemented");
    static const std::set<std::string> kStringFilters = {
        "lower", "upper",  "capitalize",  "title",     "trim",   "center",
        "e",     "escape", "forceescape", "wordcount", "replace"};
    if (kStringFilters.count(name)) return string_filter(name, input, args);
    if (name == "length" || name == "count") return Value(static_cast<int64_t>(python_len(input)));
    if (name == "default" || name == "d") return do_default(input, args);
    if (name == "join") return do_join(input, args);
    if (name == "tojson") return do_tojson(input, args);
    if (name == "string") return Value(python_str(input));
    if (name == "safe") return input;
    if (name == "list") return Value::list(iterate(input));
    if (name == "first" || name == "last") return do_first_last(input, name == "first");
    if (name == "items") return do_items(input);
    if (name == "int") return do_int(input, args);
    if (name == "float") return do_float(input, args);
    if (name == "round") return do_round(input, args);
    if (name == "indent") return do_indent(input, args);
    if (name == "map") return do_map(ev, input, args);
    if (name == "select" || name == "reject")
        return select_like(ev, input, args, false, name == "select");
    if (name == "selectattr" || name == "rejectattr")
        return select_like(ev, input, args, true, name == "selectattr");
    if (name == "sort") return do_sort(input, args);
    if (name == "dictsort") return do_dictsort(input, args);
    if (name == "unique") return do_unique(input, args);
    if (name == "sum") return do_sum(input, args);
    if (name == "max" || name == "min") return min_max(input, args, name == "max");
    if (name == "reverse") {
        if (input.is_string()) {
            const auto cps = unicode::code_points(input.as_string());
            return Value(
                unicode::to_utf8(std::vector<char32_t>(cps.rbegin(), cps.rend()), 0, cps.size()));
        }
        ValueList items = iterate(input);
        std::reverse(items.begin(), items.end());
        return generator(std::move(items));
    }
    if (name == "abs") {
        if (!input.is_number())
            fail(TemplateError::Kind::kType,
                 "bad operand type for abs(): '" + input.type_name() + "'");
        return input.is_float() ? Value(std::fabs(input.as_double()))
                                : Value(static_cast<int64_t>(std::llabs(input.as_int())));
    }
    if (name == "attr") {
        ArgReader r("attr", args, {"name"});
        return python_attribute(input, r.string(0, ""));
    }
    if (name == "format") {
        if (!args.keyword.empty())
            fail(TemplateError::Kind::kUnsupported, "format filter with keyword arguments");
        return binary_op("%", Value(python_str(input)),
                         Value::list(args.positional, SeqKind::kTuple));
    }
    if (name == "batch") {
        ArgReader r("batch", args, {"linecount", "fill_with"});
        const int64_t n = r.integer(0, 1);
        if (n <= 0) fail(TemplateError::Kind::kType, "batch size must be positive");
        ValueList out, cur;
        for (const Value& v : iterate(input)) {
            cur.push_back(v);
            if (static_cast<int64_t>(cur.size()) == n)
                out.push_back(Value::list(std::exchange(cur, {})));
        }
        if (!cur.empty()) {
            if (const Value* fill = r.get(1); fill && !fill->is_none()) {
                while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*fill);
            }
            out.push_back(Value::list(std::move(cur)));
        }
        return generator(std::move(out));
    }
    fail(TemplateError::Kind::kUnsupported, "the '" + name + "' filter is not implemented");
}

}  // namespace qlora::jinja
