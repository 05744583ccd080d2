// Template parsing/rendering entry points, the environment's globals, and the mapping of internal
// errors to one-line qlora::Errors that name the template, line and column.
#include "jinja/template.h"

#include <ctime>

#include "jinja/args.h"
#include "jinja/lexer.h"
#include "jinja/parser.h"
#include "jinja/python_format.h"

namespace qlora::jinja {
namespace {

constexpr int64_t kMaxRange = 100000;  // jinja2's sandbox MAX_RANGE

const char* kind_label(TemplateError::Kind kind) {
    switch (kind) {
        case TemplateError::Kind::kRaised:
            return "TemplateError";
        case TemplateError::Kind::kUndefined:
            return "UndefinedError";
        case TemplateError::Kind::kType:
            return "TypeError";
        case TemplateError::Kind::kSecurity:
            return "SecurityError";
        case TemplateError::Kind::kUnsupported:
            return "unsupported by this engine";
        case TemplateError::Kind::kLimit:
            return "limit exceeded";
        case TemplateError::Kind::kSyntax:
            return "TemplateSyntaxError";
    }
    return "error";
}

std::string cut(const std::string& s, size_t n = 300) {
    return s.size() <= n ? s : s.substr(0, n) + "...";
}

Value range_global(const CallArgs& a) {
    ArgReader r("range", a, {"start", "stop", "step"});
    int64_t start = 0, stop = 0, step = 1;
    if (a.positional.size() == 1) {
        stop = r.integer(0, 0);
    } else {
        start = r.integer(0, 0);
        stop = r.integer(1, 0);
        step = r.integer(2, 1);
    }
    if (step == 0) fail(TemplateError::Kind::kType, "range() arg 3 must not be zero");
    const int64_t n = step > 0 ? (stop > start ? (stop - start + step - 1) / step : 0)
                               : (start > stop ? (start - stop - step - 1) / -step : 0);
    if (n > kMaxRange) {
        fail(TemplateError::Kind::kLimit,
             "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    }
    ValueList out;
    for (int64_t i = 0; i < n; ++i) out.emplace_back(start + i * step);
    return Value::list(std::move(out), SeqKind::kRange);
}

ValueDict dict_from_args(const CallArgs& a, const char* what) {
    ValueDict d;
    if (a.positional.size() > 1)
        fail(TemplateError::Kind::kType, std::string(what) + " expected at most 1 argument");
    if (!a.positional.empty()) {
        const Value& src = a.positional[0];
        if (src.is_dict()) {
            d = src.as_dict();
        } else {
            for (const Value& pair : iterate(src)) {
                const ValueList kv = iterate(pair);
                if (kv.size() != 2 || !kv[0].is_string()) {
                    fail(TemplateError::Kind::kType,
                         std::string(what) + ": expected (key, value) pairs with string keys");
                }
                d.set(kv[0].as_string(), kv[1]);
            }
        }
    }
    for (const auto& [k, v] : a.keyword) d.set(k, v);
    return d;
}

Value strftime_now(const CallArgs& a) {
    ArgReader r("strftime_now", a, {"format"});
    const std::string format = r.string(0, "");
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    std::string buf(256 + format.size() * 4, '\0');
    const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &local);
    buf.resize(n);
    return Value(buf);
}

Value unsupported_global(const std::string& name) {
    return Value::function(name, [name](const CallArgs&) -> Value {
        fail(TemplateError::Kind::kUnsupported, "the global '" + name + "' is not implemented");
    });
}

}  // namespace

TemplateFailure::TemplateFailure(TemplateError::Kind kind, std::string name, int line, int column,
                                 std::string detail)
    : qlora::Error(name + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                   kind_label(kind) + ": " + cut(detail)),
      kind_(kind),
      line_(line),
      column_(column),
      detail_(std::move(detail)) {}

ValueDict environment_globals() {
    ValueDict g;
    g.set("range", Value::function("range", range_global));
    g.set("dict", Value::function("dict", [](const CallArgs& a) {
              return Value::dict(dict_from_args(a, "dict"));
          }));
    g.set("namespace", Value::function("namespace", [](const CallArgs& a) {
              ValueDict attrs = dict_from_args(a, "namespace");
              for (const auto& [k, _] : attrs.items) {
                  if (!k.empty() && k[0] == '_') {
                      fail(TemplateError::Kind::kSecurity,
                           "Chat templates cannot store underscore-prefixed attributes on a "
                           "namespace, but got '" +
                               k + "'. Please rename the attribute.");
                  }
              }
              return Value::namespace_object(std::move(attrs));
          }));
    g.set("raise_exception", Value::function("raise_exception", [](const CallArgs& a) -> Value {
              ArgReader r("raise_exception", a, {"message"});
              fail(TemplateError::Kind::kRaised, python_str(r.required(0)));
          }));
    g.set("strftime_now", Value::function("strftime_now", strftime_now));
    for (const char* name : {"lipsum", "cycler", "joiner"}) g.set(name, unsupported_global(name));
    return g;
}

Template Template::parse(const std::string& source, std::string name) {
    Template t;
    t.name_ = std::move(name);
    try {
        t.body_ = std::make_shared<const Body>(jinja::parse(tokenize(source)));
    } catch (const SyntaxError& e) {
        const std::string what = e.what();
        const bool unsupported = what.rfind("unsupported", 0) == 0;
        throw TemplateFailure(
            unsupported ? TemplateError::Kind::kUnsupported : TemplateError::Kind::kSyntax, t.name_,
            e.at().line, e.at().column, what);
    }
    return t;
}

std::string Template::render(const ValueDict& variables, RenderLimits limits) const {
    ValueDict all = environment_globals();
    for (const auto& [k, v] : variables.items) all.set(k, v);
    Evaluator evaluator(limits);
    try {
        return evaluator.render(*body_, all);
    } catch (const LocatedError& e) {
        throw TemplateFailure(e.kind(), name_, e.at().line, e.at().column, e.what());
    } catch (const TemplateError& e) {
        throw TemplateFailure(e.kind(), name_, 0, 0, e.what());
    }
}

std::string Template::render(const nlohmann::ordered_json& variables, RenderLimits limits) const {
    QLORA_CHECK(variables.is_object(), name_, ": template variables must be a JSON object, got ",
                variables.type_name());
    Value converted;
    try {
        converted = Value::from_json(variables);
    } catch (const TemplateError& e) {
        throw TemplateFailure(e.kind(), name_, 0, 0, e.what());
    }
    return render(converted.as_dict(), limits);
}

}  // namespace qlora::jinja
