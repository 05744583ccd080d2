// Shared wrapper for the thin mains: turns qlora::Error (and anything else) into one line on stderr
// and the exit code of DESIGN.md section 1 (0 ok, 1 runtime failure, 2 bad usage/config/input).
#pragma once

#include <CLI/CLI.hpp>

#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace qlora::cli {

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
        std::cerr << name << ": error: " << e.what() << " (see " << name << " --help)\n";
        return static_cast<int>(ExitCode::kBadInput);
    }
    try {
        body();
        return 0;
    } catch (const Error& e) {
        log_debug("error raised at ", e.where());
        std::cerr << name << ": error: " << e.what() << '\n';
        return static_cast<int>(e.code());
    } catch (const std::exception& e) {
        std::cerr << name << ": error: " << e.what() << '\n';
        return static_cast<int>(ExitCode::kRuntime);
    }
}

}  // namespace qlora::cli
