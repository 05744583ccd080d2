// Recursive descent over jinja2's grammar. Function names follow jinja2/parser.py so the two can be
// read side by side: parse_tuple > condexpr > or > and > not > compare > math1 (+ -) > concat (~)
// > math2 (* / // %) > pow (**) > unary (- +, then postfix . [] (), then | filters and is tests).
#include "jinja/parser.h"

#include <charconv>
#include <set>

#include "jinja/builtins.h"

namespace qlora::jinja {
namespace {

constexpr int kMaxNesting = 200;  // deeper expressions or blocks are refused, not a stack overflow

class Parser {
  public:
    explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

    Body parse_template() {
        std::string end;
        Body body = parse_statements({}, end);
        return body;
    }

  private:
    // ---- token helpers --------------------------------------------------------------------

    const Token& cur() const { return t_[i_]; }
    const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
    Location here() const { return {cur().line, cur().column}; }
    void advance() {
        if (i_ + 1 < t_.size()) ++i_;
    }
    bool is_op(const char* op) const {
        return cur().type == TokenType::kOperator && cur().text == op;
    }
    bool is_name(const char* n) const { return cur().type == TokenType::kName && cur().text == n; }
    bool skip_op(const char* op) {
        if (!is_op(op)) return false;
        advance();
        return true;
    }
    bool skip_name(const char* n) {
        if (!is_name(n)) return false;
        advance();
        return true;
    }

    std::string describe(const Token& tok) const {
        switch (tok.type) {
            case TokenType::kEof:
                return "end of template";
            case TokenType::kBlockEnd:
                return "end of statement block";
            case TokenType::kVariableEnd:
                return "end of print statement";
            case TokenType::kBlockBegin:
                return "begin of statement block";
            case TokenType::kVariableBegin:
                return "begin of print statement";
            case TokenType::kData:
                return "template data";
            case TokenType::kString:
                return "string";
            default:
                return tok.text;
        }
    }

    [[noreturn]] void fail_here(const std::string& message) const {
        throw SyntaxError(message, {cur().line, cur().column});
    }
    void expect_op(const char* op) {
        if (!skip_op(op))
            fail_here("expected token '" + std::string(op) + "', got '" + describe(cur()) + "'");
    }
    std::string expect_name() {
        if (cur().type != TokenType::kName)
            fail_here("expected token 'name', got '" + describe(cur()) + "'");
        std::string n = cur().text;
        advance();
        return n;
    }
    void expect_block_end() {
        if (cur().type != TokenType::kBlockEnd) {
            fail_here("expected token 'end of statement block', got '" + describe(cur()) + "'");
        }
        advance();
    }

    struct DepthGuard {
        Parser& p;
        explicit DepthGuard(Parser& parser) : p(parser) {
            if (++p.depth_ > kMaxNesting) p.fail_here("template nesting deeper than 200 levels");
        }
        ~DepthGuard() { --p.depth_; }
    };

    ExprPtr node(Expr::Kind kind, Location at) {
        auto e = std::make_unique<Expr>();
        e->kind = kind;
        e->at = at;
        return e;
    }

    // ---- statements -----------------------------------------------------------------------

    // Parses until a block tag named in `ends`; `end` gets that name, the stream stands after it.
    Body parse_statements(const std::set<std::string>& ends, std::string& end,
                          const char* block = nullptr) {
        DepthGuard guard(*this);
        Body body;
        while (true) {
            const Token& tok = cur();
            if (tok.type == TokenType::kEof) {
                if (!ends.empty()) {
                    fail_here(
                        "Unexpected end of template. Jinja was looking for the following tags: " +
                        join_names(ends) + "." +
                        (block ? std::string(" The innermost block that needs to be closed is '") +
                                     block + "'."
                               : std::string()));
                }
                return body;
            }
            if (tok.type == TokenType::kData) {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::kText;
                s->at = here();
                s->text = tok.text;
                body.push_back(std::move(s));
                advance();
            } else if (tok.type == TokenType::kVariableBegin) {
                auto s = std::make_unique<Stmt>();
                s->kind = Stmt::Kind::kOutput;
                advance();
                s->at = here();
                s->expr = parse_tuple(true);
                if (cur().type != TokenType::kVariableEnd) {
                    fail_here("expected token 'end of print statement', got '" + describe(cur()) +
                              "'");
                }
                advance();
                body.push_back(std::move(s));
            } else if (tok.type == TokenType::kBlockBegin) {
                advance();
                if (cur().type == TokenType::kName && ends.count(cur().text)) {
                    end = cur().text;
                    advance();
                    return body;
                }
                body.push_back(parse_statement());
            } else {
                fail_here("unexpected '" + describe(tok) + "'");
            }
        }
    }

    static std::string join_names(const std::set<std::string>& names) {
        std::string out;
        for (const auto& n : names) out += (out.empty() ? "'" : " or '") + n + "'";
        return out;
    }

    StmtPtr parse_statement() {
        if (cur().type != TokenType::kName) fail_here("tag name expected");
        const std::string tag = cur().text;
        auto s = std::make_unique<Stmt>();
        s->at = here();
        advance();
        if (tag == "if") return parse_if(std::move(s));
        if (tag == "for") return parse_for(std::move(s));
        if (tag == "set") return parse_set(std::move(s));
        if (tag == "macro") return parse_macro(std::move(s));
        if (tag == "filter") return parse_filter_block(std::move(s));
        if (tag == "with") return parse_with(std::move(s));
        if (tag == "generation") {
            s->kind = Stmt::Kind::kGeneration;
            expect_block_end();
            std::string end;
            s->body = parse_statements({"endgeneration"}, end, "generation");
            expect_block_end();
            return s;
        }
        if (tag == "break" || tag == "continue") {
            if (loop_depth_ == 0) fail_here("'" + tag + "' outside of a loop");
            s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
            expect_block_end();
            return s;
        }
        static const std::set<std::string> kUnsupported = {
            "call", "include", "import", "from", "extends", "block", "autoescape", "print"};
        if (kUnsupported.count(tag)) {
            throw SyntaxError(
                "unsupported: the {% " + tag + " %} tag is not implemented by this engine",
                {s->at.line, s->at.column});
        }
        throw SyntaxError("Encountered unknown tag '" + tag + "'.", {s->at.line, s->at.column});
    }

    StmtPtr parse_if(StmtPtr s) {
        s->kind = Stmt::Kind::kIf;
        while (true) {
            ExprPtr cond = parse_tuple(false);
            expect_block_end();
            std::string end;
            Body body = parse_statements({"elif", "else", "endif"}, end, "if");
            s->branches.emplace_back(std::move(cond), std::move(body));
            if (end == "elif") continue;
            if (end == "else") {
                expect_block_end();
                s->else_body = parse_statements({"endif"}, end, "if");
            }
            expect_block_end();
            return s;
        }
    }

    Target parse_assign_target(bool with_namespace) {
        Target target;
        const bool parens = skip_op("(");
        target.names.push_back(expect_name());
        if (with_namespace && !parens && is_op(".")) {
            advance();
            target.attribute = expect_name();
            return target;
        }
        while (skip_op(",")) {
            target.is_tuple = true;
            if (cur().type != TokenType::kName) break;  // trailing comma
            target.names.push_back(expect_name());
        }
        if (parens) {
            expect_op(")");
            target.is_tuple = true;
        }
        return target;
    }

    StmtPtr parse_for(StmtPtr s) {
        s->kind = Stmt::Kind::kFor;
        s->target = parse_assign_target(false);
        if (!skip_name("in")) fail_here("expected token 'in', got '" + describe(cur()) + "'");
        s->expr = parse_tuple(false, {"recursive"});
        if (skip_name("if")) s->condition = parse_expression(true);
        if (is_name("recursive")) fail_here("unsupported: recursive for loops are not implemented");
        expect_block_end();
        ++loop_depth_;
        std::string end;
        s->body = parse_statements({"endfor", "else"}, end, "for");
        --loop_depth_;
        if (end == "else") {
            expect_block_end();
            s->else_body = parse_statements({"endfor"}, end, "for");
        }
        expect_block_end();
        return s;
    }

    StmtPtr parse_set(StmtPtr s) {
        s->target = parse_assign_target(true);
        if (skip_op("=")) {
            s->kind = Stmt::Kind::kSet;
            s->expr = parse_tuple(true);
            expect_block_end();
            return s;
        }
        s->kind = Stmt::Kind::kSetBlock;
        if (is_op("|")) s->expr = parse_filter(nullptr);
        expect_block_end();
        std::string end;
        s->body = parse_statements({"endset"}, end, "set");
        expect_block_end();
        return s;
    }

    StmtPtr parse_macro(StmtPtr s) {
        s->kind = Stmt::Kind::kMacro;
        s->text = expect_name();
        expect_op("(");
        while (!is_op(")")) {
            if (!s->params.empty()) expect_op(",");
            if (is_op(")")) break;
            MacroParam p;
            p.name = expect_name();
            if (skip_op("=")) p.default_value = parse_expression(true);
            s->params.push_back(std::move(p));
        }
        advance();
        expect_block_end();
        const auto saved = std::make_pair(macro_varargs_, macro_kwargs_);
        macro_varargs_ = macro_kwargs_ = false;
        const int saved_loops = loop_depth_;
        loop_depth_ = 0;
        std::string end;
        s->body = parse_statements({"endmacro"}, end, "macro");
        loop_depth_ = saved_loops;
        s->uses_varargs = macro_varargs_;
        s->uses_kwargs = macro_kwargs_;
        std::tie(macro_varargs_, macro_kwargs_) = saved;
        expect_block_end();
        return s;
    }

    StmtPtr parse_filter_block(StmtPtr s) {
        s->kind = Stmt::Kind::kFilterBlock;
        s->expr = parse_filter(nullptr, false);
        expect_block_end();
        std::string end;
        s->body = parse_statements({"endfilter"}, end, "filter");
        expect_block_end();
        return s;
    }

    StmtPtr parse_with(StmtPtr s) {
        s->kind = Stmt::Kind::kWith;
        while (cur().type != TokenType::kBlockEnd) {
            if (!s->assignments.empty()) expect_op(",");
            Target target = parse_assign_target(false);
            expect_op("=");
            s->assignments.emplace_back(std::move(target), parse_expression(true));
        }
        expect_block_end();
        std::string end;
        s->body = parse_statements({"endwith"}, end, "with");
        expect_block_end();
        return s;
    }

    // ---- expressions ----------------------------------------------------------------------

    bool at_tuple_end(const std::set<std::string>& extra_end_names) const {
        if (cur().type == TokenType::kVariableEnd || cur().type == TokenType::kBlockEnd ||
            cur().type == TokenType::kEof) {
            return true;
        }
        if (cur().type == TokenType::kOperator &&
            (cur().text == ")" || cur().text == "]" || cur().text == "}")) {
            return true;
        }
        return cur().type == TokenType::kName && extra_end_names.count(cur().text);
    }

    ExprPtr parse_tuple(bool with_condexpr, const std::set<std::string>& extra_end_names = {},
                        bool explicit_parentheses = false) {
        const Location at = here();
        std::vector<ExprPtr> items;
        bool is_tuple = false;
        while (true) {
            if (!items.empty()) expect_op(",");
            if (at_tuple_end(extra_end_names)) break;
            items.push_back(parse_expression(with_condexpr));
            if (is_op(",")) {
                is_tuple = true;
            } else {
                break;
            }
        }
        if (!is_tuple) {
            if (!items.empty()) return std::move(items[0]);
            if (!explicit_parentheses)
                fail_here("Expected an expression, got '" + describe(cur()) + "'");
        }
        auto e = node(Expr::Kind::kList, at);
        e->items = std::move(items);
        e->is_tuple = true;
        return e;
    }

    ExprPtr parse_expression(bool with_condexpr) {
        DepthGuard guard(*this);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        ExprPtr expr1 = parse_or();
        while (is_name("if")) {
            const Location at = here();
            advance();
            auto e = node(Expr::Kind::kCondition, at);
            e->a = parse_or();
            e->b = std::move(expr1);
            if (skip_name("else")) e->c = parse_condexpr();
            expr1 = std::move(e);
        }
        return expr1;
    }

    ExprPtr binary(const std::string& op, ExprPtr lhs, ExprPtr rhs, Location at) {
        auto e = node(Expr::Kind::kBinary, at);
        e->name = op;
        e->a = std::move(lhs);
        e->b = std::move(rhs);
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            const Location at = here();
            advance();
            left = binary("or", std::move(left), parse_and(), at);
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            const Location at = here();
            advance();
            left = binary("and", std::move(left), parse_not(), at);
        }
        return left;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            DepthGuard guard(*this);
            auto e = node(Expr::Kind::kUnary, here());
            advance();
            e->name = "not";
            e->a = parse_not();
            return e;
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        const Location at = here();
        ExprPtr expr = parse_math1();
        std::vector<std::pair<std::string, ExprPtr>> ops;
        while (true) {
            static const std::set<std::string> kCompareOps = {"==", "!=", "<", "<=", ">", ">="};
            if (cur().type == TokenType::kOperator && kCompareOps.count(cur().text)) {
                const std::string op = cur().text;
                advance();
                ops.emplace_back(op, parse_math1());
            } else if (skip_name("in")) {
                ops.emplace_back("in", parse_math1());
            } else if (is_name("not") && peek().type == TokenType::kName && peek().text == "in") {
                advance();
                advance();
                ops.emplace_back("notin", parse_math1());
            } else {
                break;
            }
        }
        if (ops.empty()) return expr;
        auto e = node(Expr::Kind::kCompare, at);
        e->a = std::move(expr);
        e->ops = std::move(ops);
        return e;
    }

    template <typename Next>
    ExprPtr parse_left_assoc(std::initializer_list<const char*> ops, Next next) {
        ExprPtr left = (this->*next)();
        while (true) {
            const char* matched = nullptr;
            for (const char* op : ops) {
                if (is_op(op)) matched = op;
            }
            if (!matched) return left;
            const Location at = here();
            advance();
            left = binary(matched, std::move(left), (this->*next)(), at);
        }
    }

    ExprPtr parse_math1() { return parse_left_assoc({"+", "-"}, &Parser::parse_concat); }
    ExprPtr parse_concat() { return parse_left_assoc({"~"}, &Parser::parse_math2); }
    ExprPtr parse_math2() { return parse_left_assoc({"*", "/", "//", "%"}, &Parser::parse_pow); }
    ExprPtr parse_pow() { return parse_left_assoc({"**"}, &Parser::parse_unary_filtered); }
    ExprPtr parse_unary_filtered() { return parse_unary(true); }

    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(*this);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            e = node(Expr::Kind::kUnary, here());
            e->name = cur().text;
            advance();
            e->a = parse_unary(false);
        } else {
            e = parse_primary();
        }
        e = parse_postfix(std::move(e));
        if (with_filter) e = parse_filter_expr(std::move(e));
        return e;
    }

    ExprPtr literal(Value v, Location at) {
        auto e = node(Expr::Kind::kLiteral, at);
        e->value = std::move(v);
        return e;
    }

    ExprPtr parse_number() {
        const Location at = here();
        const std::string text = cur().text;
        const bool is_float = cur().type == TokenType::kFloat;
        advance();
        if (is_float) return literal(Value(std::stod(text)), at);
        int64_t v = 0;
        const auto res = std::from_chars(text.data(), text.data() + text.size(), v);
        if (res.ec != std::errc()) {
            throw SyntaxError("unsupported: integer literal " + text + " does not fit in 64 bits",
                              {at.line, at.column});
        }
        return literal(Value(v), at);
    }

    ExprPtr parse_primary() {
        const Location at = here();
        const Token& tok = cur();
        if (tok.type == TokenType::kName) {
            const std::string n = tok.text;
            advance();
            if (n == "true" || n == "True") return literal(Value(true), at);
            if (n == "false" || n == "False") return literal(Value(false), at);
            if (n == "none" || n == "None") return literal(Value::none(), at);
            if (n == "varargs") macro_varargs_ = true;
            if (n == "kwargs") macro_kwargs_ = true;
            auto e = node(Expr::Kind::kName, at);
            e->name = n;
            return e;
        }
        if (tok.type == TokenType::kString) {
            std::string s;
            while (cur().type == TokenType::kString) {
                s += cur().text;
                advance();
            }
            return literal(Value(std::move(s)), at);
        }
        if (tok.type == TokenType::kInteger || tok.type == TokenType::kFloat) return parse_number();
        if (skip_op("(")) {
            ExprPtr e = parse_tuple(true, {}, true);
            expect_op(")");
            return e;
        }
        if (skip_op("[")) return parse_list(at);
        if (skip_op("{")) return parse_dict(at);
        fail_here("unexpected '" + describe(tok) + "'");
    }

    ExprPtr parse_list(Location at) {
        auto e = node(Expr::Kind::kList, at);
        while (!is_op("]")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("]")) break;
            e->items.push_back(parse_expression(true));
        }
        advance();
        return e;
    }

    ExprPtr parse_dict(Location at) {
        auto e = node(Expr::Kind::kDict, at);
        while (!is_op("}")) {
            if (!e->items.empty()) expect_op(",");
            if (is_op("}")) break;
            e->items.push_back(parse_expression(true));
            expect_op(":");
            e->items.push_back(parse_expression(true));
        }
        advance();
        return e;
    }

    ExprPtr parse_postfix(ExprPtr e) {
        while (true) {
            if (is_op(".") || is_op("[")) {
                e = parse_subscript(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_filter_expr(ExprPtr e) {
        while (true) {
            if (is_op("|")) {
                e = parse_filter(std::move(e));
            } else if (is_name("is")) {
                e = parse_test(std::move(e));
            } else if (is_op("(")) {
                e = parse_call(std::move(e));
            } else {
                return e;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr base) {
        const Location at = here();
        if (skip_op(".")) {
            if (cur().type == TokenType::kInteger) {
                auto e = node(Expr::Kind::kGetItem, at);
                e->a = std::move(base);
                e->b = parse_number();
                return e;
            }
            auto e = node(Expr::Kind::kGetAttr, at);
            e->a = std::move(base);
            e->name = expect_name();
            return e;
        }
        expect_op("[");
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) {
                expect_op(",");
                if (is_op("]")) break;
            }
            args.push_back(parse_subscribed());
        }
        advance();
        auto e = node(Expr::Kind::kGetItem, at);
        e->a = std::move(base);
        if (args.size() == 1 && args[0]->kind == Expr::Kind::kSlice) {
            args[0]->a = std::move(e->a);
            return std::move(args[0]);
        }
        if (args.size() == 1) {
            e->b = std::move(args[0]);
        } else {
            // x[a:b, c]: Python indexes with a tuple holding a slice object, which no value here
            // accepts (lists and strings refuse tuples); refused while parsing, never evaluated.
            for (const ExprPtr& arg : args) {
                if (arg->kind == Expr::Kind::kSlice)
                    throw SyntaxError("unsupported: a slice inside a tuple subscript (x[a:b, c])",
                                      {at.line, at.column});
            }
            auto t = node(Expr::Kind::kList, at);
            t->items = std::move(args);
            t->is_tuple = true;
            e->b = std::move(t);
        }
        return e;
    }

    // One subscript: an expression or a slice (start:stop:step, each optional).
    ExprPtr parse_subscribed() {
        const Location at = here();
        ExprPtr start;
        if (!is_op(":")) {
            start = parse_expression(true);
            if (!is_op(":")) return start;
        }
        advance();
        auto s = node(Expr::Kind::kSlice, at);
        s->items.resize(3);
        s->items[0] = std::move(start);
        if (!is_op("]") && !is_op(",") && !is_op(":")) s->items[1] = parse_expression(true);
        if (skip_op(":")) {
            if (!is_op("]") && !is_op(",")) s->items[2] = parse_expression(true);
        }
        return s;
    }

    Arguments parse_call_args() {
        expect_op("(");
        Arguments args;
        bool first = true;
        while (!is_op(")")) {
            if (!first) {
                expect_op(",");
                if (is_op(")")) break;
            }
            first = false;
            if (skip_op("**")) {
                args.star_kwargs = parse_expression(true);
            } else if (skip_op("*")) {
                args.star_args = parse_expression(true);
            } else if (cur().type == TokenType::kName && peek().type == TokenType::kOperator &&
                       peek().text == "=") {
                std::string key = cur().text;
                advance();
                advance();
                args.keyword.emplace_back(std::move(key), parse_expression(true));
            } else {
                if (!args.keyword.empty() || args.star_kwargs) {
                    fail_here(
                        "Invalid argument syntax: positional argument after keyword argument");
                }
                args.positional.push_back(parse_expression(true));
            }
        }
        advance();
        return args;
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto e = node(Expr::Kind::kCall, here());
        e->a = std::move(callee);
        e->args = parse_call_args();
        return e;
    }

    std::string dotted_name() {
        std::string n = expect_name();
        while (is_op(".")) {
            advance();
            n += "." + expect_name();
        }
        return n;
    }

    // | name(args) | name ... ; base is null inside {% filter %} and {% set x | f %}.
    ExprPtr parse_filter(ExprPtr base, bool leading_pipe = true) {
        bool first = true;
        while (first ? (!leading_pipe || is_op("|")) : is_op("|")) {
            if (leading_pipe || !first) expect_op("|");
            first = false;
            auto e = node(Expr::Kind::kFilter, here());
            e->name = dotted_name();
            if (!is_known_filter(e->name)) {
                throw SyntaxError("No filter named '" + e->name + "'.", {e->at.line, e->at.column});
            }
            if (is_op("(")) e->args = parse_call_args();
            e->a = std::move(base);
            base = std::move(e);
        }
        return base;
    }

    ExprPtr parse_test(ExprPtr base) {
        auto e = node(Expr::Kind::kTest, here());
        advance();  // "is"
        e->negated = skip_name("not");
        e->name = dotted_name();
        if (!is_known_test(e->name)) {
            throw SyntaxError("No test named '" + e->name + "'.", {e->at.line, e->at.column});
        }
        e->a = std::move(base);
        const auto type = cur().type;
        if (is_op("(")) {
            e->args = parse_call_args();
        } else if ((type == TokenType::kName || type == TokenType::kString ||
                    type == TokenType::kInteger || type == TokenType::kFloat || is_op("(") ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail_here("You cannot chain multiple tests with is");
            e->args.positional.push_back(parse_postfix(parse_primary()));
        }
        return e;
    }

    const std::vector<Token>& t_;
    size_t i_ = 0;
    int depth_ = 0;
    int loop_depth_ = 0;
    bool macro_varargs_ = false;
    bool macro_kwargs_ = false;
};

}  // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

}  // namespace qlora::jinja
