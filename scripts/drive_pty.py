#!/usr/bin/env python3
"""Drives an interactive command through a pseudo-terminal, as a person at a terminal would.

usage: drive_pty.py PROMPT TURNS.json OUT.json -- COMMAND [ARGS...]

Waits for PROMPT, types each line of TURNS.json (a JSON list of strings) followed by Enter after
the next PROMPT, then types Ctrl-D (EOF) and reads until the command exits. OUT.json gets
{"exit": status, "output": everything the terminal showed (echoed input included)}. Each wait
times out after 300 s (the command is then killed and the exit status is -9).
"""
import json
import os
import pty
import select
import signal
import sys
import time


def main():
    prompt = sys.argv[1].encode()
    turns = json.load(open(sys.argv[2], encoding="utf-8"))
    out_file = sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(command[0], command)
    seen = bytearray()

    def read_some(deadline):
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.time()))
        if not ready:
            return False
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            return None
        if not chunk:
            return None
        seen.extend(chunk)
        return True

    def wait_for_prompts(count):
        deadline = time.time() + 300
        while seen.count(prompt) < count:
            got = read_some(deadline)
            if not got:
                return False
        return True

    ok = True
    for i, turn in enumerate(turns + [None]):
        if not wait_for_prompts(i + 1):
            ok = False
            break
        os.write(fd, b"\x04" if turn is None else turn.encode() + b"\n")
    deadline = time.time() + 300
    while ok and read_some(deadline):
        pass
    if not ok:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump({"exit": code, "output": seen.decode("utf-8", "replace")}, f)


if __name__ == "__main__":
    main()
