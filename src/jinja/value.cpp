// Value construction, JSON conversion, truthiness and Python's == and < semantics.
#include "jinja/value.h"

#include <cmath>

#include "jinja/error.h"

namespace qlora::jinja {

const Value* ValueDict::find(const std::string& key) const {
    for (const auto& [k, v] : items) {
        if (k == key) return &v;
    }
    return nullptr;
}

void ValueDict::set(const std::string& key, Value value) {
    for (auto& [k, v] : items) {
        if (k == key) {
            v = std::move(value);
            return;
        }
    }
    items.emplace_back(key, std::move(value));
}

const Value* CallArgs::keyword_arg(const std::string& name) const {
    for (const auto& [k, v] : keyword) {
        if (k == name) return &v;
    }
    return nullptr;
}

Value Value::undefined(std::string hint, bool security) {
    Value v;
    v.bool_ = security;
    v.string_ = std::make_shared<const std::string>(std::move(hint));
    return v;
}

Value Value::none() {
    Value v;
    v.kind_ = Kind::kNone;
    return v;
}

Value::Value(bool b) : kind_(Kind::kBool), bool_(b) {}
Value::Value(int64_t i) : kind_(Kind::kInt), int_(i) {}
Value::Value(double d) : kind_(Kind::kFloat), float_(d) {}
Value::Value(std::string s)
    : kind_(Kind::kString), string_(std::make_shared<const std::string>(std::move(s))) {}

Value Value::list(ValueList items, SeqKind seq) {
    Value v;
    v.kind_ = Kind::kList;
    v.seq_ = seq;
    v.list_ = std::make_shared<const ValueList>(std::move(items));
    return v;
}

Value Value::dict(ValueDict dict) {
    Value v;
    v.kind_ = Kind::kDict;
    v.dict_ = std::make_shared<ValueDict>(std::move(dict));
    return v;
}

Value Value::function(std::string name, NativeFunction fn) {
    Value v;
    v.kind_ = Kind::kFunction;
    v.string_ = std::make_shared<const std::string>(std::move(name));
    v.function_ = std::make_shared<const NativeFunction>(std::move(fn));
    return v;
}

Value Value::namespace_object(ValueDict attrs) {
    Value v;
    v.kind_ = Kind::kNamespace;
    v.dict_ = std::make_shared<ValueDict>(std::move(attrs));
    return v;
}

Value Value::from_json(const nlohmann::ordered_json& j, int depth) {
    if (depth > kMaxJsonDepth) {
        fail(TemplateError::Kind::kLimit,
             "template variables nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    }
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::null:
            return none();
        case nlohmann::ordered_json::value_t::boolean:
            return Value(j.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer:
            return Value(j.get<int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
            const auto u = j.get<uint64_t>();
            if (u > static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<double>(u));
            return Value(static_cast<int64_t>(u));
        }
        case nlohmann::ordered_json::value_t::number_float:
            return Value(j.get<double>());
        case nlohmann::ordered_json::value_t::string:
            return Value(j.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            ValueList items;
            items.reserve(j.size());
            for (const auto& e : j) items.push_back(from_json(e, depth + 1));
            return list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            ValueDict d;
            d.items.reserve(j.size());
            for (const auto& [k, e] : j.items()) d.items.emplace_back(k, from_json(e, depth + 1));
            return dict(std::move(d));
        }
        default:
            return none();  // binary / discarded: not produced by JSON text
    }
}

nlohmann::ordered_json Value::to_json() const {
    switch (kind_) {
        case Kind::kNone:
            return nullptr;
        case Kind::kBool:
            return bool_;
        case Kind::kInt:
            return int_;
        case Kind::kFloat:
            return float_;
        case Kind::kString:
            return *string_;
        case Kind::kList: {
            if (!is_plain_sequence()) break;
            auto out = nlohmann::ordered_json::array();
            for (const auto& e : *list_) out.push_back(e.to_json());
            return out;
        }
        case Kind::kDict: {
            auto out = nlohmann::ordered_json::object();
            for (const auto& [k, e] : dict_->items) out[k] = e.to_json();
            return out;
        }
        default:
            break;
    }
    fail(TemplateError::Kind::kType, "Object of type " + type_name() + " is not JSON serializable");
}

const std::string& Value::undefined_hint() const {
    static const std::string kNoHint = "undefined value";
    return string_ ? *string_ : kNoHint;
}

double Value::as_double() const {
    if (kind_ == Kind::kFloat) return float_;
    return static_cast<double>(as_int());
}

bool Value::truthy() const {
    switch (kind_) {
        case Kind::kUndefined:
        case Kind::kNone:
            return false;
        case Kind::kBool:
            return bool_;
        case Kind::kInt:
            return int_ != 0;
        case Kind::kFloat:
            return float_ != 0.0;
        case Kind::kString:
            return !string_->empty();
        case Kind::kList:
            return seq_ == SeqKind::kGenerator || !list_->empty();
        case Kind::kDict:
            return !dict_->items.empty();
        default:
            return true;
    }
}

std::string Value::type_name() const {
    switch (kind_) {
        case Kind::kUndefined:
            return "Undefined";
        case Kind::kNone:
            return "NoneType";
        case Kind::kBool:
            return "bool";
        case Kind::kInt:
            return "int";
        case Kind::kFloat:
            return "float";
        case Kind::kString:
            return "str";
        case Kind::kList:
            switch (seq_) {
                case SeqKind::kTuple:
                    return "tuple";
                case SeqKind::kGenerator:
                    return "generator";
                case SeqKind::kDictView:
                    return "dict_items";
                case SeqKind::kRange:
                    return "range";
                default:
                    return "list";
            }
        case Kind::kDict:
            return "dict";
        case Kind::kFunction:
            return "function";
        case Kind::kNamespace:
            return "Namespace";
    }
    return "object";
}

bool values_equal(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
        return a.as_int() == b.as_int();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Value::Kind::kUndefined:
        case Value::Kind::kNone:
            return true;
        case Value::Kind::kString:
            return a.as_string() == b.as_string();
        case Value::Kind::kList: {
            if (a.seq_kind() != b.seq_kind() || a.seq_kind() == SeqKind::kGenerator) return false;
            if (a.as_list().size() != b.as_list().size()) return false;
            for (size_t i = 0; i < a.as_list().size(); ++i) {
                if (!values_equal(a.as_list()[i], b.as_list()[i])) return false;
            }
            return true;
        }
        case Value::Kind::kDict: {
            if (a.as_dict().items.size() != b.as_dict().items.size()) return false;
            for (const auto& [k, v] : a.as_dict().items) {
                const Value* other = b.as_dict().find(k);
                if (!other || !values_equal(v, *other)) return false;
            }
            return true;
        }
        case Value::Kind::kNamespace:
            return &a.namespace_attrs() == &b.namespace_attrs();
        case Value::Kind::kFunction:
            return &a.as_function() == &b.as_function();
        default:
            return false;
    }
}

int compare_values(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) {
        if (a.is_float() || b.is_float()) {
            const double x = a.as_double(), y = b.as_double();
            return x < y ? -1 : (x > y ? 1 : 0);
        }
        const int64_t x = a.as_int(), y = b.as_int();
        return x < y ? -1 : (x > y ? 1 : 0);
    }
    if (a.is_string() && b.is_string()) {
        const int c = a.as_string().compare(b.as_string());  // UTF-8 byte order = code point order
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (a.is_plain_sequence() && b.is_plain_sequence() && a.is_tuple() == b.is_tuple()) {
        const auto& x = a.as_list();
        const auto& y = b.as_list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!values_equal(x[i], y[i])) return compare_values(x[i], y[i]);
        }
        return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
    }
    fail(TemplateError::Kind::kType, "'<' not supported between instances of '" + a.type_name() +
                                         "' and '" + b.type_name() + "'");
}

}  // namespace qlora::jinja
