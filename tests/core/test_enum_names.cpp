// core/enum_names.h: one table gives parse, name and the list an error offers, aliases included;
// and the library's vocabularies are complete (every enumerator has a name that parses back).
#include <gtest/gtest.h>

#include "core/enum_names.h"
#include "data/records.h"
#include "data/templates.h"
#include "lora/lora_options.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer_factory.h"
#include "quant/fake_quant.h"
#include "quant/quant4_tensor.h"
#include "support/test_support.h"

namespace qlora {
namespace {

enum class Colour { kRed, kGreen };
constexpr auto kColourNames = enum_names<Colour>(
    "paint.colour", {{Colour::kRed, "red"}, {Colour::kGreen, "green"}, {Colour::kGreen, "verde"}});

TEST(EnumNames, ParsesEveryRowAliasesIncluded) {
    EXPECT_EQ(kColourNames.parse("red"), Colour::kRed);
    EXPECT_EQ(kColourNames.parse("green"), Colour::kGreen);
    EXPECT_EQ(kColourNames.parse("verde"), Colour::kGreen);
    EXPECT_FALSE(kColourNames.find("Red").has_value());  // names are case-sensitive, as YAML keys
}

TEST(EnumNames, NameIsTheFirstRowOfAValue) {
    EXPECT_EQ(kColourNames.name(Colour::kGreen), "green");
    EXPECT_EQ(kColourNames.list(), "red, green, verde");
}

TEST(EnumNames, ErrorNamesTheKeyEveryNameAndWhatWasFound) {
    EXPECT_EQ(test::error_of([] { kColourNames.parse("blue"); }),
              "paint.colour must be one of red, green, verde, got 'blue'");
}

// Every enumerator of a vocabulary has a row, and its name parses back to it.
template <typename E, std::size_t N>
void expect_complete(const EnumNames<E, N>& names, std::initializer_list<E> all) {
    for (E v : all) {
        const std::string name = names.name(v);
        EXPECT_NE(name, "?") << names.key << " enumerator " << static_cast<int>(v);
        EXPECT_EQ(names.parse(name), v) << names.key << " " << name;
    }
}

TEST(EnumNames, TheLibraryVocabulariesAreComplete) {
    using namespace quant;
    expect_complete(kQuantTypeNames, {QuantType::kNF4, QuantType::kFP4});
    expect_complete(kFakeQuantWeightNames,
                    {FakeQuantWeight::kInt4, FakeQuantWeight::kNF4, FakeQuantWeight::kInt8});
    expect_complete(data::kFormatNames,
                    {data::Format::kText, data::Format::kAlpaca, data::Format::kChat});
    expect_complete(data::kOnBadRecordNames, {data::OnBadRecord::kFatal, data::OnBadRecord::kSkip});
    expect_complete(data::kTemplateNames,
                    {data::Template::kAuto, data::Template::kModel, data::Template::kAlpaca,
                     data::Template::kLlama2Chat, data::Template::kChatml, data::Template::kPlain});
    expect_complete(lora::kQatModeNames, {lora::QatMode::kLora, lora::QatMode::kMergeAware});
    expect_complete(lora::kQatActivationsNames,
                    {lora::QatActivations::kNone, lora::QatActivations::kInt8});
    expect_complete(optim::kScheduleKindNames,
                    {optim::ScheduleKind::kConstant, optim::ScheduleKind::kLinear,
                     optim::ScheduleKind::kCosine});
    expect_complete(optim::kOptimizerKindNames,
                    {optim::OptimizerKind::kAdamw32bit, optim::OptimizerKind::kPagedAdamw32bit,
                     optim::OptimizerKind::kAdamw8bit, optim::OptimizerKind::kPagedAdamw8bit});
    EXPECT_EQ(optim::parse_optimizer_kind("adamw_torch"), optim::OptimizerKind::kAdamw32bit);
    EXPECT_EQ(optim::optimizer_kind_name(optim::OptimizerKind::kAdamw32bit), "adamw_32bit");
}

}  // namespace
}  // namespace qlora
