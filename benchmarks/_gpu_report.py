"""Output of ``gpu_suite.py``: the header, the two tables (rows ready to paste into
``benchmarks/RESULTS.md``) and the notes under them."""

from __future__ import annotations

import shlex
import time

import torch

ITER_HEAD = (
    "| model, size | batch | regime | Newton ms median (min) | gradient ms median (min) | "
    "time ratio G/N | Newton MiB | gradient MiB | memory ratio | warm-up s | t(next B)/t(B) |"
)
RUN_HEAD = (
    "| run | model, size | regime | seconds | NFE | ms / NFE | floor s (1 fwd ms) | "
    "run / floor | peak GiB | warm-up s |"
)


def ms(timing) -> str:
    return f"{timing.median * 1e3:.1f} ({timing.min * 1e3:.1f})"


def mib(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def row(cells) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def print_table(head, rows) -> None:
    """A Markdown table: the head, its rule, then each row as it comes (printed at once)."""
    print(row(head) + "\n" + "| --- " * len(head) + "|", flush=True)
    for cells in rows:
        print(row(cells), flush=True)


def peak_gib(device: torch.device) -> str:
    if device.type != "cuda":
        return "—"
    return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f}"


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def scaling(medians: dict, row: str) -> str:
    """Fill the last column: this batch's Newton median over the next batch's (same regime)."""
    cells = [c.strip() for c in row.strip("|").split("|")]
    name, batch, regime = cells[0].split()[0], int(cells[1]), cells[2]
    larger = sorted(b for (n, r, b) in medians if n == name and r == regime and b > batch)
    if not larger:
        return row.replace("(scaling)", "—")
    ratio = medians[(name, regime, larger[0])] / medians[(name, regime, batch)]
    return row.replace("(scaling)", f"{ratio:.2f} (B {batch}→{larger[0]})")


def header(device: torch.device, dtype: torch.dtype, argv: list[str]) -> list[str]:
    import diffusers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    memory = ""
    if device.type == "cuda":
        memory = f", {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB"
    return [
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {name}{memory} · "
        f"{str(dtype).removeprefix('torch.')} · torch {torch.__version__} · diffusers "
        f"{diffusers.__version__} · CUDA {torch.version.cuda} · random weights, real architectures",
        f"# command: python benchmarks/gpu_suite.py {shlex.join(argv)}",
    ]


def print_tables(suite, skipped: list[str], failed: list[str], seconds: float) -> None:
    print("\n## per iteration (paste)")
    print(ITER_HEAD)
    print("|" + " --- |" * ITER_HEAD.count(" | ") + " --- |")
    for row in suite.iteration_rows:
        print(scaling(suite.medians, row))
    print("\n## end to end (paste)")
    print(RUN_HEAD)
    print("|" + " --- |" * RUN_HEAD.count(" | ") + " --- |")
    for row in suite.run_rows:
        print(row)
    for note in suite.notes:
        print(f"\n# {note}")
    print("\n# attention: the processors each model was built with (the '# built' lines)")
    print("# memory: peak above the allocation before the call (—: graphed, lives in the pool)")
    print("# t(next B)/t(B) near 1: host-bound; near the batch ratio: GPU-bound")
    print(f"# skipped: {', '.join(skipped) or 'none'}")
    print(f"# failed: {'; '.join(failed) or 'none'}")
    print(f"# suite seconds: {seconds:.0f}")
