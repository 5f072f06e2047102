"""From the prompt's own words to a beat per scene, in English and Chinese, without a model.

The embedded planner model (135M parameters) writes English only and loses the thread of a
long request. So the prompt is first split into its subjects ("a forest adventure with a river
and small animals" -> forest adventure / river / small animals), each scene gets a beat
(opening, one subject, ending), and the model only has to write one scene at a time about a
named thing. For a Chinese prompt the beats are also the Chinese subtitles, and a small
glossary gives the model an English gist of each subject.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

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
}
_GLOSSARY_KEYS = sorted(GLOSSARY, key=len, reverse=True)
# Glossary words that are actions or abstractions, not things a camera can turn to.
_NOT_SUBJECTS = {"寻找", "回家", "做饭", "成长", "探险", "冒险", "旅行", "旅程", "故事", "比赛", "未来",
                 "古代", "科幻", "魔法", "友谊"}


@dataclass(frozen=True)
class Beat:
    """What one scene is about: `subject_en` always, `subtitle_zh` for Chinese prompts."""

    role: str              # "opening", "middle" or "ending"
    subject_en: str        # an English gist for the model ("river", "forest adventure")
    subtitle_zh: str = ""  # a Chinese subtitle made from the prompt's own words
    repeat: bool = False   # this subject already had a scene of its own


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
        seen += [w for w in glossary_words(seen[0]) if w not in _NOT_SUBJECTS and w != seen[0]]
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


ZH_MIDDLE = ("镜头转向{s}", "{s}出现在画面中", "我们走近{s}，细细观察", "{s}在光影中慢慢变化",
             "{s}带来新的发现", "远远望去，{s}静静存在")
ZH_OPENING = "{s}的故事从这里开始"
ZH_ENDING = "{s}在余晖中落下帷幕"
ZH_LONG_TOPIC = 8  # characters: a longer topic is a sentence, used as it is


def plan_beats(prompt: str, language: str, count: int) -> list[Beat]:
    """`count` distinct beats: an opening, the prompt's subjects, an ending."""
    found = subjects(prompt, language)
    topic, rest = found[0], found[1:] or found
    english = (lambda s: to_english(s) or "the story") if language == "zh" else (lambda s: s)
    if count == 1:
        return [Beat("opening", english(" ".join(found)) if language != "zh" else
                     " and ".join(filter(None, map(to_english, found))) or "the story",
                     "，".join(found) if language == "zh" else "")]
    if language != "zh":
        middle = [Beat("middle", rest[k % len(rest)], repeat=k >= len(rest))
                  for k in range(count - 2)]
        return [Beat("opening", topic), *middle, Beat("ending", topic)]
    long_topic = len(topic) > ZH_LONG_TOPIC
    beats = [Beat("opening", english(topic), topic if long_topic else ZH_OPENING.format(s=topic))]
    used = {beats[0].subtitle_zh}
    for k in range(count - 2):
        subject = rest[k % len(rest)]
        template = ZH_MIDDLE[(k // len(rest) + k) % len(ZH_MIDDLE)]
        subtitle = template.format(s=subject)
        while subtitle in used:  # more scenes than subjects x templates: number them
            subtitle = f"{subtitle}（{len(used) + 1}）"
        used.add(subtitle)
        beats.append(Beat("middle", english(subject), subtitle, repeat=k >= len(rest)))
    ending_topic = "这个故事" if long_topic else topic
    beats.append(Beat("ending", english(topic), ZH_ENDING.format(s=ending_topic)))
    return beats
