// Python's arithmetic operators on template values: int (64-bit here; overflow is an error rather
// than a wrong number), float, bool as int, str and list concatenation/repetition, floor division
// and modulo rounding toward negative infinity, and "%"-formatting of strings.
#include <cmath>

#include "jinja/evaluator.h"
#include "jinja/python_format.h"

namespace qlora::jinja {
namespace {

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
    if (a.is_string() && op == "+") {
        fail(TemplateError::Kind::kType,
             "can only concatenate str (not \"" + b.type_name() + "\") to str");
    }
    if (a.is_plain_sequence() && op == "+") {
        fail(TemplateError::Kind::kType, "can only concatenate " + a.type_name() + " (not \"" +
                                             b.type_name() + "\") to " + a.type_name());
    }
    fail(TemplateError::Kind::kType, "unsupported operand type(s) for " + op + ": '" +
                                         a.type_name() + "' and '" + b.type_name() + "'");
}

[[noreturn]] void overflow() {
    fail(TemplateError::Kind::kUnsupported,
         "integer overflow (Python integers are unbounded, ours are 64-bit)");
}

Value int_op(const std::string& op, int64_t x, int64_t y) {
    int64_t r = 0;
    if (op == "+") {
        if (__builtin_add_overflow(x, y, &r)) overflow();
    } else if (op == "-") {
        if (__builtin_sub_overflow(x, y, &r)) overflow();
    } else if (op == "*") {
        if (__builtin_mul_overflow(x, y, &r)) overflow();
    } else if (op == "/") {
        if (y == 0) fail(TemplateError::Kind::kType, "division by zero");
        return Value(static_cast<double>(x) / static_cast<double>(y));
    } else if (op == "//" || op == "%") {
        if (y == 0) fail(TemplateError::Kind::kType, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) overflow();
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
            --q;
            m += y;
        }
        r = op == "//" ? q : m;
    } else if (op == "**") {
        if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
        r = 1;
        for (int64_t i = 0; i < y; ++i) {
            if (__builtin_mul_overflow(r, x, &r)) overflow();
            if (r == 0 || r == 1) break;
        }
    }
    return Value(r);
}

Value float_op(const std::string& op, double x, double y) {
    if (op == "+") return Value(x + y);
    if (op == "-") return Value(x - y);
    if (op == "*") return Value(x * y);
    if (op == "/") {
        if (y == 0) fail(TemplateError::Kind::kType, "float division by zero");
        return Value(x / y);
    }
    if (op == "//") {
        if (y == 0) fail(TemplateError::Kind::kType, "float floor division by zero");
        return Value(std::floor(x / y));
    }
    if (op == "%") {
        if (y == 0) fail(TemplateError::Kind::kType, "float modulo");
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value(m);
    }
    return Value(std::pow(x, y));
}

// "%s and %d" % (a, 3): the conversions chat templates use; others are refused.
Value percent_format(const std::string& format, const Value& args) {
    const ValueList values = args.is_tuple() ? args.as_list() : ValueList{args};
    std::string out;
    size_t next = 0;
    for (size_t i = 0; i < format.size(); ++i) {
        if (format[i] != '%') {
            out += format[i];
            continue;
        }
        if (++i >= format.size()) fail(TemplateError::Kind::kType, "incomplete format");
        const char conv = format[i];
        if (conv == '%') {
            out += '%';
            continue;
        }
        if (conv != 's' && conv != 'd' && conv != 'i' && conv != 'r') {
            fail(TemplateError::Kind::kUnsupported, std::string("string formatting with %") + conv);
        }
        if (next >= values.size())
            fail(TemplateError::Kind::kType, "not enough arguments for format string");
        const Value& v = values[next++];
        if (conv == 's') {
            out += python_str(v);
        } else if (conv == 'r') {
            out += python_repr(v);
        } else {
            if (!v.is_number())
                fail(TemplateError::Kind::kType,
                     "%d format: a real number is required, not " + v.type_name());
            out += std::to_string(v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int());
        }
    }
    if (next < values.size()) {
        fail(TemplateError::Kind::kType, "not all arguments converted during string formatting");
    }
    return Value(std::move(out));
}

Value repeat(const Value& seq, const Value& n) {
    const int64_t times = n.as_int();
    if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < times; ++i) out += seq.as_string();
        return Value(std::move(out));
    }
    ValueList out;
    for (int64_t i = 0; i < times; ++i)
        out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
    return Value::list(std::move(out), seq.seq_kind());
}

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined() || b.is_undefined()) {
        const Value& u = a.is_undefined() ? a : b;
        fail(u.is_security_undefined() ? TemplateError::Kind::kSecurity
                                       : TemplateError::Kind::kUndefined,
             u.undefined_hint());
    }
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float() || (op == "/")) {
            if (!a.is_float() && !b.is_float() && op == "/")
                return int_op(op, a.as_int(), b.as_int());
            return float_op(op, a.as_double(), b.as_double());
        }
        return int_op(op, a.as_int(), b.as_int());
    }
    if (op == "+" && a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
    if (op == "+" && a.is_plain_sequence() && b.is_plain_sequence() &&
        a.is_tuple() == b.is_tuple()) {
        ValueList out = a.as_list();
        out.insert(out.end(), b.as_list().begin(), b.as_list().end());
        return Value::list(std::move(out), a.seq_kind());
    }
    if (op == "*") {
        if ((a.is_string() || a.is_plain_sequence()) && (b.is_int() || b.is_bool()))
            return repeat(a, b);
        if ((b.is_string() || b.is_plain_sequence()) && (a.is_int() || a.is_bool()))
            return repeat(b, a);
    }
    if (op == "%" && a.is_string()) return percent_format(a.as_string(), b);
    unsupported_operands(op, a, b);
}

}  // namespace qlora::jinja
