"""Reading the log Scripts/bench.sh writes (Benchmarks/bench-log.jsonl).

The log is JSON lines: first `{"machine": {...}}`, last `{"machine_end": {"loadavg": [...]}}`, and
between them for each benchmark command a line
`{"command": "...", "round": r}` followed by that command's figures. Figures are
`{"name", "value", "unit", ...}` (swiftmp bench, the Python scripts) or the C kernels'
`{"kernel", "impl": "c", "median", ...}`, which are renamed `c.kernels.<kernel>.<size>` (and
`best.kernels.<kernel>.<size>` for the best references, impl `c-avx512` or `c-openblas`).
"""
import json
import statistics

# The C binaries print no size; these are the reference sizes they run.
C_KERNEL_NAMES = {
    "pi": "c.kernels.pi.20000000",
    "mandelbrot": "c.kernels.mandelbrot.1600x1200x256",
    "matmul": "c.kernels.matmul.1024",
    "nbody": "c.kernels.nbody.4096x10",
}


class Log:
    """The figures of one bench.sh run, by name, each with its round and command."""

    def __init__(self, path):
        self.machine = {}
        self.machine_end = {}
        self.figures = {}  # name -> list of dicts (the figure plus "round" and "command")
        command, round_number = None, None
        with open(path) as lines:
            for number, line in enumerate(lines, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as error:
                    raise SystemExit(f"{path}:{number}: not JSON ({error}): {line[:80]}")
                if "machine" in record:
                    self.machine = record["machine"]
                elif "machine_end" in record:
                    self.machine_end = record["machine_end"]
                elif "command" in record:
                    command, round_number = record["command"], record["round"]
                else:
                    if "kernel" in record and str(record.get("impl", "")).startswith("c"):
                        # c: the scalar reference; c-avx512, c-openblas: the best for this CPU,
                        # named best.kernels.<kernel>.<size> (Benchmarks/c, Benchmarks/README.md).
                        name = C_KERNEL_NAMES[record["kernel"]]
                        if record["impl"] != "c":
                            name = "best." + name.removeprefix("c.")
                        record = dict(record, name=name, value=record["median"], unit="s")
                    if "name" not in record:
                        raise SystemExit(f"{path}:{number}: a line that is neither a figure nor a command")
                    record.update(round=round_number, command=command)
                    self.figures.setdefault(record["name"], []).append(record)

    def has(self, name):
        return name in self.figures

    def values(self, name):
        return [f["value"] for f in self.figures.get(name, []) if f["value"] is not None]

    def median(self, name):
        values = self.values(name)
        return statistics.median(values) if values else None

    def field(self, name, key):
        """The median over rounds of an extra field (`idle_cpu_share`, `efficiency`, …)."""
        values = [f[key] for f in self.figures.get(name, []) if f.get(key) is not None]
        return statistics.median(values) if values else None

    def last(self, name):
        records = self.figures.get(name)
        return records[-1] if records else None

    def paired_ratios(self, numerator, denominator):
        """numerator/denominator for every round that has both (they ran side by side)."""
        by_round = {f["round"]: f["value"] for f in self.figures.get(denominator, []) if f["value"]}
        return [f["value"] / by_round[f["round"]] for f in self.figures.get(numerator, [])
                if f["value"] is not None and f["round"] in by_round]

    def commands(self, name):
        """The distinct commands that produced `name`, in order."""
        seen = []
        for f in self.figures.get(name, []):
            if f["command"] not in seen:
                seen.append(f["command"])
        return seen


def ab_figures(path, prefix=""):
    """The figures of a `Scripts/bench-ab.sh` log (.build-ab/log.jsonl: a `{"side": …}` line, then
    that side's figures): name → side → the values in round order, only names starting with
    `prefix`. Figures as `bench.sh` logs them (`name`/`value`, or `figure`/`median`)."""
    side, figures = None, {}
    with open(path) as lines:
        for line in lines:
            line = line.strip()
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "side" in record:
                side = record["side"]
                continue
            name = record.get("name") or record.get("figure")
            value = record.get("value") if "value" in record else record.get("median")
            if name is None or not isinstance(value, (int, float)) or not name.startswith(prefix):
                continue
            figures.setdefault(name, {}).setdefault(side, []).append(value)
    return figures
