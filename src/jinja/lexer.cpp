// jinja2's lexer rules (jinja2/lexer.py, root / block / variable / comment / raw states), written
// as a scanner. The tricky parts, kept as jinja2 has them:
// - "{%-" strips all whitespace before the tag; otherwise lstrip_blocks strips spaces/tabs between
//   the last newline (or the start of a line) and a block or comment tag, never a {{ tag;
// - "-%}" strips all whitespace after, "%}" eats one following newline (trim_blocks), "+%}" none;
// - inside {{ }} or {% %}, "}}" and "%}" only end the tag when brackets are balanced.
#include "jinja/lexer.h"

#include <algorithm>
#include <cstring>

#include "jinja/unicode.h"

namespace qlora::jinja {
namespace {

bool is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}
bool is_name_start(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool is_name_char(unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; }

// \r\n and \r become \n; one trailing newline is dropped (keep_trailing_newline=False).
std::string normalize_source(const std::string& source) {
    std::string out;
    out.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            out += source[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

// The Python "unicode-escape" decoding jinja2 applies to string literals.
std::string decode_string_literal(const std::string& raw, SourcePosition at) {
    std::string out;
    for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '\\' || i + 1 >= raw.size()) {
            out += raw[i];
            continue;
        }
        const char c = raw[++i];
        switch (c) {
            case '\n':
                break;  // line continuation
            case '\\':
                out += '\\';
                break;
            case '\'':
                out += '\'';
                break;
            case '"':
                out += '"';
                break;
            case 'a':
                out += '\a';
                break;
            case 'b':
                out += '\b';
                break;
            case 'f':
                out += '\f';
                break;
            case 'n':
                out += '\n';
                break;
            case 'r':
                out += '\r';
                break;
            case 't':
                out += '\t';
                break;
            case 'v':
                out += '\v';
                break;
            case 'x':
            case 'u':
            case 'U': {
                const size_t digits = c == 'x' ? 2 : (c == 'u' ? 4 : 8);
                const std::string hex = raw.substr(i + 1, digits);
                if (hex.size() != digits ||
                    hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
                    throw SyntaxError("truncated \\" + std::string(1, c) + " escape in a string",
                                      at);
                }
                const auto cp = static_cast<char32_t>(std::stoul(hex, nullptr, 16));
                if (cp > 0x10FFFF) throw SyntaxError("illegal Unicode character in a string", at);
                unicode::append_utf8(out, cp);
                i += digits;
                break;
            }
            case 'N':
                throw SyntaxError("unsupported: \\N{...} escapes in strings", at);
            default:
                if (c >= '0' && c <= '7') {
                    unsigned value = 0;
                    size_t n = 0;
                    while (n < 3 && i < raw.size() && raw[i] >= '0' && raw[i] <= '7') {
                        value = value * 8 + static_cast<unsigned>(raw[i] - '0');
                        ++i, ++n;
                    }
                    --i;
                    unicode::append_utf8(out, value);
                } else {
                    out += '\\';  // unknown escapes stay as written
                    out += c;
                }
        }
    }
    return out;
}

class Lexer {
  public:
    explicit Lexer(const std::string& source) : src_(normalize_source(source)) {
        line_starts_.push_back(0);
        for (size_t i = 0; i < src_.size(); ++i) {
            if (src_[i] == '\n') line_starts_.push_back(i + 1);
        }
    }

    std::vector<Token> run() {
        while (pos_ < src_.size()) lex_root();
        push(TokenType::kEof, "", src_.size());
        return std::move(tokens_);
    }

  private:
    SourcePosition position(size_t offset) const {
        const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset);
        const auto line = static_cast<size_t>(it - line_starts_.begin());
        return {static_cast<int>(line), static_cast<int>(offset - line_starts_[line - 1] + 1)};
    }

    void push(TokenType type, std::string text, size_t offset) {
        const auto at = position(offset);
        tokens_.push_back(Token{type, std::move(text), at.line, at.column});
    }

    [[noreturn]] void error(const std::string& message, size_t offset) const {
        throw SyntaxError(message, position(offset));
    }

    // Whether "{%[-+]? raw [-]?%}" starts at p; sets its end.
    bool raw_begin_at(size_t p, size_t& end) const {
        size_t q = p + 2;
        if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
        while (q < src_.size() && is_space(src_[q])) ++q;
        if (src_.compare(q, 3, "raw") != 0) return false;
        q += 3;
        while (q < src_.size() && is_space(src_[q])) ++q;
        if (src_.compare(q, 3, "-%}") == 0) {
            q += 3;
            while (q < src_.size() && is_space(src_[q])) ++q;
        } else if (src_.compare(q, 2, "%}") == 0) {
            q += 2;
        } else {
            return false;
        }
        end = q;
        return true;
    }

    // The data before a tag after the tag's whitespace control.
    std::string controlled_text(size_t begin, size_t end, char sign, bool is_variable) const {
        std::string text = src_.substr(begin, end - begin);
        if (sign == '-') {
            size_t n = text.size();
            while (n > 0 && is_space(text[n - 1])) --n;
            text.resize(n);
        } else if (sign != '+' && !is_variable) {
            const size_t nl = text.rfind('\n');
            const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
            if (l_pos > 0 || line_starting_) {
                const bool only_ws =
                    l_pos < text.size() &&
                    std::all_of(text.begin() + static_cast<long>(l_pos), text.end(),
                                [](char c) { return c != '\n' && is_space(c); });
                if (only_ws) text.resize(l_pos);
            }
        }
        return text;
    }

    void lex_root() {
        size_t p = pos_;
        while (true) {
            p = src_.find('{', p);
            if (p == std::string::npos || p + 1 >= src_.size()) {
                push(TokenType::kData, src_.substr(pos_), pos_);
                pos_ = src_.size();
                return;
            }
            const char k = src_[p + 1];
            if (k == '{' || k == '%' || k == '#') break;
            ++p;
        }
        const char kind = src_[p + 1];
        const char sign =
            (p + 2 < src_.size() && (src_[p + 2] == '-' || src_[p + 2] == '+')) ? src_[p + 2] : 0;
        std::string text = controlled_text(pos_, p, sign, kind == '{');
        if (!text.empty()) push(TokenType::kData, std::move(text), pos_);
        size_t raw_end = 0;
        if (kind == '%' && raw_begin_at(p, raw_end)) {
            line_starting_ = src_[raw_end - 1] == '\n';
            pos_ = raw_end;
            lex_raw();
            return;
        }
        const size_t after = p + 2 + (sign ? 1 : 0);
        line_starting_ = false;
        if (kind == '#') {
            lex_comment(after);
        } else {
            push(kind == '{' ? TokenType::kVariableBegin : TokenType::kBlockBegin, "", p);
            pos_ = after;
            lex_tag(kind == '{');
        }
    }

    // Length of a block end ("+%}", "-%}\s*", "%}\n?") at p, 0 if none.
    size_t block_end_at(size_t p) const {
        if (src_.compare(p, 3, "+%}") == 0) return 3;
        if (src_.compare(p, 3, "-%}") == 0) {
            size_t q = p + 3;
            while (q < src_.size() && is_space(src_[q])) ++q;
            return q - p;
        }
        if (src_.compare(p, 2, "%}") == 0)
            return (p + 2 < src_.size() && src_[p + 2] == '\n') ? 3 : 2;
        return 0;
    }

    void lex_comment(size_t from) {
        for (size_t p = from; p + 1 < src_.size(); ++p) {
            size_t len = 0;
            if (src_[p] == '+' && src_.compare(p + 1, 2, "#}") == 0) {
                len = 3;
            } else if (src_[p] == '-' && src_.compare(p + 1, 2, "#}") == 0) {
                len = 3;
                while (p + len < src_.size() && is_space(src_[p + len])) ++len;
            } else if (src_.compare(p, 2, "#}") == 0) {
                len = (p + 2 < src_.size() && src_[p + 2] == '\n') ? 3 : 2;
            }
            if (len) {
                pos_ = p + len;
                line_starting_ = src_[pos_ - 1] == '\n';
                return;
            }
        }
        error("Missing end of comment tag", from);
    }

    void lex_raw() {
        for (size_t p = src_.find("{%", pos_); p != std::string::npos; p = src_.find("{%", p + 1)) {
            size_t q = p + 2;
            const char sign = (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ? src_[q] : 0;
            if (sign) ++q;
            while (q < src_.size() && is_space(src_[q])) ++q;
            if (src_.compare(q, 6, "endraw") != 0) continue;
            q += 6;
            while (q < src_.size() && is_space(src_[q])) ++q;
            const size_t end_len = block_end_at(q);
            if (!end_len) continue;
            std::string text = controlled_text(pos_, p, sign, false);
            if (!text.empty()) push(TokenType::kData, std::move(text), pos_);
            pos_ = q + end_len;
            line_starting_ = src_[pos_ - 1] == '\n';
            return;
        }
        error("Missing end of raw directive", pos_);
    }

    void lex_tag(bool variable) {
        std::vector<char> balance;
        while (true) {
            while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
            if (pos_ >= src_.size()) {
                error(variable ? "unexpected end of template, expected 'end of print statement'"
                               : "unexpected end of template, expected 'end of statement block'",
                      pos_);
            }
            if (balance.empty() && try_tag_end(variable)) return;
            lex_expression_token(balance);
        }
    }

    bool try_tag_end(bool variable) {
        size_t len = 0;
        if (variable) {
            if (src_.compare(pos_, 3, "-}}") == 0) {
                len = 3;
                while (pos_ + len < src_.size() && is_space(src_[pos_ + len])) ++len;
            } else if (src_.compare(pos_, 2, "}}") == 0) {
                len = 2;
            }
        } else {
            len = block_end_at(pos_);
        }
        if (!len) return false;
        push(variable ? TokenType::kVariableEnd : TokenType::kBlockEnd, "", pos_);
        pos_ += len;
        line_starting_ = src_[pos_ - 1] == '\n';
        return true;
    }

    void lex_expression_token(std::vector<char>& balance) {
        const size_t start = pos_;
        const auto c = static_cast<unsigned char>(src_[pos_]);
        if (std::isdigit(c)) return lex_number();
        if (is_name_start(c)) {
            while (pos_ < src_.size() && is_name_char(static_cast<unsigned char>(src_[pos_])))
                ++pos_;
            return push(TokenType::kName, src_.substr(start, pos_ - start), start);
        }
        if (c == '\'' || c == '"') return lex_string();
        static const char* const kOperators[] = {"**", "//", "==", "!=", ">=", "<=", "+", "-", "/",
                                                 "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                 "==", ">",  "<",  "=",  ".",  ":",  "|", ",", ";"};
        for (const char* op : kOperators) {
            const size_t n = std::strlen(op);
            if (src_.compare(pos_, n, op) != 0) continue;
            update_balance(op[0], balance, start);
            pos_ += n;
            return push(TokenType::kOperator, op, start);
        }
        error(std::string("unexpected char '") + src_[pos_] + "'", start);
    }

    void update_balance(char op, std::vector<char>& balance, size_t at) const {
        if (op == '{') balance.push_back('}');
        if (op == '(') balance.push_back(')');
        if (op == '[') balance.push_back(']');
        if (op == '}' || op == ')' || op == ']') {
            if (balance.empty()) error(std::string("unexpected '") + op + "'", at);
            if (balance.back() != op) {
                error(std::string("unexpected '") + op + "', expected '" + balance.back() + "'",
                      at);
            }
            balance.pop_back();
        }
    }

    size_t digits_from(size_t p) const {  // (\d+_)*\d+
        size_t q = p;
        while (q < src_.size() &&
               (std::isdigit(static_cast<unsigned char>(src_[q])) ||
                (src_[q] == '_' && q + 1 < src_.size() &&
                 std::isdigit(static_cast<unsigned char>(src_[q + 1])) && q > p))) {
            ++q;
        }
        return q;
    }

    void lex_number() {
        const size_t start = pos_;
        size_t q = digits_from(pos_);
        bool is_float = false;
        if (q + 1 < src_.size() && src_[q] == '.' &&
            std::isdigit(static_cast<unsigned char>(src_[q + 1]))) {
            q = digits_from(q + 1);
            is_float = true;
        }
        if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
            size_t e = q + 1;
            if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
            if (e < src_.size() && std::isdigit(static_cast<unsigned char>(src_[e]))) {
                q = digits_from(e);
                is_float = true;
            }
        }
        if (!is_float && src_[start] == '0' && q < src_.size() && src_[q] != '\0' &&
            std::strchr("bBoOxX", src_[q])) {
            error("unsupported: binary, octal and hex integer literals", start);
        }
        std::string text = src_.substr(start, q - start);
        text.erase(std::remove(text.begin(), text.end(), '_'), text.end());
        pos_ = q;
        push(is_float ? TokenType::kFloat : TokenType::kInteger, std::move(text), start);
    }

    void lex_string() {
        const size_t start = pos_;
        const char quote = src_[pos_];
        size_t q = pos_ + 1;
        while (q < src_.size() && src_[q] != quote) q += (src_[q] == '\\') ? 2 : 1;
        if (q >= src_.size()) error("unexpected char '" + std::string(1, quote) + "'", start);
        pos_ = q + 1;
        push(TokenType::kString,
             decode_string_literal(src_.substr(start + 1, q - start - 1), position(start)), start);
    }

    std::string src_;
    std::vector<size_t> line_starts_;
    std::vector<Token> tokens_;
    size_t pos_ = 0;
    bool line_starting_ = true;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) { return Lexer(source).run(); }

}  // namespace qlora::jinja
