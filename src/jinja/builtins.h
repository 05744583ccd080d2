// The filters, tests and globals of transformers' jinja2 environment. The parser checks names here
// (an unknown filter or test is a compile error in jinja2 too); the evaluator calls them.
#pragma once

#include <string>

#include "jinja/value.h"

namespace qlora::jinja {

class Evaluator;

bool is_known_filter(const std::string& name);  // every jinja2 built-in filter (and tojson)
bool is_known_test(const std::string& name);    // every jinja2 built-in test

// Filters and tests on already evaluated arguments. A filter jinja2 has but this engine does not
// implement throws TemplateError kUnsupported naming it.
Value apply_filter(Evaluator& ev, const std::string& name, const Value& input,
                   const CallArgs& args);
bool apply_test(Evaluator& ev, const std::string& name, const Value& input, const CallArgs& args);

// Attribute access as jinja2's sandbox does it: Python attributes (str/dict/list methods) first for
// a.b, keys first for a[b]. Returns Undefined for what Python lacks; unsafe methods (list.append,
// dict.update, ...) come back as an Undefined that raises SecurityError when used.
Value get_attribute(const Value& object, const std::string& name);
Value get_item(const Value& object, const Value& key);
// Python's getattr alone (the attr filter): a dict's keys are not attributes.
Value python_attribute(const Value& object, const std::string& name);

}  // namespace qlora::jinja
