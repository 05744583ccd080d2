// Launching a tool under the setup venv's real torchrun (python -m torch.distributed.run
// --no-python) on 127.0.0.1, as users launch qlora-train on one node.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>

#include "support/test_support.h"

namespace qlora::dist::test_launch {

// A port the kernel just had free on 127.0.0.1, for torchrun's agent store.
inline int free_port() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    close(fd);
    return ntohs(addr.sin_port);
}

// "python -m torch.distributed.run ... --no-python <tool> <args>"; launcher_flags go before the
// tool (e.g. a slow --monitor-interval, so that our own timeout is what notices a dead rank).
inline std::string torchrun(int ranks, const std::string& tool, const std::string& args,
                            const std::string& launcher_flags = "") {
    std::ostringstream cmd;
    cmd << qlora::test::python() << " -m torch.distributed.run --nproc-per-node=" << ranks
        << " --master-addr=127.0.0.1 --master-port=" << free_port() << " --max-restarts=0 "
        << launcher_flags << " --no-python " << qlora::test::tool(tool) << " " << args;
    return cmd.str();
}

}  // namespace qlora::dist::test_launch
