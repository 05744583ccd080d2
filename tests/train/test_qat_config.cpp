// The qat section: defaults, every bad value and every senseless combination as its own one-line
// error with file:line:column, the key, what was expected and what was found.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "config_test_util.h"
#include "core/error.h"
#include "train/config.h"
#include "train/qat_options.h"

namespace qlora::train {
namespace {

using test::kMinimal;
using test::write_text;

std::string scratch_dir(const std::string& name) { return qlora::test::scratch_dir(name); }
std::string error_of(const std::function<void()>& f) { return qlora::test::error_of(f); }

// kMinimal (4 lines) + `body`, which starts on line 5; the error without its leading path.
std::string load_error(const std::string& name, const std::string& body) {
    const std::string dir = scratch_dir("qat_config");
    const std::string path = write_text(dir, name + ".yaml", std::string(kMinimal) + body);
    const std::string msg = error_of([&] { load_config(path); });
    return msg.rfind(path, 0) == 0 ? msg.substr(path.size())
                                   : msg;  // ":LINE:COL: ..." for short asserts
}

// The config of kMinimal + `body`, loaded (it must be valid).
TrainConfig load_valid(const std::string& name, const std::string& body) {
    return load_config(
        write_text(scratch_dir("qat_config_ok"), name + ".yaml", std::string(kMinimal) + body));
}

TEST(QatConfig, DefaultsAndAValidNf4Setup) {
    const TrainConfig d = load_valid("defaults", "");
    EXPECT_FALSE(d.qat.enabled);
    EXPECT_EQ(d.qat.weight, quant::FakeQuantWeight::kNF4);
    EXPECT_EQ(d.qat.group_size, 32);
    EXPECT_EQ(d.qat.activations, lora::QatActivations::kNone);
    EXPECT_EQ(d.qat.mode, lora::QatMode::kMergeAware);
    EXPECT_EQ(d.qat.start_step, 0);

    const TrainConfig c = load_valid(
        "nf4",
        "lora: {dropout: 0.0}\nquant: {blocksize: 128}\nqat: {enabled: true, start_step: 5}\n");
    const lora::QatOptions o = qat_options(c);
    EXPECT_EQ(o.scheme.weight, quant::FakeQuantWeight::kNF4);
    EXPECT_EQ(o.scheme.nf4.blocksize, 128);  // nf4 QAT quantizes like the 4-bit base/export
    EXPECT_TRUE(o.scheme.nf4.double_quant);
    EXPECT_EQ(o.mode, lora::QatMode::kMergeAware);
    EXPECT_FALSE(o.activations_int8);
    EXPECT_EQ(describe_qat(c),
              "nf4 blocksize 128 double quant, activations none, merge_aware, from step 6");
}

TEST(QatConfig, Int4OverA16BitBase) {
    const lora::QatOptions o =
        qat_options(load_valid("int4",
                               "quant: {enabled: false}\nqat: {enabled: true, weight: int4, "
                               "group_size: 64, activations: int8, "
                               "mode: lora}\n"));
    EXPECT_EQ(o.scheme.weight, quant::FakeQuantWeight::kInt4);
    EXPECT_EQ(o.scheme.group_size, 64);
    EXPECT_TRUE(o.activations_int8);
    EXPECT_EQ(o.mode, lora::QatMode::kLora);
}

// {file name, YAML after kMinimal, the error after the file's path}
struct BadCase {
    const char* name;
    const char* body;
    const char* error;
};

void expect_errors(const std::vector<BadCase>& cases) {
    for (const BadCase& c : cases) EXPECT_EQ(load_error(c.name, c.body), c.error) << c.name;
}

TEST(QatConfig, BadValuesOneLineEach) {
    expect_errors({
        {"weight", "qat:\n  weight: int3\n",
         ":6:11: qat.weight: expected one of int4, nf4, int8, found 'int3'"},
        {"group", "qat:\n  group_size: 48\n",
         ":6:15: qat.group_size: expected a power of two in [32, 256], found 48"},
        {"group_big", "qat:\n  group_size: 512\n",
         ":6:15: qat.group_size: expected a power of two in [32, 256], found 512"},
        {"act", "qat:\n  activations: int4\n",
         ":6:16: qat.activations: expected one of none, int8, found 'int4'"},
        {"mode", "qat:\n  mode: merged\n",
         ":6:9: qat.mode: expected one of lora, merge_aware, found 'merged'"},
        {"start", "qat:\n  start_step: -1\n",
         ":6:15: qat.start_step: expected an integer >= 0, found -1"},
        {"type", "qat:\n  enabled: maybe\n",
         ":6:12: qat.enabled: expected true or false, found 'maybe'"},
    });
}

TEST(QatConfig, CombinationsThatMakeNoSense) {
    expect_errors({
        // int4/int8 fake-quantize a 16-bit base; the default base is NF4
        {"int4_nf4base", "lora: {dropout: 0}\nqat:\n  enabled: true\n  weight: int4\n",
         ":8:11: qat.weight: int4 fake-quantizes a 16-bit base; expected quant.enabled: false, "
         "found "
         "quant.enabled: true (an NF4 base takes qat.weight: nf4)"},
        {"int8_nf4base", "lora: {dropout: 0}\nqat: {enabled: true, weight: int8}\n",
         ":6:30: qat.weight: int8 fake-quantizes a 16-bit base; expected quant.enabled: false, "
         "found "
         "quant.enabled: true (an NF4 base takes qat.weight: nf4)"},
        // nf4 QAT over an fp4 base would round twice, in two formats
        {"fp4", "lora: {dropout: 0}\nquant: {type: fp4}\nqat: {enabled: true}\n",
         ": qat.weight: nf4 over a 4-bit base needs quant.type: nf4, found quant.type: fp4 (or set "
         "quant.enabled: false to fake-quantize a 16-bit base)"},
        // lora mode over an NF4 base is QLoRA itself
        {"lora_nf4", "qat: {enabled: true, mode: lora}\n",
         ":5:28: qat.mode: lora over an NF4 base is plain QLoRA (the base is already NF4); "
         "expected "
         "merge_aware, or quant.enabled: false to fake-quantize a 16-bit base, found lora"},
        // merge-aware has no separate adapter input for dropout (the default dropout is 0.05)
        {"dropout", "qat: {enabled: true}\n",
         ": lora.dropout: qat.mode merge_aware trains through the merged weight, where LoRA "
         "dropout has no "
         "input path; expected 0, found 0.05"},
        {"start_late",
         "lora: {dropout: 0}\ntrain: {max_steps: 10}\nqat: {enabled: true, start_step: 10}\n",
         ":7:34: qat.start_step: expected < train.max_steps (10) so that fake quantization "
         "switches on, found 10"},
    });
    // A disabled section is only checked for values.
    const std::string dir = scratch_dir("qat_config_off");
    EXPECT_NO_THROW(load_config(
        write_text(dir, "off.yaml", std::string(kMinimal) + "qat: {weight: int4, mode: lora}\n")));
}

TEST(QatConfig, OverridesAreCheckedTheSameWay) {
    const std::string dir = scratch_dir("qat_config_override");
    const std::string path =
        write_text(dir, "c.yaml", std::string(kMinimal) + "lora: {dropout: 0}\n");
    EXPECT_EQ(error_of([&] {
                  load_config(path, {"qat.enabled=true", "qat.weight=int4"});
              }),
              "override 'qat.weight=int4': qat.weight: int4 fake-quantizes a 16-bit base; expected "
              "quant.enabled: "
              "false, found quant.enabled: true (an NF4 base takes qat.weight: nf4)");
    const TrainConfig c =
        load_config(path, {"qat.enabled=true", "qat.weight=int4", "quant.enabled=false"});
    EXPECT_TRUE(c.qat.enabled);
}

}  // namespace
}  // namespace qlora::train
