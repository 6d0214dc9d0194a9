"""An application that forks workers while its own threads record (gunicorn --preload, multiprocessing).

    python -m tests.faults._fork_probe '{"endpoint": "...", "children": 8, "how": "os.fork", "child_calls": 10}'

The parent configures the kit, records, starts three recording threads, and forks
``children`` workers while they run (so locks are held at the instant of some forks).
Each worker makes ``child_calls`` calls of its own model and ends: an ``os.fork`` worker
shuts the kit down and leaves with ``os._exit``, as a pre-fork server's worker does; a
``multiprocessing`` worker just returns (multiprocessing skips atexit handlers). The
parent waits for each worker with a deadline (a worker still running then is counted
as hung and killed), then prints a JSON report: its own token total and the workers'
exit codes.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import os
import signal
import sys
import threading
import time

import llm_otel

PARENT_TOKENS = 11
CHILD_TOKENS = 7
DEADLINE_S = 30.0


def record(model: str, tokens: int) -> None:
    with llm_otel.llm_call(provider="openai", model=model) as call:
        call.set_usage(input_tokens=tokens, output_tokens=1)


def child_work(calls: int, shut_down: bool) -> None:
    faulthandler.dump_traceback_later(DEADLINE_S / 2)  # a hung worker says where, before it is killed
    for _ in range(calls):
        record("child-model", CHILD_TOKENS)
    if shut_down:
        llm_otel.shutdown()


def wait_all(pids: list[int]) -> dict[int, int]:
    codes: dict[int, int] = {}
    deadline = time.monotonic() + DEADLINE_S
    while len(codes) < len(pids) and time.monotonic() < deadline:
        for pid in pids:
            if pid not in codes:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    for pid in pids:
        if pid not in codes:  # hung: a deadlocked worker
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            codes[pid] = -999
    return codes


def main() -> None:
    plan = json.loads(sys.argv[1])
    llm_otel.configure(service_name="faults-fork", endpoint=plan["endpoint"], protocol="grpc", set_global=False,
                       metric_export_interval_ms=200, span_schedule_delay_ms=100)
    recorded = [0]
    lock = threading.Lock()

    def parent_call() -> None:
        record("parent-model", PARENT_TOKENS)
        with lock:
            recorded[0] += PARENT_TOKENS

    for _ in range(50):
        parent_call()
    stop = threading.Event()

    def keep_recording() -> None:
        while not stop.is_set():
            parent_call()

    threads = [threading.Thread(target=keep_recording) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # pre-fork sums, exports and SDK locks all in motion
    codes: dict[int, int] = {}
    pids: list[int] = []
    processes = []
    context = multiprocessing.get_context("fork")
    for _ in range(int(plan["children"])):
        if plan["how"] == "os.fork":
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    child_work(int(plan["child_calls"]), shut_down=True)
                    code = 0
                finally:
                    os._exit(code)
            pids.append(pid)
        else:
            process = context.Process(target=child_work, args=(int(plan["child_calls"]), False))
            process.start()
            processes.append(process)
        time.sleep(0.05)
    if pids:
        codes = wait_all(pids)
    for process in processes:
        process.join(DEADLINE_S)
        if process.is_alive():
            process.kill()
            process.join()
            codes[process.pid or 0] = -999
        else:
            codes[process.pid or 0] = process.exitcode or 0
    stop.set()
    for thread in threads:
        thread.join(10)
    llm_otel.shutdown()
    print(json.dumps({"parent_tokens": recorded[0], "codes": list(codes.values())}), flush=True)


if __name__ == "__main__":
    main()
