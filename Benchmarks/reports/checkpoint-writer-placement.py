"""How long the checkpoint journal's writer thread ran on the CPU the pool's thread was last
switched in on, and how long elsewhere (Benchmarks/reports/checkpoint-overhead.md, "Session 13"):

    perf sched record -o sched.data -- nice -n -10 swiftmp-user bench checkpoint --repetitions 4
    perf script -i sched.data -F comm,tid,cpu,time,event,trace > sched.txt
    python3 checkpoint-writer-placement.py sched.txt

Replays `sched_switch`: each CPU's running thread from one switch to the next; an interval of
`swiftmp-journal` counts as "on the pool thread's CPU" when `swiftmp-pool` was last switched in
on that CPU. Also counts the switches where the journal preempted the pool's thread directly.
"""
import re
import sys

for path in sys.argv[1:]:
    last_cpu, running = {}, {}
    same = other = 0.0
    preempted = 0
    for line in open(path):
        if "sched_switch" not in line:
            continue
        m = re.search(r"\[(\d+)\]\s+([\d.]+):.*prev_comm=(\S+).*prev_state=(\S+).*next_comm=(\S+)", line)
        if not m:
            continue
        cpu, time, previous, state, following = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4), m.group(5)
        if previous == "swiftmp-pool" and state == "R" and following == "swiftmp-journal":
            preempted += 1
        current = running.get(cpu)
        if current and current[0] == "swiftmp-journal":
            if last_cpu.get("swiftmp-pool") == cpu:
                same += time - current[1]
            else:
                other += time - current[1]
        running[cpu] = (following, time)
        last_cpu[following] = cpu
    print(f"{path}: writer on the pool thread's CPU {same * 1e3:.1f} ms, elsewhere {other * 1e3:.1f} ms; "
          f"pool thread preempted by the writer {preempted} times")
