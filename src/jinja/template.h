// A compiled Jinja template with the environment transformers renders chat templates in:
// trim_blocks + lstrip_blocks, the globals raise_exception, strftime_now, namespace, dict and
// range (sandbox-bounded), transformers' tojson, loop controls and {% generation %}. Lists and
// dicts are immutable as in jinja2's ImmutableSandboxedEnvironment.
//
//   auto t = jinja::Template::parse(source, "Llama-3.1.jinja");
//   std::string text = t.render(variables);  // variables: an ordered JSON object
//
// Every failure is a jinja::TemplateFailure (a qlora::Error) whose message names the template,
// line and column: "Llama-3.1.jinja:12:9: TemplateError: <the template's own message>".
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "jinja/error.h"
#include "jinja/evaluator.h"
#include "jinja/value.h"

namespace qlora::jinja {

class TemplateFailure : public qlora::Error {
  public:
    TemplateFailure(TemplateError::Kind kind, std::string name, int line, int column,
                    std::string detail);
    TemplateError::Kind kind() const { return kind_; }
    int line() const { return line_; }
    int column() const { return column_; }
    // The bare message, e.g. what raise_exception was given.
    const std::string& detail() const { return detail_; }

  private:
    TemplateError::Kind kind_;
    int line_;
    int column_;
    std::string detail_;
};

class Template {
  public:
    // Throws TemplateFailure (kSyntax or kUnsupported) for a template jinja2 would not compile or
    // that uses a tag this engine does not implement.
    static Template parse(const std::string& source, std::string name);

    std::string render(const ValueDict& variables, RenderLimits limits = {}) const;
    std::string render(const nlohmann::ordered_json& variables, RenderLimits limits = {}) const;
    const std::string& name() const { return name_; }

  private:
    std::string name_;
    std::shared_ptr<const Body> body_;
};

// The globals transformers adds to jinja2's (range, dict, namespace, raise_exception,
// strftime_now); user variables of the same name take precedence, as in jinja2.
ValueDict environment_globals();

}  // namespace qlora::jinja
