// hardware.parallel, the config's choice of multi-GPU mode (its own header: the config includes
// it without the rest of dist/).
#pragma once

#include "core/enum_names.h"

namespace qlora::dist {

// hardware.parallel: auto = data parallelism when WORLD_SIZE > 1; shard_base = data parallelism
// over a base whose 4-bit blocks are split across the ranks (dist/sharded_base.h).
enum class ParallelSetting { kAuto, kData, kShardBase };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kParallelSettingNames =
    enum_names<ParallelSetting>("hardware.parallel", {{ParallelSetting::kAuto, "auto"},
                                                      {ParallelSetting::kData, "data"},
                                                      {ParallelSetting::kShardBase, "shard_base"}});

}  // namespace qlora::dist
