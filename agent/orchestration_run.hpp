#pragma once
// An orchestration recorded like a task (SPEC §8): the orchestration is the task's
// service phase — one record and section — and each run a record and a testcase
// section under it, in the results layout and on the event stream.

#include <filesystem>
#include <stop_token>
#include <vector>

#include "agent/orchestrator.hpp"
#include "agent/task_recorder.hpp"

namespace proctor {

// Runs `orchestrator` with its progress told to `recorder`'s service phase (started here
// with the plan's description as its input, ended with the result's summary and facts,
// and `links`) and returns its result.
OrchestrationResult run_orchestration_recorded(Orchestrator& orchestrator, TaskRecorder& recorder,
                                               std::stop_token end_early, std::stop_token abort,
                                               std::vector<LayoutLink> links = {});

// The record status of an orchestration's result: success, failure, or error when it
// could not go on (terminated when a signal ended it).
RecordStatus orchestration_status(const OrchestrationResult& result);

}  // namespace proctor
