// Tokens -> syntax tree, following jinja2's grammar (jinja2/parser.py): operator precedence, "is"
// tests and "|" filters binding at the unary level, the tags transformers enables (the built-in
// ones plus loop controls and {% generation %}). Unknown filters and tests fail here, as jinja2
// fails at compile time; tags this engine does not implement fail naming the tag.
#pragma once

#include <vector>

#include "jinja/ast.h"
#include "jinja/lexer.h"

namespace qlora::jinja {

// Throws SyntaxError at the offending token.
Body parse(const std::vector<Token>& tokens);

}  // namespace qlora::jinja
