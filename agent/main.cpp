// runner: the Proctor agent. All logic lives in the libraries; this only wires.
#include "agent/cli.hpp"

int main(int argc, char** argv) { return proctor::run_cli(argc, argv); }
