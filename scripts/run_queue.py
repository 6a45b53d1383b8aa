"""Run a file of shell commands, N at a time, in the file's order, until a deadline.

    python scripts/run_queue.py JOBS.txt --parallel 8 --deadline 420 --logs LOGDIR

One job per line (`#` lines and blank lines are skipped); a job may chain commands with `&&`.
Each job's output goes to LOGDIR/NNN.log. At the deadline every job still running is killed
(its whole process group) and no new one starts; LOGDIR/status.json then says, per job, whether
it finished (with its exit code and seconds), was killed, or never started. This is how the
project's sweeps ran many `python -m nattools train` runs side by side on one GPU machine.
"""
import argparse
import json
import os
import signal
import subprocess
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--deadline", type=float, default=600, help="seconds from start; then kill and stop")
    p.add_argument("--logs", default="queue_logs")
    args = p.parse_args(argv)
    jobs = [line.strip() for line in Path(args.jobs).read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]
    logs = Path(args.logs)
    logs.mkdir(parents=True, exist_ok=True)
    status = [{"job": j, "state": "not started"} for j in jobs]
    running, start, nxt = {}, time.time(), 0
    while (nxt < len(jobs) or running) and time.time() - start < args.deadline:
        for i, proc in list(running.items()):
            if proc.poll() is not None:
                status[i].update(state="finished", rc=proc.returncode, seconds=round(time.time() - status[i]["t0"]))
                del running[i]
                print(f"[{time.time() - start:6.0f}s] done {i:03d} rc={proc.returncode}", flush=True)
        while nxt < len(jobs) and len(running) < args.parallel:
            with open(logs / f"{nxt:03d}.log", "w") as log:
                running[nxt] = subprocess.Popen(["bash", "-c", jobs[nxt]], stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)
            status[nxt].update(state="running", t0=time.time())
            print(f"[{time.time() - start:6.0f}s] start {nxt:03d}: {jobs[nxt]}", flush=True)
            nxt += 1
        time.sleep(1)
    for i, proc in running.items():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            status[i].update(state="killed at the deadline")
        else:
            status[i].update(state="finished", rc=proc.returncode)
        status[i]["seconds"] = round(time.time() - status[i]["t0"])
    for s in status:
        s.pop("t0", None)
    (logs / "status.json").write_text(json.dumps(status, indent=1))
    print(json.dumps([s["state"] for s in status]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
