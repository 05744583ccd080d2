// Process-wide log level, sink and warn-once registry.
#include "core/log.h"

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <set>

namespace qlora {
namespace {

LogLevel initial_level() {
    const char* env = std::getenv("QLORA_LOG_LEVEL");
    if (env == nullptr || *env == '\0') return LogLevel::kInfo;
    try {
        return parse_log_level(env);
    } catch (const Error&) {
        std::cerr << "[qlora] W QLORA_LOG_LEVEL='" << env
                  << "' is not one of error, warn, info, debug; using info\n";
        return LogLevel::kInfo;
    }
}

std::atomic<int>& level_storage() {
    static std::atomic<int> level{static_cast<int>(initial_level())};
    return level;
}

std::mutex& sink_mutex() {
    static std::mutex m;
    return m;
}

LogSink& sink_storage() {
    static LogSink sink;
    return sink;
}

char level_letter(LogLevel level) {
    switch (level) {
        case LogLevel::kError:
            return 'E';
        case LogLevel::kWarn:
            return 'W';
        case LogLevel::kInfo:
            return 'I';
        case LogLevel::kDebug:
            return 'D';
    }
    return '?';
}

}  // namespace

LogLevel log_level() { return static_cast<LogLevel>(level_storage().load()); }

void set_log_level(LogLevel level) { level_storage().store(static_cast<int>(level)); }

LogLevel parse_log_level(std::string_view name) {
    if (name == "error") return LogLevel::kError;
    if (name == "warn" || name == "warning") return LogLevel::kWarn;
    if (name == "info") return LogLevel::kInfo;
    if (name == "debug") return LogLevel::kDebug;
    QLORA_FAIL("log level must be one of error, warn, info, debug; got '", name, "'");
}

LogSink set_log_sink(LogSink sink) {
    std::lock_guard<std::mutex> lock(sink_mutex());
    LogSink previous = std::move(sink_storage());
    sink_storage() = std::move(sink);
    return previous;
}

void log_line(LogLevel level, const std::string& message) {
    std::lock_guard<std::mutex> lock(sink_mutex());
    if (sink_storage()) {
        sink_storage()(level, message);
        return;
    }
    // One string, one write: ranks sharing a stderr pipe would interleave a line written in pieces.
    std::cerr << ("[qlora] " + std::string(1, level_letter(level)) + ' ' + message + '\n')
              << std::flush;
}

void log_warn_once(const std::string& key, const std::string& message) {
    static std::mutex m;
    static std::set<std::string> seen;
    {
        std::lock_guard<std::mutex> lock(m);
        if (!seen.insert(key).second) return;
    }
    log_warn(message);
}

}  // namespace qlora
