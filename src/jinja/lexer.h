// Template source -> tokens, as jinja2's lexer does it with transformers' settings: trim_blocks
// (the first newline after a block or comment tag goes), lstrip_blocks (spaces and tabs before a
// block or comment tag on its own line go), "-" and "+" whitespace control on every tag, raw
// blocks, newlines normalized to "\n" and one trailing newline of the source dropped.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace qlora::jinja {

enum class TokenType {
    kData,           // literal template text (already whitespace-controlled)
    kVariableBegin,  // {{
    kVariableEnd,    // }}
    kBlockBegin,     // {%
    kBlockEnd,       // %}
    kName,
    kString,  // text is the decoded value
    kInteger,
    kFloat,
    kOperator,
    kEof,
};

struct Token {
    TokenType type;
    std::string text;
    int line = 1;
    int column = 1;
};

// A lexing or parsing error at a place in the source (template.cpp adds the template name).
struct SourcePosition {
    int line;
    int column;
};

class SyntaxError : public std::runtime_error {
  public:
    SyntaxError(const std::string& message, SourcePosition at)
        : std::runtime_error(message), at_(at) {}
    SourcePosition at() const { return at_; }

  private:
    SourcePosition at_;
};

std::vector<Token> tokenize(const std::string& source);

}  // namespace qlora::jinja
