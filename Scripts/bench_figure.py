"""The JSON line every Python benchmark script prints, in the format of `swiftmp bench`."""
import json
import math


def figure(name, value, unit, **extra):
    """One JSON line: name, value, unit, then the extras sorted by key (6 significant digits;
    a value that is not finite becomes null)."""
    def number(v):
        return float(f"{v:.6g}") if math.isfinite(v) else None
    fields = {"name": name, "value": number(value), "unit": unit}
    fields.update({key: number(extra[key]) for key in sorted(extra)})
    print(json.dumps(fields, separators=(",", ":")), flush=True)
