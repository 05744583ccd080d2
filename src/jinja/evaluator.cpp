// Statements and expressions of the syntax tree, rendered with jinja2's runtime semantics.
// Scoping as jinja2 compiles it: each for-loop iteration and each macro call gets a fresh frame
// whose parent is the enclosing one (a set inside a loop is gone at the next iteration and after
// the loop); if/with/filter bodies write to the frame they are in (with: a child frame).
#include "jinja/evaluator.h"

#include <optional>

#include "jinja/builtins.h"
#include "jinja/python_format.h"
#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

[[noreturn]] void undefined_error(const Value& u) {
    fail(u.is_security_undefined() ? TemplateError::Kind::kSecurity
                                   : TemplateError::Kind::kUndefined,
         u.undefined_hint());
}

// Python slice indices for a sequence of length n (step != 0).
std::vector<size_t> slice_indices(int64_t n, const Value& start, const Value& stop,
                                  const Value& step) {
    const int64_t st = step.is_none() ? 1 : step.as_int();
    if (st == 0) fail(TemplateError::Kind::kType, "slice step cannot be zero");
    auto clamp = [&](const Value& v, int64_t dflt) {
        if (v.is_none()) return dflt;
        int64_t i = v.as_int();
        if (i < 0) i += n;
        if (st > 0) return std::clamp<int64_t>(i, 0, n);
        return std::clamp<int64_t>(i, -1, n - 1);
    };
    const int64_t b = clamp(start, st > 0 ? 0 : n - 1);
    const int64_t e = clamp(stop, st > 0 ? n : -1);
    std::vector<size_t> out;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(static_cast<size_t>(i));
    return out;
}

bool contains(const Value& container, const Value& item) {
    if (container.is_undefined()) return false;
    if (container.is_string()) {
        if (!item.is_string()) {
            fail(TemplateError::Kind::kType,
                 "'in <string>' requires string as left operand, not " + item.type_name());
        }
        return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_list()) {
        for (const auto& v : container.as_list()) {
            if (values_equal(v, item)) return true;
        }
        return false;
    }
    if (container.is_dict() || container.is_namespace()) {
        return item.is_string() && container.as_dict().find(item.as_string()) != nullptr;
    }
    fail(TemplateError::Kind::kType,
         "argument of type '" + container.type_name() + "' is not iterable");
}

}  // namespace

const Value* Frame::lookup(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get()) {
        const auto it = f->vars.find(name);
        if (it != f->vars.end()) return &it->second;
    }
    return nullptr;
}

ValueList iterate(const Value& v) {
    switch (v.kind()) {
        case Value::Kind::kUndefined:
            if (v.is_security_undefined()) undefined_error(v);
            return {};
        case Value::Kind::kList:
            return v.as_list();
        case Value::Kind::kDict: {
            ValueList keys;
            for (const auto& [k, _] : v.as_dict().items) keys.emplace_back(k);
            return keys;
        }
        case Value::Kind::kString: {
            ValueList chars;
            const auto cps = unicode::code_points(v.as_string());
            for (size_t i = 0; i < cps.size(); ++i)
                chars.emplace_back(unicode::to_utf8(cps, i, i + 1));
            return chars;
        }
        default:
            fail(TemplateError::Kind::kType, "'" + v.type_name() + "' object is not iterable");
    }
}

std::string Evaluator::render(const Body& body, const ValueDict& variables) {
    auto frame = std::make_shared<Frame>();
    for (const auto& [k, v] : variables.items) frame->vars[k] = v;
    std::string out;
    exec_body(body, frame, out);
    return out;
}

void Evaluator::append(std::string& out, const std::string& text) {
    produced_bytes_ += text.size();
    if (produced_bytes_ > limits_.max_output_bytes) {
        fail(TemplateError::Kind::kLimit, "the template produced more than " +
                                              std::to_string(limits_.max_output_bytes) + " bytes");
    }
    out += text;
}

Evaluator::Flow Evaluator::exec_body(const Body& body, const FramePtr& frame, std::string& out) {
    for (const auto& s : body) {
        const Flow flow = exec(*s, frame, out);
        if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
}

Evaluator::Flow Evaluator::exec(const Stmt& s, const FramePtr& frame, std::string& out) {
    try {
        switch (s.kind) {
            case Stmt::Kind::kText:
                append(out, s.text);
                break;
            case Stmt::Kind::kOutput:
                append(out, python_str(eval(*s.expr, frame)));
                break;
            case Stmt::Kind::kIf:
                return exec_if(s, frame, out);
            case Stmt::Kind::kFor:
                return exec_for(s, frame, out);
            case Stmt::Kind::kSet:
            case Stmt::Kind::kSetBlock:
                exec_set(s, frame, out);
                break;
            case Stmt::Kind::kMacro:
                define_macro(s, frame);
                break;
            case Stmt::Kind::kFilterBlock: {
                std::string inner;
                const Flow flow = exec_body(s.body, frame, inner);
                const Value text(std::move(inner));
                append(out, python_str(eval_filter(*s.expr, frame, &text)));
                return flow;
            }
            case Stmt::Kind::kWith: {
                auto child = std::make_shared<Frame>();
                child->parent = frame;
                for (const auto& [target, expr] : s.assignments)
                    assign(target, eval(*expr, frame), child);
                return exec_body(s.body, child, out);
            }
            case Stmt::Kind::kGeneration:
                return exec_body(s.body, frame, out);
            case Stmt::Kind::kBreak:
                return Flow::kBreak;
            case Stmt::Kind::kContinue:
                return Flow::kContinue;
        }
    } catch (const LocatedError&) {
        throw;
    } catch (const TemplateError& e) {
        throw LocatedError(e, s.at);
    }
    return Flow::kNormal;
}

Evaluator::Flow Evaluator::exec_if(const Stmt& s, const FramePtr& frame, std::string& out) {
    for (const auto& [cond, body] : s.branches) {
        if (eval(*cond, frame).truthy()) return exec_body(body, frame, out);
    }
    return exec_body(s.else_body, frame, out);
}

Value Evaluator::make_loop(const ValueList& items, size_t index, const Value& cycle,
                           const Value& changed) {
    const auto n = static_cast<int64_t>(items.size());
    const auto i = static_cast<int64_t>(index);
    ValueDict loop;
    loop.items.reserve(12);
    loop.items.emplace_back("index", Value(i + 1));
    loop.items.emplace_back("index0", Value(i));
    loop.items.emplace_back("revindex", Value(n - i));
    loop.items.emplace_back("revindex0", Value(n - i - 1));
    loop.items.emplace_back("first", Value(i == 0));
    loop.items.emplace_back("last", Value(i == n - 1));
    loop.items.emplace_back("length", Value(n));
    loop.items.emplace_back("depth", Value(1));
    loop.items.emplace_back("depth0", Value(0));
    if (i > 0) loop.items.emplace_back("previtem", items[index - 1]);
    if (i + 1 < n) loop.items.emplace_back("nextitem", items[index + 1]);
    loop.items.emplace_back("cycle", cycle);
    loop.items.emplace_back("changed", changed);
    return Value::dict(std::move(loop));
}

Evaluator::Flow Evaluator::exec_for(const Stmt& s, const FramePtr& frame, std::string& out) {
    ValueList items = iterate(eval(*s.expr, frame));
    if (s.condition) {  // {% for x in xs if cond %}: loop.* counts the kept items
        ValueList kept;
        for (auto& item : items) {
            auto probe = std::make_shared<Frame>();
            probe->parent = frame;
            assign(s.target, item, probe);
            if (eval(*s.condition, probe).truthy()) kept.push_back(std::move(item));
        }
        items = std::move(kept);
    }
    if (items.empty()) return exec_body(s.else_body, frame, out);
    // loop.changed(*values): true on the first call and whenever the values differ from the last.
    auto last_changed = std::make_shared<std::optional<ValueList>>();
    const Value changed = Value::function("loop.changed", [last_changed](const CallArgs& a) {
        const bool differs = !last_changed->has_value() ||
                             !values_equal(Value::list(**last_changed), Value::list(a.positional));
        *last_changed = a.positional;
        return Value(differs);
    });
    for (size_t i = 0; i < items.size(); ++i) {
        auto iteration = std::make_shared<Frame>();
        iteration->parent = frame;
        const Value cycle = Value::function("loop.cycle", [i](const CallArgs& a) {
            if (a.positional.empty())
                fail(TemplateError::Kind::kType, "no items for cycling given");
            return a.positional[i % a.positional.size()];
        });
        iteration->vars["loop"] = make_loop(items, i, cycle, changed);
        assign(s.target, items[i], iteration);
        if (exec_body(s.body, iteration, out) == Flow::kBreak) break;
    }
    return Flow::kNormal;
}

void Evaluator::exec_set(const Stmt& s, const FramePtr& frame, std::string& out) {
    (void)out;
    if (s.kind == Stmt::Kind::kSet) {
        assign(s.target, eval(*s.expr, frame), frame);
        return;
    }
    std::string captured;
    exec_body(s.body, frame, captured);
    Value v(std::move(captured));
    if (s.expr) v = eval_filter(*s.expr, frame, &v);
    assign(s.target, v, frame);
}

void Evaluator::assign(const Target& target, const Value& value, const FramePtr& frame) {
    if (!target.attribute.empty()) {
        const Value* ns = frame->lookup(target.names[0]);
        if (!ns || !ns->is_namespace()) {
            fail(TemplateError::Kind::kType, "cannot assign attribute on non-namespace object");
        }
        if (!target.attribute.empty() && target.attribute[0] == '_') {
            fail(TemplateError::Kind::kSecurity,
                 "Chat templates cannot store underscore-prefixed attributes on a namespace, but "
                 "got '" +
                     target.attribute + "'. Please rename the attribute.");
        }
        ns->namespace_attrs().set(target.attribute, value);
        return;
    }
    if (!target.is_tuple) {
        frame->vars[target.names[0]] = value;
        return;
    }
    const ValueList items = iterate(value);
    if (items.size() != target.names.size()) {
        fail(
            TemplateError::Kind::kType,
            items.size() > target.names.size()
                ? "too many values to unpack (expected " + std::to_string(target.names.size()) + ")"
                : "not enough values to unpack (expected " + std::to_string(target.names.size()) +
                      ", got " + std::to_string(items.size()) + ")");
    }
    for (size_t i = 0; i < items.size(); ++i) frame->vars[target.names[i]] = items[i];
}

void Evaluator::define_macro(const Stmt& s, const FramePtr& frame) {
    const Stmt* macro = &s;
    std::weak_ptr<Frame> closure = frame;  // the frame owns the macro: no reference cycle
    frame->vars[s.text] = Value::function(s.text, [this, macro, closure](const CallArgs& args) {
        return invoke_macro(*macro, closure.lock(), args);
    });
}

Value Evaluator::invoke_macro(const Stmt& s, const FramePtr& closure, const CallArgs& args) {
    if (!closure)
        fail(TemplateError::Kind::kUnsupported, "macro '" + s.text + "' called outside its scope");
    if (args.positional.size() > s.params.size() && !s.uses_varargs) {
        fail(TemplateError::Kind::kType, "macro '" + s.text + "' takes not more than " +
                                             std::to_string(s.params.size()) + " argument(s)");
    }
    auto frame = std::make_shared<Frame>();
    frame->parent = closure;
    ValueDict extra_kwargs;
    for (const auto& [k, v] : args.keyword) {
        bool is_param = false;
        for (const auto& p : s.params) is_param = is_param || p.name == k;
        if (!is_param && !s.uses_kwargs) {
            fail(TemplateError::Kind::kType,
                 "macro '" + s.text + "' takes no keyword argument '" + k + "'");
        }
        if (!is_param) extra_kwargs.set(k, v);
    }
    for (size_t i = 0; i < s.params.size(); ++i) {
        const auto& p = s.params[i];
        if (i < args.positional.size()) {
            if (args.keyword_arg(p.name)) {
                fail(TemplateError::Kind::kType,
                     "macro '" + s.text + "' got multiple values for argument '" + p.name + "'");
            }
            frame->vars[p.name] = args.positional[i];
        } else if (const Value* kw = args.keyword_arg(p.name)) {
            frame->vars[p.name] = *kw;
        } else if (p.default_value) {
            frame->vars[p.name] = eval(*p.default_value, frame);
        } else {
            frame->vars[p.name] = Value::undefined("parameter '" + p.name + "' was not provided");
        }
    }
    ValueList rest;
    for (size_t i = s.params.size(); i < args.positional.size(); ++i)
        rest.push_back(args.positional[i]);
    frame->vars["varargs"] = Value::list(std::move(rest), SeqKind::kTuple);
    frame->vars["kwargs"] = Value::dict(std::move(extra_kwargs));
    std::string out;
    exec_body(s.body, frame, out);
    return Value(std::move(out));
}

Value Evaluator::call(const Value& callee, const CallArgs& args) {
    if (callee.is_undefined()) undefined_error(callee);
    if (!callee.is_function()) {
        fail(TemplateError::Kind::kType, "'" + callee.type_name() + "' object is not callable");
    }
    struct DepthScope {
        int& d;
        ~DepthScope() { --d; }
    } scope{++depth_};
    if (depth_ > limits_.max_call_depth) {
        fail(TemplateError::Kind::kLimit,
             "calls nested deeper than " + std::to_string(limits_.max_call_depth) + " levels");
    }
    return callee.as_function()(args);
}

Value Evaluator::call_filter(const std::string& name, const Value& input, const CallArgs& args) {
    return apply_filter(*this, name, input, args);
}

bool Evaluator::call_test(const std::string& name, const Value& input, const CallArgs& args) {
    return apply_test(*this, name, input, args);
}

Value Evaluator::eval(const Expr& e, const FramePtr& frame) {
    try {
        return eval_inner(e, frame);
    } catch (const LocatedError&) {
        throw;
    } catch (const TemplateError& err) {
        throw LocatedError(err, e.at);
    }
}

CallArgs Evaluator::eval_args(const Arguments& args, const FramePtr& frame) {
    CallArgs out;
    for (const auto& p : args.positional) out.positional.push_back(eval(*p, frame));
    for (const auto& [k, v] : args.keyword) out.keyword.emplace_back(k, eval(*v, frame));
    if (args.star_args) {
        for (auto& v : iterate(eval(*args.star_args, frame)))
            out.positional.push_back(std::move(v));
    }
    if (args.star_kwargs) {
        const Value kw = eval(*args.star_kwargs, frame);
        if (!kw.is_dict()) fail(TemplateError::Kind::kType, "argument after ** must be a mapping");
        for (const auto& [k, v] : kw.as_dict().items) out.keyword.emplace_back(k, v);
    }
    return out;
}

Value Evaluator::eval_filter(const Expr& e, const FramePtr& frame, const Value* input) {
    // A chain f | g is nested with the innermost filter first; a null base takes `input`.
    // In {% filter %} and {% set x | f %} the whole chain is rooted at `input` (a null base).
    const Value base =
        !e.a ? *input : (input ? eval_filter(*e.a, frame, input) : eval(*e.a, frame));
    const CallArgs args = eval_args(e.args, frame);
    try {
        return call_filter(e.name, base, args);
    } catch (const LocatedError&) {
        throw;
    } catch (const TemplateError& err) {
        throw LocatedError(err, e.at);
    }
}

Value Evaluator::eval_slice(const Expr& e, const FramePtr& frame) {
    const Value obj = eval(*e.a, frame);
    if (obj.is_undefined()) undefined_error(obj);
    Value parts[3] = {Value::none(), Value::none(), Value::none()};
    for (int i = 0; i < 3; ++i) {
        if (!e.items[static_cast<size_t>(i)]) continue;
        parts[i] = eval(*e.items[static_cast<size_t>(i)], frame);
        if (parts[i].is_none()) continue;
        if (!parts[i].is_int() && !parts[i].is_bool())
            return Value::undefined("slice indices must be integers");
    }
    if (obj.is_string()) {
        const auto cps = unicode::code_points(obj.as_string());
        std::string out;
        for (size_t i :
             slice_indices(static_cast<int64_t>(cps.size()), parts[0], parts[1], parts[2])) {
            unicode::append_utf8(out, cps[i]);
        }
        return Value(std::move(out));
    }
    if (obj.is_list() && (obj.is_plain_sequence() || obj.seq_kind() == SeqKind::kRange)) {
        const auto& items = obj.as_list();
        ValueList out;
        for (size_t i :
             slice_indices(static_cast<int64_t>(items.size()), parts[0], parts[1], parts[2])) {
            out.push_back(items[i]);
        }
        return Value::list(std::move(out), obj.seq_kind());
    }
    return Value::undefined("'" + obj.type_name() + "' object is not subscriptable");
}

Value Evaluator::eval_compare(const Expr& e, const FramePtr& frame) {
    Value left = eval(*e.a, frame);
    for (const auto& [op, expr] : e.ops) {
        Value right = eval(*expr, frame);
        bool ok = false;
        if (op == "==") {
            ok = values_equal(left, right);
        } else if (op == "!=") {
            ok = !values_equal(left, right);
        } else if (op == "in" || op == "notin") {
            if (right.is_security_undefined()) undefined_error(right);
            ok = contains(right, left) == (op == "in");
        } else {
            if (left.is_undefined()) undefined_error(left);
            if (right.is_undefined()) undefined_error(right);
            const int c = compare_values(left, right);
            ok = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!ok) return Value(false);
        left = std::move(right);
    }
    return Value(true);
}

Value Evaluator::eval_binary(const Expr& e, const FramePtr& frame) {
    if (e.name == "and") {
        Value a = eval(*e.a, frame);
        return a.truthy() ? eval(*e.b, frame) : a;
    }
    if (e.name == "or") {
        Value a = eval(*e.a, frame);
        return a.truthy() ? a : eval(*e.b, frame);
    }
    const Value a = eval(*e.a, frame);
    const Value b = eval(*e.b, frame);
    if (e.name == "~") {
        std::string s = python_str(a) + python_str(b);
        if (s.size() > limits_.max_output_bytes)
            fail(TemplateError::Kind::kLimit, "string too long");
        return Value(std::move(s));
    }
    if (e.name == "*" && (a.is_string() || b.is_string() || a.is_list() || b.is_list())) {
        const Value& n = a.is_number() ? a : b;
        const Value& seq = a.is_number() ? b : a;
        const size_t unit = seq.is_string() ? seq.as_string().size()
                                            : 64 * (seq.is_list() ? seq.as_list().size() : 0);
        if (n.is_number() && !n.is_float() && n.as_int() > 0 &&
            static_cast<double>(unit) * static_cast<double>(n.as_int()) >
                static_cast<double>(limits_.max_output_bytes)) {
            fail(TemplateError::Kind::kLimit, "sequence repetition past the output limit");
        }
    }
    return binary_op(e.name, a, b);
}

Value Evaluator::eval_inner(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
        case Expr::Kind::kLiteral:
            return e.value;
        case Expr::Kind::kName: {
            const Value* v = frame->lookup(e.name);
            return v ? *v : Value::undefined("'" + e.name + "' is undefined");
        }
        case Expr::Kind::kList: {
            ValueList items;
            for (const auto& item : e.items) items.push_back(eval(*item, frame));
            return Value::list(std::move(items), e.is_tuple ? SeqKind::kTuple : SeqKind::kList);
        }
        case Expr::Kind::kDict: {
            ValueDict d;
            for (size_t i = 0; i + 1 < e.items.size(); i += 2) {
                const Value key = eval(*e.items[i], frame);
                if (!key.is_string())
                    fail(TemplateError::Kind::kUnsupported, "dict keys other than strings");
                d.set(key.as_string(), eval(*e.items[i + 1], frame));
            }
            return Value::dict(std::move(d));
        }
        case Expr::Kind::kGetAttr: {
            const Value obj = eval(*e.a, frame);
            if (obj.is_undefined()) undefined_error(obj);
            return get_attribute(obj, e.name);
        }
        case Expr::Kind::kGetItem: {
            const Value obj = eval(*e.a, frame);
            if (obj.is_undefined()) undefined_error(obj);
            return get_item(obj, eval(*e.b, frame));
        }
        case Expr::Kind::kSlice:
            return eval_slice(e, frame);
        case Expr::Kind::kCall: {
            const Value callee = eval(*e.a, frame);
            return call(callee, eval_args(e.args, frame));
        }
        case Expr::Kind::kFilter:
            return eval_filter(e, frame, nullptr);
        case Expr::Kind::kTest: {
            const bool r = call_test(e.name, eval(*e.a, frame), eval_args(e.args, frame));
            return Value(r != e.negated);
        }
        case Expr::Kind::kUnary: {
            const Value a = eval(*e.a, frame);
            if (e.name == "not") return Value(!a.truthy());
            if (a.is_undefined()) undefined_error(a);
            if (!a.is_number()) {
                fail(TemplateError::Kind::kType,
                     "bad operand type for unary " + e.name + ": '" + a.type_name() + "'");
            }
            if (e.name == "+") return a.is_bool() ? Value(a.as_int()) : a;
            if (a.is_float()) return Value(-a.as_double());
            if (a.as_int() == INT64_MIN)
                fail(TemplateError::Kind::kUnsupported, "integer overflow");
            return Value(-a.as_int());
        }
        case Expr::Kind::kBinary:
            return eval_binary(e, frame);
        case Expr::Kind::kCompare:
            return eval_compare(e, frame);
        case Expr::Kind::kCondition: {
            if (eval(*e.a, frame).truthy()) return eval(*e.b, frame);
            if (e.c) return eval(*e.c, frame);
            return Value::undefined("the inline if-expression on line " +
                                    std::to_string(e.at.line) +
                                    " evaluated to false and no else section was defined.");
        }
    }
    return Value();
}

}  // namespace qlora::jinja
