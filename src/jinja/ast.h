// The syntax tree the parser builds and the evaluator walks. Every node keeps the line and column
// of the token it starts at, so run-time errors can say where they happened.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace qlora::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Location {
    int line = 0;
    int column = 0;
};

struct Arguments {
    std::vector<ExprPtr> positional;
    std::vector<std::pair<std::string, ExprPtr>> keyword;
    ExprPtr star_args;    // *args
    ExprPtr star_kwargs;  // **kwargs
};

struct Expr {
    enum class Kind {
        kLiteral,    // value
        kName,       // name
        kList,       // items (tuple: is_tuple)
        kDict,       // items as key/value pairs
        kGetAttr,    // a.name
        kGetItem,    // a[b]
        kSlice,      // a[b:c:d], missing parts null
        kCall,       // a(args)
        kFilter,     // a | name(args); a is null inside {% filter %}
        kTest,       // a is [not] name(args)
        kUnary,      // op a: "not", "-", "+"
        kBinary,     // a op b: arithmetic, "~", "and", "or"
        kCompare,    // a op b op c ...: "==", "!=", "<", "<=", ">", ">=", "in", "notin"
        kCondition,  // b if a else c (c may be null)
    };
    Kind kind;
    Location at;
    Value value;
    std::string name;  // variable, attribute, filter, test or operator
    ExprPtr a, b, c;
    std::vector<ExprPtr> items;
    std::vector<std::pair<std::string, ExprPtr>> ops;  // kCompare: the operators after a
    Arguments args;
    bool is_tuple = false;
    bool negated = false;  // kTest: "is not"
};

// An assignment target: a name, ns.attr, or a tuple of names.
struct Target {
    std::vector<std::string> names;  // one name, or several for tuple unpacking
    std::string attribute;           // non-empty: names[0].attribute (namespace assignment)
    bool is_tuple = false;
};

struct MacroParam {
    std::string name;
    ExprPtr default_value;  // null: required
};

struct Stmt {
    enum class Kind {
        kText,         // text
        kOutput,       // {{ expr }}
        kIf,           // branches (cond, body), else_body
        kFor,          // target in expr [if cond] body else_body
        kSet,          // target = expr
        kSetBlock,     // {% set target %}body{% endset %}, optional filter chain in expr
        kMacro,        // name(params) body
        kFilterBlock,  // {% filter f %}body{% endfilter %}: expr is the filter chain on null
        kWith,         // {% with a = x, ... %}body
        kBreak,
        kContinue,
        kGeneration,  // {% generation %}body{% endgeneration %}
    };
    Kind kind;
    Location at;
    std::string text;
    ExprPtr expr;
    ExprPtr condition;  // kFor: the loop filter
    Target target;
    std::vector<std::pair<ExprPtr, Body>> branches;
    Body body;
    Body else_body;
    std::vector<MacroParam> params;
    std::vector<std::pair<Target, ExprPtr>> assignments;  // kWith
    bool uses_varargs = false;                            // kMacro
    bool uses_kwargs = false;
};

}  // namespace qlora::jinja
