// Shared wrapper for the thin mains: turns qlora::Error (and anything else) into one line on stderr
// and the exit code of DESIGN.md section 1 (0 ok, 1 runtime failure, 2 bad usage/config/input).
#pragma once

#include <c10/util/Exception.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <new>
#include <string>

#include "core/error.h"
#include "core/error_text.h"
#include "core/log.h"

namespace qlora::cli {

// Writes "<name>: error: <text>" as one string, so one write(2): ranks of one torchrun launch share
// a stderr pipe, and lines written in pieces interleave there (a write below PIPE_BUF is atomic).
inline void print_error_line(const std::string& name, const std::string& text) {
    std::cerr << (name + ": error: " + text + "\n") << std::flush;
}

// A std::filesystem call that threw on a path the user gave (a name over NAME_MAX, a file where a
// folder must be, a symlink loop): "'<path>': <reason>" with the path cut, and exit 2 for a path
// the file system cannot take, 1 for anything else (permissions, a full disk).
inline int report_filesystem_error(const std::string& name,
                                   const std::filesystem::filesystem_error& e) {
    std::string text = "'" + cut_middle(e.path1().string(), 160) + "'";
    if (!e.path2().empty()) text += " -> '" + cut_middle(e.path2().string(), 160) + "'";
    print_error_line(name, text + ": " + e.code().message());
    const std::error_code& c = e.code();
    const bool errno_code =
        c.category() == std::generic_category() || c.category() == std::system_category();
    const int err = c.value();
    const bool bad_path = errno_code && (err == ENAMETOOLONG || err == ENOTDIR || err == ELOOP ||
                                         err == EINVAL || err == EILSEQ);
    return static_cast<int>(bad_path ? ExitCode::kBadInput : ExitCode::kRuntime);
}

inline int run_tool(const std::string& name, CLI::App& app, int argc, char** argv,
                    const std::function<void()>& body) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        print_error_line(name, first_line_cut(e.what()) + " (see " + name + " --help)");
        return static_cast<int>(ExitCode::kBadInput);
    }
    // A file-size limit (ulimit -f) must surface as a write error (EFBIG) with a clear message, not
    // as SIGXFSZ killing the process with a half-written temporary file.
    std::signal(SIGXFSZ, SIG_IGN);
    try {
        body();
        return 0;
    } catch (const Error& e) {
        log_debug("error raised at ", e.where());
        print_error_line(name, user_error_text(e.what()));
        return static_cast<int>(e.code());
    } catch (const c10::Error& e) {
        // A LibTorch check that our own validation did not catch first: its first line only (the
        // rest is a C++ backtrace), as a runtime failure.
        print_error_line(name, first_line_cut(e.what_without_backtrace()));
        return static_cast<int>(ExitCode::kRuntime);
    } catch (const std::bad_alloc&) {
        print_error_line(
            name, "out of memory (a size in the input may be larger than this machine holds)");
        return static_cast<int>(ExitCode::kRuntime);
    } catch (const std::filesystem::filesystem_error& e) {
        return report_filesystem_error(name, e);
    } catch (const std::exception& e) {
        print_error_line(name, first_line_cut(e.what()));
        return static_cast<int>(ExitCode::kRuntime);
    } catch (...) {
        print_error_line(name, "unknown failure");
        return static_cast<int>(ExitCode::kRuntime);
    }
}

}  // namespace qlora::cli
