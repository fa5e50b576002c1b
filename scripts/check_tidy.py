#!/usr/bin/env python3
"""Runs clang-tidy with the repository's .clang-tidy on the units listed below; any finding fails.

The list holds the units cut out of the god files (issue 23) and base: new code starts clean and stays so;
older units join the list as they are cleaned. Usage: check_tidy.py REPO_ROOT BUILD_DIR (BUILD_DIR holds
compile_commands.json, which CMake writes).
"""
import pathlib
import shutil
import subprocess
import sys

UNITS = [
    "base/src/strings.cpp",
    "base/src/stats.cpp",
    "base/src/status.cpp",
    "base/src/retry.cpp",
    "base/src/fair_semaphore.cpp",
    "base/src/json_file.cpp",
    "services/src/handler_pool.cpp",
    "services/src/http_client.cpp",
    "services/src/http_message.cpp",
    "services/src/http_routing.cpp",
    "services/src/http_server.cpp",
    "services/src/http_session.cpp",
    "services/src/response_stream_queue.cpp",
    "services/src/request_signing.cpp",
    "services/src/tls_context.cpp",
    "netem/src/link_connection.cpp",
    "netem/src/link_model.cpp",
    "netem/src/link_proxy.cpp",
    "netem/src/link_schedule.cpp",
    "netem/src/link_tool.cpp",
    "scheduler/src/plan_validation.cpp",
    "scheduler/src/draft_planner.cpp",
    "scheduler/src/run_scheduler_service.cpp",
    "cloud-tail/src/session_table.cpp",
    "cloud-tail/src/step_batcher.cpp",
    "cloud-tail/src/step_executor.cpp",
    "cloud-tail/src/tail_metrics.cpp",
    "edge-agent/src/admission.cpp",
    "edge-agent/src/stop_scanner.cpp",
    "edge-agent/src/failover_policy.cpp",
    "edge-agent/src/fixed_split.cpp",
    "edge-agent/src/openai_format.cpp",
    "edge-agent/src/edge_config.cpp",
    "edge-agent/src/edge_metrics.cpp",
    "edge-agent/src/generation_runner.cpp",
    "edge-agent/src/generation_drafting.cpp",
    "edge-agent/src/movable_split.cpp",
    "edge-agent/src/completion_request.cpp",
    "edge-agent/src/request_fields.cpp",
    "edge-agent/src/chat_request.cpp",
    "edge-agent/src/cloud_request_tails.cpp",
    "edge-agent/src/edge_service.cpp",
    "edge-agent/src/edge_main.cpp",
    "edge-agent/src/remote_session.cpp",
    "edge-agent/src/remote_tail.cpp",
    "edge-agent/src/remote_middle.cpp",
    "cli/src/sse_check.cpp",
    "cli/src/rss_sampler.cpp",
    "cli/src/bench_split_report.cpp",
    "cli/src/chat_template_command.cpp",
    "cli/src/tls_selfsigned_command.cpp",
    "text/src/chat_template.cpp",
    "text/src/builtin_chat_templates.cpp",
    "text/src/jinja/value.cpp",
    "text/src/jinja/py_string.cpp",
    "text/src/jinja/lexer.cpp",
    "text/src/jinja/parser.cpp",
    "text/src/jinja/builtins.cpp",
    "text/src/jinja/filters.cpp",
    "text/src/jinja/evaluator.cpp",
]


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    root, build = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    clang_tidy = shutil.which("clang-tidy") or shutil.which("clang-tidy-14")
    if clang_tidy is None:
        print("tidy: clang-tidy not found (Debian: clang-tidy)")
        return 1
    missing = [unit for unit in UNITS if not (root / unit).is_file()]
    if missing:
        print("tidy: listed units missing: " + ", ".join(missing))
        return 1
    # One process for all units; headers of this repository are checked as they are included.
    command = [clang_tidy, "-p", str(build), "--quiet", "--warnings-as-errors=*",
               f"--header-filter={root}/(base|model|text|wire|engine|services|netem|scheduler|edge-agent|cloud-tail)/"]
    result = subprocess.run(command + [str(root / unit) for unit in UNITS], capture_output=True, text=True)
    findings = [line for line in result.stdout.splitlines() if ": warning:" in line or ": error:" in line]
    for line in findings:
        print(line)
    if result.returncode != 0 and not findings:
        print(result.stdout[-4000:] + result.stderr[-4000:])
    print(f"tidy: {len(UNITS)} units, {len(findings)} findings")
    return 1 if result.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
