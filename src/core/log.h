// Leveled logging to stderr: "[qlora] W message". Level from QLORA_LOG_LEVEL (error, warn, info,
// debug) or set_log_level(). Tests swap the sink to capture lines. Never used in hot loops.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace qlora {

enum class LogLevel : int { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

using LogSink = std::function<void(LogLevel, const std::string&)>;

LogLevel log_level();
void set_log_level(LogLevel level);
// "warn" -> kWarn; throws qlora::Error naming the accepted names otherwise.
LogLevel parse_log_level(std::string_view name);
// Replaces where lines go (nullptr restores stderr); returns the previous sink.
LogSink set_log_sink(LogSink sink);
void log_line(LogLevel level, const std::string& message);
// Logs a warning the first time `key` is seen in this process; later calls are silent.
void log_warn_once(const std::string& key, const std::string& message);

template <typename... Parts>
void log_error(const Parts&... parts) {
    if (log_level() >= LogLevel::kError) log_line(LogLevel::kError, detail::concat(parts...));
}
template <typename... Parts>
void log_warn(const Parts&... parts) {
    if (log_level() >= LogLevel::kWarn) log_line(LogLevel::kWarn, detail::concat(parts...));
}
template <typename... Parts>
void log_info(const Parts&... parts) {
    if (log_level() >= LogLevel::kInfo) log_line(LogLevel::kInfo, detail::concat(parts...));
}
template <typename... Parts>
void log_debug(const Parts&... parts) {
    if (log_level() >= LogLevel::kDebug) log_line(LogLevel::kDebug, detail::concat(parts...));
}

}  // namespace qlora
