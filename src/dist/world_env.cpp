// torchrun's worker environment -> WorldEnv, every value checked before it is used.
#include "dist/world_env.h"

#include <charconv>
#include <cstdlib>
#include <limits>

#include "core/error.h"

namespace qlora::dist {
namespace {

constexpr int64_t kMaxRanks = 1 << 20;

constexpr const char* kDistVariables[] = {
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};

// Environment values are user input: cut long ones so the error stays one readable line.
std::string shown(const std::string& value) {
    return value.size() <= 40 ? value : value.substr(0, 40) + "...";
}

int64_t parse_integer(const std::string& name, const std::string& value, int64_t lo, int64_t hi) {
    int64_t out = 0;
    const char* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, out);
    QLORA_CHECK(ec == std::errc() && ptr == end && !value.empty(), "environment variable ", name,
                " must be an integer, got '", shown(value),
                "' (is this process launched by torchrun?)");
    QLORA_CHECK(out >= lo && out <= hi, "environment variable ", name, " must be in [", lo, ", ",
                hi, "], got ", out);
    return out;
}

std::string required(const EnvLookup& env, const std::string& name, int64_t world_size) {
    std::optional<std::string> v = env(name);
    QLORA_CHECK(v.has_value(), "environment variable ", name, " is not set but WORLD_SIZE is ",
                world_size,
                "; launch with torchrun --no-python (it sets RANK, LOCAL_RANK, WORLD_SIZE, "
                "LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT)");
    return *v;
}

// WORLD_SIZE unset or 1: the single-process path. Any other variable that is set must agree.
void check_single_process(const EnvLookup& env) {
    for (const char* name : {"RANK", "LOCAL_RANK"}) {
        if (auto v = env(name)) parse_integer(name, *v, 0, 0);  // WORLD_SIZE=1 has only rank 0
    }
}

bool parse_bool(const std::string& name, const std::string& value) {
    // torch writes str(True) / str(False); accept the usual spellings too.
    if (value == "True" || value == "true" || value == "1") return true;
    if (value == "False" || value == "false" || value == "0" || value.empty()) return false;
    QLORA_FAIL("environment variable ", name, " must be True or False, got '", shown(value), "'");
}

}  // namespace

EnvLookup process_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (v == nullptr) return std::nullopt;
        return std::string(v);
    };
}

std::optional<WorldEnv> read_world_env(const EnvLookup& env, bool single_rank_world) {
    std::optional<std::string> ws = env("WORLD_SIZE");
    if (!ws) {
        for (const char* name : kDistVariables) {
            QLORA_CHECK(
                !env(name).has_value(), "environment variable ", name,
                " is set but WORLD_SIZE is not; unset it for a single-process run, or launch with "
                "torchrun");
        }
        return std::nullopt;
    }
    const int64_t world_size = parse_integer("WORLD_SIZE", *ws, 1, kMaxRanks);
    if (world_size == 1 && !(single_rank_world && env("MASTER_ADDR"))) {
        check_single_process(env);
        return std::nullopt;
    }
    WorldEnv w;
    w.world_size = static_cast<int>(world_size);
    w.rank = static_cast<int>(
        parse_integer("RANK", required(env, "RANK", world_size), 0, world_size - 1));
    w.local_world_size = static_cast<int>(parse_integer(
        "LOCAL_WORLD_SIZE", required(env, "LOCAL_WORLD_SIZE", world_size), 1, world_size));
    w.local_rank = static_cast<int>(parse_integer(
        "LOCAL_RANK", required(env, "LOCAL_RANK", world_size), 0, w.local_world_size - 1));
    w.master_addr = required(env, "MASTER_ADDR", world_size);
    QLORA_CHECK(!w.master_addr.empty() && w.master_addr.size() <= 253,
                "environment variable MASTER_ADDR must be a host name or address, got '",
                shown(w.master_addr), "'");
    w.master_port = static_cast<uint16_t>(
        parse_integer("MASTER_PORT", required(env, "MASTER_PORT", world_size), 1, 65535));
    if (auto agent = env("TORCHELASTIC_USE_AGENT_STORE")) {
        w.use_agent_store = parse_bool("TORCHELASTIC_USE_AGENT_STORE", *agent);
    }
    if (auto restarts = env("TORCHELASTIC_RESTART_COUNT")) {
        w.restart_count = static_cast<int>(parse_integer("TORCHELASTIC_RESTART_COUNT", *restarts, 0,
                                                         std::numeric_limits<int>::max()));
    }
    return w;
}

std::optional<int64_t> world_size_from_env(const EnvLookup& env) {
    std::optional<std::string> ws = env("WORLD_SIZE");
    if (!ws) return std::nullopt;
    return parse_integer("WORLD_SIZE", *ws, 1, kMaxRanks);
}

std::string describe(const WorldEnv& w) {
    return detail::concat(
        "rank ", w.rank, "/", w.world_size, " (local ", w.local_rank, "/", w.local_world_size,
        ") store ", w.master_addr, ":", w.master_port,
        w.use_agent_store ? " via torchrun's agent" : (w.rank == 0 ? " hosted here" : ""));
}

}  // namespace qlora::dist
