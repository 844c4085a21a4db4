"""Throughput of the from-scratch RNN / LSTM / GRU against `torch.nn`'s, printed as JSON.

Each layer drives the seed's recurrent network (final hidden state -> 128, ReLU -> 1) on
spectrogram chunks: batch 192, 40 steps, 17 inputs, hidden 128. Training is forward,
binary cross-entropy, backward and an Adam step; inference is a forward pass under
`torch.inference_mode`. Both implementations run in the same process, in alternating
rounds (the order flips every round), so that load from other processes hits both alike.
``ratio`` is scratch / torch examples per second over all rounds; ``ratio_median`` the
median of the per-round ratios.

    python bench/bench_recurrent.py [--rounds 8] [--threads 2] [--compile] [--env-study]

``--compile`` adds the scratch LSTM network under `torch.compile` (skipped with the reason
when it cannot compile). ``--env-study`` reruns the LSTM training measurement in child
processes under process-level settings a library cannot make: glibc's malloc keeping freed
memory instead of returning big buffers to the system, and OpenMP threads that sleep
instead of spinning while they wait (which matters when other processes share the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from physiodl.models.recurrent import GRU, LSTM, RNN

LAYERS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "4294967296"}
PASSIVE_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}
PROCESS_SETTINGS = {
    "defaults": {},
    "malloc_keeps_freed_memory": KEEP_FREED_MEMORY,
    "omp_passive_wait": PASSIVE_WAIT,
    "both": KEEP_FREED_MEMORY | PASSIVE_WAIT,
}


class SeedNet(nn.Module):
    """Recurrent layer -> final hidden state -> 128, ReLU -> 1, as the seed's LSTMNet."""

    def __init__(self, recurrent: nn.Module, hidden: int) -> None:
        super().__init__()
        self.recurrent = recurrent
        self.head = nn.Sequential(nn.Linear(hidden, 128), nn.ReLU(), nn.Linear(128, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.recurrent(x)
        h = state[0] if isinstance(state, tuple) else state
        return self.head(h[-1])[:, 0]


def train_step(
    net: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor
) -> Callable[[], None]:
    def step() -> None:
        optimizer.zero_grad()
        nn.functional.binary_cross_entropy_with_logits(net(x), y).backward()
        optimizer.step()

    return step


def inference_step(net: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            net(x)

    return step


def compare(steps: dict[str, Callable[[], None]], rounds: int, per_round: int, batch: int) -> dict:
    """Examples/s of each step function, timed in alternating rounds after a warm-up."""
    for step in steps.values():
        for _ in range(2):
            step()
    seconds: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for _ in range(per_round):
                steps[name]()
            seconds[name].append(time.perf_counter() - start)
    result: dict = {
        name: round(batch * per_round * rounds / sum(times), 1) for name, times in seconds.items()
    }
    if "scratch" in steps and "torch" in steps:
        result["ratio"] = round(result["scratch"] / result["torch"], 3)
        per_round_ratios = [
            t / s for s, t in zip(seconds["scratch"], seconds["torch"], strict=True)
        ]
        result["ratio_median"] = round(statistics.median(per_round_ratios), 3)
    return result


def measure(kind: str, args: argparse.Namespace, mode: str) -> dict:
    torch.manual_seed(0)
    reference = LAYERS[kind].torch_type(args.inputs, args.hidden, batch_first=True)
    nets = {
        "torch": SeedNet(reference, args.hidden),
        "scratch": SeedNet(LAYERS[kind].from_torch(reference), args.hidden),
    }
    nets["scratch"].head.load_state_dict(nets["torch"].head.state_dict())
    if args.compile and kind == "LSTM" and mode == "train":
        nets["scratch_compiled"] = torch.compile(
            SeedNet(LAYERS[kind].from_torch(reference), args.hidden)
        )
    x = torch.randn(args.batch, args.steps, args.inputs)
    y = torch.randint(0, 2, (args.batch,)).float()
    steps = {}
    for name, net in nets.items():
        if mode == "train":
            steps[name] = train_step(net, torch.optim.Adam(net.parameters(), 1e-3), x, y)
        else:
            steps[name] = inference_step(net.eval(), x)
    if "scratch_compiled" in steps:
        try:
            steps["scratch_compiled"]()  # compiles: minutes on a small CPU
        except Exception as error:  # no compiler, or a graph it cannot take
            del steps["scratch_compiled"]
            return {
                **compare(steps, args.rounds, args.per_round, args.batch),
                "scratch_compiled": f"unavailable: {type(error).__name__}: {error}"[:300],
            }
    result = compare(steps, args.rounds, args.per_round, args.batch)
    if "scratch_compiled" in result:
        result["compiled_ratio"] = round(result["scratch_compiled"] / result["torch"], 3)
    return result


def env_study(args: argparse.Namespace) -> dict:
    """LSTM training in child processes, one per entry of `PROCESS_SETTINGS`."""
    names = {name for settings in PROCESS_SETTINGS.values() for name in settings}
    study = {}
    for label, settings in PROCESS_SETTINGS.items():
        env = {k: v for k, v in os.environ.items() if k not in names} | settings
        command = [sys.executable, __file__, "--only", "LSTM", "--train-only"]
        command += ["--rounds", str(args.rounds), "--threads", str(args.threads)]
        child = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        study[label] = {"env": settings, **json.loads(child.stdout)["train"]["LSTM"]}
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=192)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--inputs", type=int, default=17)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=3, help="steps timed per round")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--only", choices=list(LAYERS), help="measure one layer kind")
    parser.add_argument("--train-only", action="store_true")
    parser.add_argument("--compile", action="store_true", help="add torch.compile (slow)")
    parser.add_argument("--env-study", action="store_true", help="add process settings")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    report: dict = {
        "setup": {
            "batch": args.batch,
            "steps": args.steps,
            "inputs": args.inputs,
            "hidden": args.hidden,
            "rounds": args.rounds,
            "per_round": args.per_round,
            "threads": args.threads,
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "env": {
                k: v for k, v in os.environ.items() if k.startswith(("MALLOC_", "OMP_", "MKL_"))
            },
            "load_average_before": os.getloadavg()[0],
        },
    }
    kinds = [args.only] if args.only else list(LAYERS)
    for mode in ("train",) if args.train_only else ("train", "inference"):
        report[mode] = {kind: measure(kind, args, mode) for kind in kinds}
    report["setup"]["load_average_after"] = os.getloadavg()[0]
    if args.env_study:
        report["env_study"] = env_study(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
