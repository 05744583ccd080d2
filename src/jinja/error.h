// Errors raised while lexing, parsing or rendering a template. They carry no location: the
// evaluator and parser add the template name, line and column when they turn one into a
// qlora::Error (see template.cpp), so every message a user sees says where in the template it was.
#pragma once

#include <stdexcept>
#include <string>

namespace qlora::jinja {

class TemplateError : public std::runtime_error {
  public:
    enum class Kind {
        kRaised,       // raise_exception(...) in the template: the template's own message
        kUndefined,    // jinja2's UndefinedError
        kType,         // a Python TypeError/ValueError the template caused
        kSecurity,     // jinja2's SecurityError (the sandbox refused an attribute)
        kUnsupported,  // a construct this engine does not implement: never rendered wrongly
        kLimit,        // output size, recursion depth or range() size past the bounds
        kSyntax,       // jinja2's TemplateSyntaxError
    };
    TemplateError(Kind kind, std::string message)
        : std::runtime_error(std::move(message)), kind_(kind) {}
    Kind kind() const { return kind_; }

  private:
    Kind kind_;
};

[[noreturn]] inline void fail(TemplateError::Kind kind, std::string message) {
    throw TemplateError(kind, std::move(message));
}

}  // namespace qlora::jinja
