"""Beats: what each scene is about, in English and Chinese, without a model.

The embedded planner model (135M parameters) writes English only and loses the thread of a
long request. So the prompt's premise (premise.py: its subject, setting and the other things it
names, found by a tagger) gives every scene a beat: an opening on the setting, the other things
one by one, an ending; each beat keeps the film's subject, so the model only writes what the
subject does in one shot. For a Chinese prompt the beats also carry the Chinese subtitles, made
from the prompt's own clauses, and the glossary below (ahead of CC-CEDICT) gives English words.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.premise import Premise

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Instruction words around the real subject: "制作一段关于…的短视频", "make a short video about…".
ZH_WRAPPERS = (
    re.compile(r"^(请|帮我|给我|我想|我要)*(制作|做|生成|创作|拍摄?|写|讲述?)?(一段|一个|一部|一支|一条)?"
               r"(关于|讲述|描写|展现)?"),
    re.compile(r"的?(短视频|视频|短片|影片|电影|动画|故事|片子)$"),
)
ZH_LEADS = re.compile(r"^(然后|接着|之后|后来|最后|首先|随后|包含|包括|其中有|里面有|还有|出现|展现|有|以及|"
                      r"并且|和|与)+")
ZH_SPLIT = re.compile(r"[，。；、,;！!？?\s]+|以及|还有|然后|接着|随后|和|与|及|跟")
EN_WRAPPERS = (
    re.compile(r"^(please\s+)?((make|create|generate|write|film|shoot|produce)\s+)?"
               r"((me\s+)?(a|an|the)\s+)?((short|little|small)\s+)?"
               r"((video|film|movie|clip|story|animation)\s+)?((about|of|showing|on)\s+)?", re.I),
)
EN_SPLIT = re.compile(r"\s*(?:[,;.!?]+|\band then\b|\bthen\b|\bwith\b|\bincluding\b|\bfeaturing\b|"
                      r"\band\b|\bwhere\b|\bin\b|\bat\b|\bon\b|\bnear\b|\bunder\b|\binside\b|"
                      r"\bthrough\b|\bacross\b|\bwhile\b|\bwho\b|\bwhich\b)\s*", re.I)

# A small Chinese -> English glossary for common film subjects (longest match wins).
GLOSSARY = {
    "森林": "forest", "树林": "woods", "探险": "adventure", "冒险": "adventure", "河流": "river",
    "小河": "stream", "河": "river", "江": "river", "湖": "lake", "海": "sea", "大海": "ocean",
    "海边": "seaside", "海滩": "beach", "山": "mountain", "高山": "high mountains", "雪山": "snowy mountains",
    "瀑布": "waterfall", "草原": "grassland", "沙漠": "desert", "城市": "city", "街道": "street",
    "夜晚": "night", "夜": "night", "早晨": "morning", "清晨": "early morning", "黄昏": "dusk",
    "日落": "sunset", "日出": "sunrise", "星空": "starry sky", "月亮": "moon", "太阳": "sun",
    "雨": "rain", "雪": "snow", "风": "wind", "花": "flowers", "花园": "garden", "树": "trees",
    "小动物": "small animals", "动物": "animals", "小鸟": "little birds", "鸟": "birds",
    "猫": "cat", "小猫": "kitten", "狗": "dog", "小狗": "puppy", "兔子": "rabbit", "小兔子": "bunny",
    "鱼": "fish", "熊": "bear", "狐狸": "fox", "鹿": "deer", "松鼠": "squirrel", "龙": "dragon",
    "马": "horse", "蝴蝶": "butterflies", "机器人": "robot", "宇航员": "astronaut", "太空": "outer space",
    "宇宙": "universe", "火星": "Mars", "月球": "the Moon", "地球": "Earth", "星球": "planet", "飞船": "spaceship", "火箭": "rocket", "汽车": "car",
    "火车": "train", "船": "boat", "飞机": "airplane", "孩子": "child", "小女孩": "little girl",
    "小男孩": "little boy", "女孩": "girl", "男孩": "boy", "老人": "old man", "家人": "family",
    "朋友": "friends", "厨师": "chef", "美食": "delicious food", "做饭": "cooking", "厨房": "kitchen",
    "咖啡": "coffee", "茶": "tea", "学校": "school", "村庄": "village", "小镇": "small town",
    "城堡": "castle", "公主": "princess", "骑士": "knight", "魔法": "magic", "魔法师": "wizard",
    "未来": "future", "科幻": "science fiction", "古代": "ancient times", "春天": "spring",
    "夏天": "summer", "秋天": "autumn", "冬天": "winter", "旅行": "journey", "旅程": "journey",
    "故事": "story", "友谊": "friendship", "比赛": "race", "音乐": "music", "舞蹈": "dance",
    "灯塔": "lighthouse", "岛": "island", "小岛": "small island", "洞穴": "cave", "桥": "bridge",
    "田野": "fields", "农场": "farm", "花朵": "blossoms", "彩虹": "rainbow", "云": "clouds",
    "寻找": "searching for", "宝藏": "treasure", "回家": "going home", "成长": "growing up",
    "水下": "underwater", "珊瑚": "coral", "鲸鱼": "whale", "海豚": "dolphin", "企鹅": "penguin",
    "熊猫": "panda", "大熊猫": "giant panda", "竹林": "bamboo forest", "长城": "Great Wall",
    "灯笼": "lanterns", "春节": "Spring Festival", "烟花": "fireworks", "市场": "market",
    "雨林": "rainforest", "火山": "volcano", "冰川": "glacier", "极光": "aurora", "风筝": "kite",
    "橘猫": "orange cat", "橘": "orange", "看守人": "keeper", "守护者": "guardian", "陶瓷": "ceramic",
    "手工": "handmade", "咖啡杯": "coffee cup", "杯子": "cup", "老爷爷": "old man", "爷爷": "grandpa",
    "奶奶": "grandma", "老奶奶": "old woman", "晨光": "morning light", "深夜": "late night",
    "黎明": "dawn", "雨夜": "rainy night", "雨天": "rainy day", "拉面": "ramen", "餐馆": "restaurant",
    "小餐馆": "small restaurant", "海底": "underwater", "竹子": "bamboo", "小巷": "alley",
    "放风筝": "flying a kite", "灯塔看守人": "lighthouse keeper", "老式": "old-fashioned",
}
_GLOSSARY_KEYS = sorted(GLOSSARY, key=len, reverse=True)
# Glossary words that are actions or abstractions, not things a camera can turn to.
NOT_SUBJECTS = {"寻找", "回家", "做饭", "成长", "探险", "冒险", "旅行", "旅程", "故事", "比赛", "未来",
                 "古代", "科幻", "魔法", "友谊"}


@dataclass(frozen=True)
class Beat:
    """What one scene is about: the film's subject always (`subject_en`, English), what else is
    in the shot (`focus`), and for Chinese prompts a subtitle from the prompt's own words."""

    role: str              # "opening", "middle" or "ending"
    subject_en: str        # the film's subject in English: every scene's sentence starts on it
    subtitle_zh: str = ""  # a Chinese subtitle made from the prompt's own words
    repeat: bool = False   # this focus already had a scene of its own
    focus: str = ""        # English: the setting or another thing the prompt names, or ""


def detect_language(text: str) -> str:
    """'zh' when the text is mostly Chinese characters, else 'en'."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    cjk = sum(1 for c in letters if CJK.match(c))
    return "zh" if cjk / len(letters) >= 0.3 else "en"


def subjects(prompt: str, language: str) -> list[str]:
    """The prompt's subjects in order, wrapper words removed, duplicates dropped."""
    text = prompt.strip()
    if language == "zh":
        parts = []
        for clause in ZH_SPLIT.split(text):
            for wrapper in ZH_WRAPPERS:
                clause = wrapper.sub("", clause)
            clause = ZH_LEADS.sub("", clause).strip()
            if clause:
                parts.append(clause)
    else:
        for wrapper in EN_WRAPPERS:
            text = wrapper.sub("", text, count=1)
        parts = [p.strip(" '\"") for p in EN_SPLIT.split(text)]
        parts = [re.sub(r"^(a|an|the|some)\s+", "", p, flags=re.I) for p in parts if len(p) > 1]
    seen: list[str] = []
    for part in parts:
        if part and part.lower() not in (s.lower() for s in seen):
            seen.append(part)
    if language == "zh" and len(seen) == 1:  # one long clause: its known nouns become subjects
        seen += [w for w in glossary_words(seen[0]) if w not in NOT_SUBJECTS and w != seen[0]]
    return seen or [prompt.strip()]


def glossary_words(chinese: str) -> list[str]:
    """The glossary's words found in a Chinese phrase, in order, longest match first."""
    found, i = [], 0
    while i < len(chinese):
        for key in _GLOSSARY_KEYS:
            if chinese.startswith(key, i):
                if key not in found:
                    found.append(key)
                i += len(key)
                break
        else:
            i += 1
    return found


def to_english(chinese: str) -> str:
    """An English gist of a Chinese phrase from the glossary ('' when nothing is known)."""
    return " ".join(GLOSSARY[w] for w in glossary_words(chinese))


ZH_MIDDLE = ("镜头转向{s}", "{s}出现在画面中", "走近{s}，细细端详", "{s}在光影中慢慢变化",
             "{s}近在眼前", "远远望去，{s}静静存在")
ZH_OPENING = "{s}映入眼帘"
ZH_ENDING = "{s}在余晖中渐渐远去"
ZH_LONG_TOPIC = 8  # characters: a longer topic is a sentence, used as it is
ZH_LAST_CLAUSE = re.compile(r"[，,。；;]\s*(?:最后|最终|终于)[，,]?([^，,。；;！!？?]+)[。！!]?$")
# A clause that asks for the film rather than tells it is no subtitle ("…制作30秒的宣传片").
ZH_REQUEST = re.compile(r"制作|生成|拍摄|视频|短片|宣传片|延时摄影|科普|\d+秒|分钟|场景")


def plan_beats(prompt: str, language: str, count: int, premise: Premise) -> list[Beat]:
    """`count` distinct beats: an opening on the setting, the prompt's other things one by one
    with the subject, an ending on the subject. Every beat's subject is the premise's."""
    subject = premise.subject
    focuses = [t for t in premise.things() if t != subject] or [""]
    opening_focus = premise.setting
    if count == 1:
        return [Beat("opening", subject, "，".join(subjects(prompt, "zh")) if language == "zh"
                     else "", focus=opening_focus)]
    middle = [Beat("middle", subject, repeat=k >= len(focuses), focus=focuses[k % len(focuses)])
              for k in range(count - 2)]
    if language != "zh":
        return [Beat("opening", subject, focus=opening_focus), *middle,
                Beat("ending", subject, focus=premise.setting)]
    # Chinese subtitles are made from the prompt's own words: its first clause opens the film,
    # the nouns jieba found name the middle shots, its "最后…" clause (if any) ends it.
    found = subjects(prompt, language)
    zh = premise.chinese
    subject_zh = zh.get(subject) or found[0][:ZH_LONG_TOPIC]
    topic = found[0]
    opening = topic if len(topic) > ZH_LONG_TOPIC and not ZH_REQUEST.search(topic) else \
        ZH_OPENING.format(s=subject_zh if ZH_REQUEST.search(topic) else topic)
    beats = [Beat("opening", subject, opening, focus=opening_focus)]
    used = {opening}
    for k, beat in enumerate(middle):
        template = ZH_MIDDLE[k % len(ZH_MIDDLE)]
        subtitle = template.format(s=zh.get(beat.focus) or subject_zh)
        while subtitle in used:  # more scenes than nouns x templates: number them
            subtitle = f"{subtitle}（{len(used) + 1}）"
        used.add(subtitle)
        beats.append(Beat("middle", subject, subtitle, beat.repeat, beat.focus))
    last = ZH_LAST_CLAUSE.search(prompt)
    ending = f"{subject_zh}{last.group(1)}" if last and len(found) > 1 else \
        ZH_ENDING.format(s=subject_zh)
    beats.append(Beat("ending", subject, ending if ending not in used else f"{ending}。",
                      focus=premise.setting))
    return beats
