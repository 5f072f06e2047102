"""Does the offline planner stay on the story? 32 prompts of the kind people type (half
Chinese: stories, product teasers, explainers, time-lapses, travel, prompts with instructions and
numbers in them), each with the subject words a person would accept in a visual prompt.

    .venv/bin/python bench/plan_quality.py              # embedded SmolLM2, 5 scenes each
    .venv/bin/python bench/plan_quality.py --model DIR  # another chat model (a folder or hub id)

Per storyboard and overall: the share of visual prompts that name the subject or setting, the
share with first-person or meta text ("I", "we", "story", "scenes"...), content-filter hits,
and seconds per storyboard (model loaded). Writes bench/results/plan_quality.json.
Targets (issue 15, embedded model, 2 CPU cores): >= 90% on subject, <= 5% meta, 0 filter hits,
median <= 20 s for 5 scenes.
"""
from __future__ import annotations

import argparse
import re
import statistics
import time
from typing import Any

from common import print_table, write_results  # noqa: E402 (sets sys.path)

# (prompt, words a person would accept as naming its subject or setting)
PROMPTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("A lighthouse keeper's last night before the light is automated, told in quiet moments",
     ("lighthouse", "keeper")),
    ("30 second product teaser for a handmade ceramic coffee mug, 5 scenes, warm morning light",
     ("mug", "cup")),
    ("Time-lapse of a city from dawn to night", ("city", "skyline")),
    ("A forest adventure with a river and small animals", ("forest", "river", "animal")),
    ("Make a short video about a fox exploring a snowy village", ("fox", "village")),
    ("An explainer on how bees make honey", ("bee", "honey", "hive")),
    ("Travel film: three days among Kyoto temples and bamboo groves",
     ("kyoto", "temple", "bamboo")),
    ("15-second ad for a pair of red running shoes on a city track", ("shoe", "sneaker")),
    ("A little robot learns to paint in an abandoned greenhouse", ("robot", "greenhouse")),
    ("Show how a sourdough loaf is baked, step by step, 6 scenes", ("sourdough", "loaf", "bread")),
    ("Please create a 20 second video of a sailboat crossing a stormy sea",
     ("sailboat", "boat", "sea")),
    ("Time-lapse of a flower blooming on a windowsill", ("flower", "windowsill")),
    ("An old fisherman and his dog at sunrise on a quiet lake", ("fisherman", "dog", "lake")),
    ("A cozy story about a grandmother knitting a scarf by the fire",
     ("grandmother", "scarf", "fire")),
    ("Explain the water cycle for kids in 4 scenes", ("water", "cloud", "rain")),
    ("A road trip through the desert in a vintage camper van", ("camper", "van", "desert")),
    ("一只橘猫在雨天的东京街头寻找回家的路，最后在便利店门口睡着了", ("cat", "tokyo", "street")),
    ("制作一段关于森林探险的短视频，包含河流和小动物", ("forest", "river", "animal")),
    ("灯塔看守人在灯塔自动化之前的最后一夜", ("lighthouse", "keeper")),
    ("为一款手工陶瓷咖啡杯制作30秒的产品宣传片，温暖的晨光", ("cup", "mug", "ceramic")),
    ("城市从黎明到深夜的延时摄影", ("city", "skyline")),
    ("讲解蜜蜂如何酿造蜂蜜的科普短片", ("bee", "honey", "hive")),
    ("京都三日游：寺庙、竹林和小巷", ("kyoto", "temple", "bamboo", "alley")),
    ("熊猫在竹林里吃竹子", ("panda", "bamboo")),
    ("一个小女孩在海边放风筝", ("girl", "kite", "beach", "seaside")),
    ("做一个10秒的视频，展示一杯咖啡的制作过程", ("coffee",)),
    ("宇航员在火星上发现了一朵花", ("astronaut", "mars", "flower")),
    ("老爷爷和他的小狗在公园里散步", ("grandpa", "grandfather", "old man", "dog", "puppy", "park")),
    ("春节夜晚的烟花和灯笼", ("firework", "lantern", "spring festival")),
    ("一辆红色的老式火车穿过雪山", ("train", "mountain")),
    ("请生成一个关于海底珊瑚礁的五个场景的短片", ("coral", "reef", "underwater")),
    ("厨师在小餐馆里做一碗拉面", ("chef", "ramen", "noodle", "restaurant")),
)
# Text about the film or its teller rather than what a camera sees (checked here on its own
# list, not the planner's, so the bench does not grade the planner by the planner's rule).
META_WORDS = re.compile(r"\b(i|me|my|mine|we|us|our|let's|you|your|story|stories|scene|scenes|"
                        r"film|video|movie|narrator|audience|viewers?|chapter|episode|imagine|"
                        r"once upon a time)\b", re.I)


def score(visual_prompts: list[str], accepted: tuple[str, ...], prompt: str) -> dict[str, Any]:
    """How one storyboard's visual prompts fare: on subject, meta text, filter hits."""
    from pipeline.safety import ContentFilter

    words = ContentFilter.default()
    on = [any(re.search(rf"\b{re.escape(a)}", v, re.I) for a in accepted) for v in visual_prompts]
    meta = [META_WORDS.search(v) is not None for v in visual_prompts]
    hits = [t for v in visual_prompts if (t := words.find_written(v, prompt))]
    return {"on_subject": sum(on), "meta": sum(meta), "filter_hits": len(hits),
            "off_subject": [v for v, ok in zip(visual_prompts, on) if not ok],
            "meta_text": [v for v, bad in zip(visual_prompts, meta) if bad]}


def main() -> None:
    from models.llm import EMBEDDED, load_chat_model
    from pipeline.cli import quiet_libraries
    from pipeline.planner import PlanRequest, PlanTimings, plan_storyboard

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=5)
    parser.add_argument("--limit", type=int, default=len(PROMPTS))
    parser.add_argument("--model", default=EMBEDDED, help="chat model (default: embedded)")
    parser.add_argument("--name", default="plan_quality", help="results file name")
    args = parser.parse_args()
    quiet_libraries()
    started = time.perf_counter()
    load_chat_model(args.model)
    load_s = time.perf_counter() - started
    rows = []
    for seed, (prompt, accepted) in enumerate(PROMPTS[:args.limit]):
        timings = PlanTimings()
        started = time.perf_counter()
        board = plan_storyboard(PlanRequest(prompt, scenes=args.scenes, seed=seed,
                                            model=args.model), timings=timings)
        seconds = time.perf_counter() - started
        visuals = [s.visual_prompt for s in board.scenes]
        rows.append({"prompt": prompt, "language": board.language, "plan_s": round(seconds, 2),
                     "scenes": len(visuals), **score(visuals, accepted, prompt),
                     "reasks": timings.reasks, "tokens": timings.tokens,
                     "planner": board.planner, "subject": board.provenance.get("subject"),
                     "notes": board.notes, "descriptions": [s.description for s in board.scenes],
                     "visual_prompts": visuals})
    total = sum(r["scenes"] for r in rows)
    times = [r["plan_s"] for r in rows]
    summary = {
        "model": args.model, "storyboards": len(rows), "scenes_each": args.scenes,
        "visual_prompts": total,
        "on_subject_share": round(sum(r["on_subject"] for r in rows) / total, 3),
        "meta_share": round(sum(r["meta"] for r in rows) / total, 3),
        "filter_hits": sum(r["filter_hits"] for r in rows),
        "median_plan_s": statistics.median(times), "max_plan_s": max(times),
        "model_load_s": round(load_s, 2),
        "storyboards_with_rule_scenes": sum(any("rule-based" in n for n in r["notes"])
                                            for r in rows),
    }
    path = write_results(args.name, rows, summary)
    print_table(rows, ["prompt", "language", "plan_s", "on_subject", "meta", "filter_hits",
                       "reasks"])
    print(summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
