// Walks the syntax tree and renders it: jinja2's runtime semantics for scoping (a for loop body
// and a macro body are scopes, if blocks are not), loop.*, macros as closures over the scope they
// were defined in, namespace() assignment, break/continue, and bounds on output size and call
// depth so a hostile template ends in an error instead of exhausting the machine.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "jinja/ast.h"
#include "jinja/error.h"
#include "jinja/value.h"

namespace qlora::jinja {

struct Frame {
    std::unordered_map<std::string, Value> vars;
    std::shared_ptr<Frame> parent;
    const Value* lookup(const std::string& name) const;
};
using FramePtr = std::shared_ptr<Frame>;

struct RenderLimits {
    size_t max_output_bytes = size_t{64}
                              << 20;  // all text produced, macros and set blocks included
    int max_call_depth = 200;         // macro calls and nested renders
};

// A render error with the place in the template it happened.
class LocatedError : public TemplateError {
  public:
    LocatedError(const TemplateError& e, Location at)
        : TemplateError(e.kind(), e.what()), at_(at) {}
    Location at() const { return at_; }

  private:
    Location at_;
};

class Evaluator {
  public:
    explicit Evaluator(RenderLimits limits) : limits_(limits) {}

    std::string render(const Body& body, const ValueDict& variables);

    Value eval(const Expr& e, const FramePtr& frame);
    // Calls a callable value (macro, global, bound method) with evaluated arguments.
    Value call(const Value& callee, const CallArgs& args);
    // filter(value, *args) by name, for map() and the like.
    Value call_filter(const std::string& name, const Value& input, const CallArgs& args);
    bool call_test(const std::string& name, const Value& input, const CallArgs& args);

  private:
    enum class Flow { kNormal, kBreak, kContinue };

    Flow exec_body(const Body& body, const FramePtr& frame, std::string& out);
    Flow exec(const Stmt& s, const FramePtr& frame, std::string& out);
    Flow exec_if(const Stmt& s, const FramePtr& frame, std::string& out);
    Flow exec_for(const Stmt& s, const FramePtr& frame, std::string& out);
    void exec_set(const Stmt& s, const FramePtr& frame, std::string& out);
    void define_macro(const Stmt& s, const FramePtr& frame);
    Value invoke_macro(const Stmt& s, const FramePtr& closure, const CallArgs& args);
    void assign(const Target& target, const Value& value, const FramePtr& frame);
    void append(std::string& out, const std::string& text);

    Value eval_inner(const Expr& e, const FramePtr& frame);
    Value eval_binary(const Expr& e, const FramePtr& frame);
    Value eval_compare(const Expr& e, const FramePtr& frame);
    Value eval_slice(const Expr& e, const FramePtr& frame);
    Value eval_filter(const Expr& e, const FramePtr& frame, const Value* input);
    CallArgs eval_args(const Arguments& args, const FramePtr& frame);
    Value make_loop(const ValueList& items, size_t index, const Value& cycle, const Value& changed);

    RenderLimits limits_;
    size_t produced_bytes_ = 0;
    int depth_ = 0;
};

// Python's binary operators on values (+ - * / // % ** ~), with Python's errors.
Value binary_op(const std::string& op, const Value& a, const Value& b);
// Iteration as jinja2's for loop sees it: lists, dict keys, string characters; Undefined is empty.
ValueList iterate(const Value& v);

}  // namespace qlora::jinja
