// core/json_value.h: integers only from integral JSON numbers that fit the target type (nlohmann's
// get<int64_t>() of 8.9e62 is undefined behaviour, of 2.5 a silent 2), and one message shape.
#include <gtest/gtest.h>

#include "core/json_value.h"
#include "support/test_support.h"

namespace qlora {
namespace {

using nlohmann::json;

TEST(JsonValue, IntegersComeOnlyFromIntegralNumbersInRange) {
    EXPECT_EQ(json_as<int64_t>(json::parse("42")), 42);
    EXPECT_EQ(json_as<int64_t>(json::parse("-9223372036854775808")),
              std::numeric_limits<int64_t>::min());
    EXPECT_EQ(json_as<int64_t>(json::parse("9223372036854775807")),
              std::numeric_limits<int64_t>::max());
    EXPECT_EQ(json_as<int64_t>(json::parse("9223372036854775808")), std::nullopt);  // unsigned
    EXPECT_EQ(json_as<uint64_t>(json::parse("18446744073709551615")),
              std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(json_as<uint64_t>(json::parse("-1")), std::nullopt);
    EXPECT_EQ(json_as<int>(json::parse("2147483648")), std::nullopt);
    EXPECT_EQ(json_as<int>(json::parse("-2147483649")), std::nullopt);
    EXPECT_EQ(json_as<int>(json::parse("-2147483648")), std::numeric_limits<int>::min());
    for (const char* not_int : {"8.9e62", "2.5", "2.0", "1e300", "\"3\"", "true", "null", "[1]"})
        EXPECT_EQ(json_as<int64_t>(json::parse(not_int)), std::nullopt) << not_int;
}

TEST(JsonValue, OtherKindsAndLists) {
    EXPECT_EQ(json_as<double>(json::parse("2")), 2.0);
    EXPECT_EQ(json_as<double>(json::parse("\"2\"")), std::nullopt);
    EXPECT_EQ(json_as<bool>(json::parse("1")), std::nullopt);
    EXPECT_EQ(json_as<bool>(json::parse("false")), false);
    EXPECT_EQ(json_as<std::string>(json::parse("\"x\"")), "x");
    EXPECT_EQ(json_as<std::vector<int64_t>>(json::parse("[1, 2]")), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(json_as<std::vector<int64_t>>(json::parse("[1, 2.5]")), std::nullopt);
    EXPECT_EQ(json_as<std::vector<int64_t>>(json::parse("{}")), std::nullopt);
}

TEST(JsonValue, FieldErrorsNameTheKeyWhatWasExpectedAndWhatWasFound) {
    const json j = json::parse(R"({"step": 8.9e62, "name": null, "long": ")" +
                               std::string(500, 'x') + R"("})");
    EXPECT_EQ(test::error_of([&] { json_field<int64_t>(j, "step", "f.json"); }),
              "f.json: \"step\" must be an integer in [-9223372036854775808, "
              "9223372036854775807], found 8.9e+62");
    EXPECT_EQ(test::error_of([&] { json_field<int64_t>(j, "absent", "f.json"); }),
              "f.json: \"absent\" is missing");
    EXPECT_EQ(test::error_of([&] { json_field<int64_t>(json::parse("[]"), "x", "f.json"); }),
              "f.json: \"x\" is missing");
    EXPECT_LT(test::error_of([&] { json_field<int64_t>(j, "long", "f.json"); }).size(), 150u);
    EXPECT_EQ(json_field_or<std::string>(j, "name", "fallback", "f.json"), "fallback");
    EXPECT_EQ(json_field_or<int64_t>(j, "absent", 7, "f.json"), 7);
}

}  // namespace
}  // namespace qlora
