"""Planner on the CPU with the embedded model: time per 5-scene storyboard and its quality.

    .venv/bin/python bench/plan_cpu.py            # 20 prompts, half Chinese
Writes bench/results/plan_cpu.json. Target (issue 2): median <= 25 s per storyboard on 2 cores,
20/20 schema-valid storyboards with distinct, non-empty descriptions.
"""
from __future__ import annotations

import argparse
import statistics
import time

from common import print_table, write_results  # noqa: E402 (sets sys.path)

from models.llm import EMBEDDED, load_chat_model
from pipeline.cli import quiet_libraries
from pipeline.planner import PlanRequest, PlanTimings, plan_storyboard
from pipeline.storyboard import Storyboard

PROMPTS = (
    "制作一段关于森林探险的短视频，包含河流和小动物",
    "一只小猫在雨夜的城市里寻找回家的路",
    "宇航员在火星上种花",
    "春节的夜晚，灯笼和烟花照亮了小镇",
    "大熊猫在竹林里吃竹子，然后在雪中玩耍",
    "一个机器人在厨房里学习做饭",
    "海边的灯塔，日落和海豚",
    "小女孩和她的风筝在草原上奔跑",
    "古代城堡里的骑士和龙",
    "冬天的雪山，极光和一只狐狸",
    "A forest adventure with a river and small animals",
    "A robot learning to cook in a small kitchen",
    "A lighthouse keeper rescues a lost whale",
    "Two friends race paper boats down a rainy street",
    "An astronaut plants the first garden on Mars",
    "A night market in an old town, lanterns and street food",
    "A fox explores a snowy village at dawn",
    "A hot air balloon drifts over desert canyons",
    "A little girl teaches her grandfather to fly a kite",
    "A jazz band plays on a rooftop while the city lights come on",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--limit", type=int, default=len(PROMPTS))
    args = parser.parse_args()
    quiet_libraries()
    started = time.perf_counter()
    load_chat_model(EMBEDDED)
    load_s = time.perf_counter() - started
    rows = []
    for seed, prompt in enumerate(PROMPTS[:args.limit]):
        timings = PlanTimings()
        started = time.perf_counter()
        board = plan_storyboard(PlanRequest(prompt, scenes=args.scenes, seed=seed), timings=timings)
        seconds = time.perf_counter() - started
        Storyboard.from_json(board.to_json())  # schema-valid, or this raises
        descriptions = [s.description for s in board.scenes]
        rows.append({"prompt": prompt, "language": board.language, "plan_s": round(seconds, 2),
                     "tokens": timings.tokens, "reasks": timings.reasks,
                     "tok_per_s": round(timings.tokens / timings.generate_s, 1),
                     "scenes": len(board.scenes),
                     "distinct": len(set(descriptions)) == len(descriptions) and all(descriptions),
                     "model_wrote_all": not any("rule-based" in n for n in board.notes),
                     "descriptions": descriptions,
                     "visual_prompts": [s.visual_prompt for s in board.scenes]})
    times = [r["plan_s"] for r in rows]
    summary = {"storyboards": len(rows), "scenes_each": args.scenes,
               "median_plan_s": statistics.median(times), "max_plan_s": max(times),
               "model_load_s": round(load_s, 2),
               "valid_and_distinct": sum(r["distinct"] for r in rows),
               "model_wrote_all": sum(r["model_wrote_all"] for r in rows)}
    path = write_results("plan_cpu", rows, summary)
    print_table(rows, ["prompt", "language", "plan_s", "tokens", "tok_per_s", "reasks", "distinct"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
