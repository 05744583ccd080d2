// jinja2's built-in tests (jinja2/tests.py), with Python's notion of what each type is: bool is a
// number, a str is a sequence, Undefined is iterable and a sequence (it has __len__/__getitem__).
#include <set>

#include "jinja/args.h"
#include "jinja/builtins.h"
#include "jinja/evaluator.h"
#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

const std::set<std::string> kTests = {
    "boolean", "callable", "defined", "divisibleby", "eq",   "equalto",   "==",     "escaped",
    "even",    "false",    "filter",  "float",       "ge",   ">=",        "gt",     "greaterthan",
    ">",       "in",       "integer", "iterable",    "le",   "<=",        "lower",  "lessthan",
    "lt",      "<",        "mapping", "ne",          "!=",   "none",      "number", "odd",
    "sameas",  "sequence", "string",  "test",        "true", "undefined", "upper"};

int64_t integer_input(const std::string& test, const Value& v) {
    if (v.is_undefined()) fail(TemplateError::Kind::kUndefined, v.undefined_hint());
    if (!v.is_int() && !v.is_bool()) {
        fail(TemplateError::Kind::kUnsupported, "the '" + test + "' test on a " + v.type_name());
    }
    return v.as_int();
}

bool compare_test(const std::string& name, const Value& a, const Value& b) {
    if (name == "eq" || name == "equalto" || name == "==") return values_equal(a, b);
    if (name == "ne" || name == "!=") return !values_equal(a, b);
    if (a.is_undefined()) fail(TemplateError::Kind::kUndefined, a.undefined_hint());
    if (b.is_undefined()) fail(TemplateError::Kind::kUndefined, b.undefined_hint());
    const int c = compare_values(a, b);
    if (name == "lt" || name == "lessthan" || name == "<") return c < 0;
    if (name == "le" || name == "<=") return c <= 0;
    if (name == "gt" || name == "greaterthan" || name == ">") return c > 0;
    return c >= 0;
}

bool sameas(const Value& a, const Value& b) {
    if (a.is_none() || b.is_none() || a.is_bool() || b.is_bool()) {
        return a.kind() == b.kind() && (!a.is_bool() || a.as_bool() == b.as_bool());
    }
    fail(TemplateError::Kind::kUnsupported,
         "the 'sameas' test on " + a.type_name() + " (object identity)");
}

}  // namespace

bool is_known_test(const std::string& name) { return kTests.count(name) > 0; }

bool apply_test(Evaluator& ev, const std::string& name, const Value& v, const CallArgs& args) {
    (void)ev;
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "boolean") return v.is_bool();
    if (name == "true") return v.is_bool() && v.as_bool();
    if (name == "false") return v.is_bool() && !v.as_bool();
    if (name == "string") return v.is_string();
    if (name == "number") return v.is_number();
    if (name == "integer") return v.is_int();
    if (name == "float") return v.is_float();
    if (name == "mapping") return v.is_dict();
    if (name == "callable") return v.is_function();
    if (name == "escaped") return false;
    if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_dict() || v.is_string();
    if (name == "sequence") {
        return v.is_undefined() || v.is_string() || v.is_dict() || v.is_plain_sequence() ||
               (v.is_list() && v.seq_kind() == SeqKind::kRange);
    }
    if (name == "lower" || name == "upper") {
        const std::string s = v.is_string() ? v.as_string() : std::string();
        if (!v.is_string())
            fail(TemplateError::Kind::kUnsupported,
                 "the '" + name + "' test on a " + v.type_name());
        bool cased = false, ok = true;
        for (const char32_t c : unicode::code_points(s)) {
            cased = cased || unicode::is_cased(c);
            if (name == "lower" && unicode::is_upper(c)) ok = false;
            if (name == "upper" && unicode::is_lower(c)) ok = false;
        }
        return cased && ok;
    }
    if (name == "odd" || name == "even")
        return (integer_input(name, v) % 2 != 0) == (name == "odd");
    if (name == "filter") return v.is_string() && is_known_filter(v.as_string());
    if (name == "test") return v.is_string() && is_known_test(v.as_string());
    ArgReader r(name, args, {"other"});
    if (name == "divisibleby") {
        const int64_t n = integer_input(name, r.required(0));
        if (n == 0) fail(TemplateError::Kind::kType, "integer division or modulo by zero");
        return integer_input(name, v) % n == 0;
    }
    if (name == "filter")
        return r.required(0).is_string() && is_known_filter(r.required(0).as_string());
    if (name == "test")
        return r.required(0).is_string() && is_known_test(r.required(0).as_string());
    if (name == "sameas") return sameas(v, r.required(0));
    if (name == "in") {
        const Value& seq = r.required(0);
        if (seq.is_string() && v.is_string())
            return seq.as_string().find(v.as_string()) != std::string::npos;
        for (const Value& item : iterate(seq)) {
            if (values_equal(item, v)) return true;
        }
        return false;
    }
    return compare_test(name, v, r.required(0));
}

}  // namespace qlora::jinja
