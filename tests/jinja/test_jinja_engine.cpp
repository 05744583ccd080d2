// The Jinja engine against jinja2 itself, in transformers' chat-template environment (the venv's
// transformers + jinja2 render every case of tests/data/chat/jinja_cases.json in the test), plus
// what jinja2 cannot be asked: our error locations, bounds on hostile templates, and refusals of
// constructs this engine does not implement.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "jinja/template.h"
#include "support/test_support.h"

namespace qlora::jinja {
namespace {

using ojson = nlohmann::ordered_json;
using Kind = TemplateError::Kind;

ojson read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    return ojson::parse(in);
}

struct Outcome {
    std::optional<std::string> output;
    std::optional<TemplateFailure> failure;
};

Outcome render_case(const std::string& source, const ojson& variables) {
    try {
        return {Template::parse(source, "case.jinja").render(variables), std::nullopt};
    } catch (const TemplateFailure& f) {
        return {std::nullopt, f};
    }
}

// jinja2 prints these with an address or as a view we do not reproduce: we must fail instead
// (unsupported, or the TypeError jinja2 would raise once the generator it printed were used).
bool unreproducible(const std::string& python_output) {
    return python_output.find(" at 0x") != std::string::npos ||
           python_output.find("dict_items(") != std::string::npos;
}

TEST(JinjaEngine, RendersEveryCaseAsJinja2Does) {
    const std::string cases_path = qlora::test::test_data("chat/jinja_cases.json");
    const std::string expected_path = qlora::test::scratch_dir("jinja_cases") + "/expected.json";
    const auto r = qlora::test::run_command(qlora::test::python() + " " + QLORA_SOURCE_DIR +
                                            "/scripts/render_jinja_chat_template_cases.py " +
                                            cases_path + " " + expected_path);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const ojson cases = read_json(cases_path);
    const ojson expected = read_json(expected_path);
    ASSERT_EQ(cases.size(), expected.size());
    ASSERT_GE(cases.size(), 100u);
    size_t identical = 0, same_error = 0, refused = 0;
    for (size_t i = 0; i < cases.size(); ++i) {
        const std::string source = cases[i]["template"].get<std::string>();
        const Outcome ours = render_case(source, cases[i]["variables"]);
        const ojson& want = expected[i];
        SCOPED_TRACE("case " + std::to_string(i) + ": " + source.substr(0, 200));
        if (want.contains("output")) {
            const std::string python_output = want["output"].get<std::string>();
            if (unreproducible(python_output)) {
                ASSERT_TRUE(ours.failure) << "expected a refusal, got " << ours.output.value_or("");
                ++refused;
                continue;
            }
            ASSERT_TRUE(ours.output) << ours.failure->what();
            EXPECT_EQ(*ours.output, python_output);
            identical += *ours.output == python_output;
            continue;
        }
        // jinja2 raised: so must we, with its message where the message is the template's or
        // jinja2's own words (raise_exception, undefined values, the sandbox).
        ASSERT_TRUE(ours.failure) << "jinja2 raised " << want["error"] << ", we rendered "
                                  << *ours.output;
        const std::string type = want["error_type"].get<std::string>();
        if (type == "TemplateError" || type == "UndefinedError" || type == "SecurityError") {
            EXPECT_EQ(ours.failure->detail(), want["error"].get<std::string>());
        }
        ++same_error;
    }
    std::cout << "[jinja] " << cases.size() << " cases: " << identical << " identical output, "
              << same_error << " errors where jinja2 errs, " << refused
              << " refused (jinja2 prints an address/view)\n";
    EXPECT_EQ(identical + same_error + refused, cases.size());
}

TemplateFailure failure_of(const std::string& source, const ojson& variables = ojson::object(),
                           RenderLimits limits = {}) {
    try {
        Template::parse(source, "t.jinja").render(variables, limits);
    } catch (const TemplateFailure& f) {
        return f;
    }
    ADD_FAILURE() << "no error from " << source;
    return TemplateFailure(Kind::kType, "", 0, 0, "");
}

TEST(JinjaEngine, ErrorsNameTheTemplateLineAndColumn) {
    const auto undefined = failure_of("line one\n{{ x.y }}");
    EXPECT_EQ(undefined.kind(), Kind::kUndefined);
    EXPECT_EQ(undefined.line(), 2);
    EXPECT_EQ(undefined.column(), 5);  // the "." of x.y
    EXPECT_EQ(std::string(undefined.what()), "t.jinja:2:5: UndefinedError: 'x' is undefined");

    const auto raised = failure_of(
        "{% for m in messages %}\n{% if m.role == 'system' %}\n  {{ raise_exception('no system') }}"
        "{% endif %}{% endfor %}",
        ojson::parse(R"({"messages": [{"role": "system"}]})"));
    EXPECT_EQ(raised.kind(), Kind::kRaised);
    EXPECT_EQ(raised.detail(), "no system");
    EXPECT_EQ(raised.line(), 3);

    const auto unknown_filter = failure_of("ok\nok {{ 'a' | shout }}");
    EXPECT_EQ(unknown_filter.kind(), Kind::kSyntax);
    EXPECT_EQ(unknown_filter.line(), 2);
    EXPECT_EQ(unknown_filter.column(), 13);
    EXPECT_EQ(unknown_filter.detail(), "No filter named 'shout'.");

    const auto unclosed = failure_of("{% if true %}\n\nno end");
    EXPECT_EQ(unclosed.kind(), Kind::kSyntax);
    EXPECT_EQ(unclosed.line(), 3);
    EXPECT_NE(unclosed.detail().find("'endif'"), std::string::npos);

    const auto type_error = failure_of("{{ 1 }}{{ 'a' + 1 }}");
    EXPECT_EQ(type_error.kind(), Kind::kType);
    EXPECT_EQ(type_error.line(), 1);
    EXPECT_EQ(type_error.column(), 15);  // the "+"
}

TEST(JinjaEngine, RefusesWhatItDoesNotImplementNamingWhere) {
    for (const char* source :
         {"{% include 'x.jinja' %}", "a\n{% call m() %}x{% endcall %}", "{{ 'x'.encode() }}",
          "{{ 'abc' | truncate(2) }}", "{{ cycler(1, 2) }}",
          "{% for x in [1] recursive %}{% endfor %}", "{{ 0x1F }}", "{{ 99999999999999999999 }}",
          "{{ {1: 2} }}", "{{ 'abc'[::, 0] }}"}) {
        const auto f = failure_of(source);
        EXPECT_EQ(f.kind(), Kind::kUnsupported) << source << " -> " << f.what();
        EXPECT_GT(f.line(), 0) << source;
        EXPECT_GT(f.column(), 0) << source;
    }
}

TEST(JinjaEngine, HostileTemplatesEndInErrorsNotCrashes) {
    EXPECT_EQ(failure_of("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}").kind(),
              Kind::kLimit);
    RenderLimits small;
    small.max_output_bytes = 1 << 20;
    EXPECT_EQ(failure_of("{% for i in range(100000) %}{{ 'xxxxxxxxxxxxxxxx' * 100 }}{% endfor %}",
                         ojson::object(), small)
                  .kind(),
              Kind::kLimit);
    EXPECT_EQ(failure_of("{% set s = 'ab' * 1000000000000 %}").kind(), Kind::kLimit);
    EXPECT_EQ(failure_of("{{ range(1000000) | length }}").kind(), Kind::kLimit);
    EXPECT_EQ(
        failure_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}").kind(),
        Kind::kSyntax);
    EXPECT_EQ(failure_of(std::string(3000, '{') + std::string(3000, '}')).kind(), Kind::kSyntax);
    std::string nested_ifs;
    for (int i = 0; i < 1000; ++i) nested_ifs += "{% if true %}";
    EXPECT_EQ(failure_of(nested_ifs).kind(), Kind::kSyntax);
    EXPECT_EQ(failure_of("{{ 9223372036854775807 + 1 }}").kind(), Kind::kUnsupported);
    EXPECT_EQ(failure_of("{{ 2 ** 64 }}").kind(), Kind::kUnsupported);
    const ojson deep = ojson::parse(std::string(1000, '[') + std::string(1000, ']'));
    EXPECT_EQ(failure_of("{{ x }}", ojson{{"x", deep}}).kind(), Kind::kLimit);
}

TEST(JinjaEngine, UndefinedBehavesAsJinja2DefaultUndefined) {
    const ojson vars = ojson::parse(R"({"d": {"a": 1}})");
    auto render = [&](const std::string& s) { return Template::parse(s, "u.jinja").render(vars); };
    EXPECT_EQ(
        render("[{{ missing }}][{{ d.nope }}][{{ missing | length }}][{{ missing is defined }}]"),
        "[][][0][False]");
    EXPECT_EQ(render("{% for x in missing %}never{% endfor %}{% if not missing %}falsy{% endif %}"),
              "falsy");
    EXPECT_EQ(failure_of("{{ missing.attr }}", vars).kind(), Kind::kUndefined);
    EXPECT_EQ(failure_of("{{ missing() }}", vars).kind(), Kind::kUndefined);
    EXPECT_EQ(failure_of("{{ d.nope + 1 }}", vars).detail(),
              "'dict object' has no attribute 'nope'");
}

}  // namespace
}  // namespace qlora::jinja
