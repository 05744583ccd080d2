// qlora-bench matmul on a small shape: both kinds of matmul timed, their ratios reported, and the
// 4-bit results equal to the dense GEMM's within the dtype's rounding. Never timed itself.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/bench_matmul.h"
#include "core/error.h"

namespace qlora::bench {
namespace {

MatmulBenchOptions small(const std::string& dtype) {
    MatmulBenchOptions o;
    o.rows = 40;  // above the GEMV's row limit: the tiled path
    o.in = 192;
    o.out = 320;
    o.dtype = dtype;
    o.matrices = 2;
    o.warmup = 0;
    o.iters = 1;
    return o;
}

TEST(BenchMatmul, ReportsBothMatmulsAndAgreesWithTheDenseGemm) {
    for (const auto& [dtype, tolerance] : {std::pair{"float32", 1e-5}, {"bfloat16", 2e-2}}) {
        const auto j = nlohmann::json::parse(bench_matmul(small(dtype)));
        EXPECT_EQ(j["bench"], "matmul");
        EXPECT_EQ(j["dtype"], dtype);
        for (const char* key :
             {"forward_nf4_ms", "forward_dense_ms", "grad_input_nf4_ms", "grad_input_dense_ms",
              "forward_nf4_vs_dense", "grad_input_nf4_vs_dense"}) {
            EXPECT_GT(j[key].get<double>(), 0.0) << key << " " << dtype;
        }
        EXPECT_LT(j["forward_max_rel_diff"].get<double>(), tolerance) << dtype;
        EXPECT_LT(j["grad_input_max_rel_diff"].get<double>(), tolerance) << dtype;
    }
}

TEST(BenchMatmul, RejectsOtherDtypesAndEmptyOrHugeShapes) {
    EXPECT_THROW(bench_matmul(small("float16")), Error);
    MatmulBenchOptions o = small("float32");
    o.matrices = 0;
    EXPECT_THROW(bench_matmul(o), Error);
    o = small("float32");
    o.rows = int64_t{1} << 40;  // refused before any allocation
    EXPECT_THROW(bench_matmul(o), Error);
}

}  // namespace
}  // namespace qlora::bench
