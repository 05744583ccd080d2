// qlora::Error and QLORA_CHECK: the message is what the user sees; the location is kept apart.
#include <gtest/gtest.h>

#include "core/error.h"

namespace qlora {
namespace {

TEST(Error, CheckPassesSilently) { EXPECT_NO_THROW(QLORA_CHECK(1 + 1 == 2, "never shown")); }

TEST(Error, CheckThrowsWithExpectedAndFound) {
    int blocksize = 48;
    try {
        QLORA_CHECK(blocksize % 32 == 0,
                    "quant.blocksize must be a power of two in [32, 4096], got ", blocksize,
                    " (configs/x.yaml:3:14)");
        FAIL() << "QLORA_CHECK did not throw";
    } catch (const Error& e) {
        EXPECT_STREQ(
            e.what(),
            "quant.blocksize must be a power of two in [32, 4096], got 48 (configs/x.yaml:3:14)");
        EXPECT_EQ(e.code(), ExitCode::kBadInput);
        EXPECT_NE(e.where().find("test_error.cpp:"), std::string::npos) << e.where();
    }
}

TEST(Error, RuntimeCheckUsesRuntimeExitCode) {
    try {
        QLORA_RUNTIME_CHECK(false, "cannot write ", "out/x.safetensors", ": disk full");
        FAIL() << "QLORA_RUNTIME_CHECK did not throw";
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "cannot write out/x.safetensors: disk full");
        EXPECT_EQ(e.code(), ExitCode::kRuntime);
    }
}

TEST(Error, FailAlwaysThrows) {
    EXPECT_THROW(QLORA_FAIL("unknown format '", "gguf-q2", "'"), Error);
}

TEST(Error, ConditionEvaluatedOnce) {
    int calls = 0;
    auto f = [&] { return ++calls > 0; };
    QLORA_CHECK(f(), "unused");
    EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace qlora
