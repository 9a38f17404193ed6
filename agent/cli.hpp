#pragma once
// The `runner` command line: parses options (command line, RUNNER_* environment),
// builds the real components and hands over to the daemon or a subcommand.

namespace proctor {

// Runs `runner` with its arguments and returns the process exit code (SPEC §3:
// 0 success, 1 test failure, 2 usage or input error, 3 infrastructure error).
int run_cli(int argc, char** argv);

}  // namespace proctor
