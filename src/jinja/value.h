// The values a chat template computes with, modelled on the Python objects jinja2 sees when
// transformers renders a template: None, bool, int, float, str (UTF-8 here, indexed by code point),
// list/tuple, dict (insertion-ordered, string keys), jinja2's Undefined, callables (macros,
// globals, bound methods) and namespace() objects. Lists and dicts are shared and never mutated
// (transformers renders in jinja2's ImmutableSandboxedEnvironment); a namespace is the one mutable
// object, so its attributes live behind a shared pointer that every copy sees.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qlora::jinja {

class Value;
using ValueList = std::vector<Value>;

// A dict: keys in insertion order, as Python dicts iterate.
struct ValueDict {
    std::vector<std::pair<std::string, Value>> items;
    const Value* find(const std::string& key) const;
    void set(const std::string& key, Value value);
};

// Arguments of a call: positional, then keyword in source order.
struct CallArgs {
    ValueList positional;
    std::vector<std::pair<std::string, Value>> keyword;
    const Value* keyword_arg(const std::string& name) const;
};

using NativeFunction = std::function<Value(const CallArgs&)>;

// What Python object a sequence stands for: they iterate alike but print, index and measure
// differently (a generator from select/map has no len() and is always truthy).
enum class SeqKind { kList, kTuple, kGenerator, kDictView, kRange };

class Value {
  public:
    enum class Kind {
        kUndefined,
        kNone,
        kBool,
        kInt,
        kFloat,
        kString,
        kList,
        kDict,
        kFunction,
        kNamespace
    };

    Value() = default;  // Undefined
    // security: the sandbox refused the attribute (using it raises SecurityError, not
    // UndefinedError).
    static Value undefined(std::string hint, bool security = false);
    static Value none();
    Value(bool b);
    Value(int64_t i);
    Value(int i) : Value(static_cast<int64_t>(i)) {}
    Value(double d);
    Value(std::string s);
    Value(const char* s) : Value(std::string(s)) {}
    static Value list(ValueList items, SeqKind seq = SeqKind::kList);
    static Value dict(ValueDict dict);
    static Value function(std::string name, NativeFunction fn);
    static Value namespace_object(ValueDict attrs);

    // From/to JSON (ordered_json keeps the key order the caller wrote, as Python dicts do).
    // Nesting deeper than kMaxJsonDepth is refused (TemplateError kLimit), not a stack overflow.
    static constexpr int kMaxJsonDepth = 256;
    static Value from_json(const nlohmann::ordered_json& j, int depth = 0);
    nlohmann::ordered_json to_json()
        const;  // throws for Undefined and callables, as json.dumps does

    Kind kind() const { return kind_; }
    bool is_undefined() const { return kind_ == Kind::kUndefined; }
    bool is_security_undefined() const { return kind_ == Kind::kUndefined && bool_; }
    bool is_none() const { return kind_ == Kind::kNone; }
    bool is_bool() const { return kind_ == Kind::kBool; }
    bool is_int() const { return kind_ == Kind::kInt; }
    bool is_float() const { return kind_ == Kind::kFloat; }
    bool is_number() const {
        return kind_ == Kind::kInt || kind_ == Kind::kFloat || kind_ == Kind::kBool;
    }
    bool is_string() const { return kind_ == Kind::kString; }
    bool is_list() const { return kind_ == Kind::kList; }
    bool is_tuple() const { return kind_ == Kind::kList && seq_ == SeqKind::kTuple; }
    SeqKind seq_kind() const { return seq_; }
    // A list or tuple: what Python can print, index and serialize as JSON.
    bool is_plain_sequence() const {
        return kind_ == Kind::kList && (seq_ == SeqKind::kList || seq_ == SeqKind::kTuple);
    }
    bool is_dict() const { return kind_ == Kind::kDict; }
    bool is_function() const { return kind_ == Kind::kFunction; }
    bool is_namespace() const { return kind_ == Kind::kNamespace; }

    bool as_bool() const { return bool_; }
    int64_t as_int() const { return kind_ == Kind::kBool ? (bool_ ? 1 : 0) : int_; }
    double as_double() const;  // int, bool or float
    const std::string& as_string() const { return *string_; }
    const ValueList& as_list() const { return *list_; }
    const ValueDict& as_dict() const { return *dict_; }  // dicts and namespaces
    ValueDict& namespace_attrs() const { return *dict_; }
    const NativeFunction& as_function() const { return *function_; }
    const std::string& function_name() const { return *string_; }
    // Why an Undefined is undefined, in jinja2's words ("'x' is undefined").
    const std::string& undefined_hint() const;

    // Python truthiness (Undefined is falsy).
    bool truthy() const;
    // The Python type name jinja2 uses in messages: "str", "int", "list", "dict", ...
    std::string type_name() const;

  private:
    Kind kind_ = Kind::kUndefined;
    bool bool_ = false;
    SeqKind seq_ = SeqKind::kList;
    int64_t int_ = 0;
    double float_ = 0;
    std::shared_ptr<const std::string> string_;  // str, a function's name, an Undefined's hint
    std::shared_ptr<const ValueList> list_;
    std::shared_ptr<ValueDict> dict_;
    std::shared_ptr<const NativeFunction> function_;
};

// Python semantics of ==, and of < for the types that order (numbers, strings, lists).
bool values_equal(const Value& a, const Value& b);
// -1, 0, 1; throws qlora::Error (the caller adds the location) for unorderable types.
int compare_values(const Value& a, const Value& b);

}  // namespace qlora::jinja
