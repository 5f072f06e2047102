"""The studio's words in English and Chinese; the browser's language picks one."""
from __future__ import annotations

import gradio as gr

EN = {
    "create": "Create", "history": "History", "system": "System",
    "prompt": "Your film in one sentence", "style": "Style words (shared by every scene)",
    "scenes": "Scenes", "seconds": "Film length (seconds)", "plan": "Write storyboard",
    "planner_text": "The planner is writing…", "storyboard": "Storyboard (edit any cell; add, "
    "delete or move rows; a row left blank is deleted)",
    "quality": "Quality",
    "quality_info": "turbo: 4 steps, about 6x faster; full: 25 steps; auto: turbo when its "
                    "model is here",
    "render": "Render", "cancel": "Cancel", "progress": "Progress", "previews": "Scenes so far",
    "film": "Film", "downloads": "Downloads (mp4, srt, contact sheet)",
    "rerender_scene": "Scene to re-render", "new_seed": "New seed",
    "rerender": "Re-render this scene", "job": "Job", "refresh": "Refresh", "open": "Open",
    "delete": "Delete", "resume": "Resume (render the missing scenes)", "jobs": "Your jobs", "thumbnails": "Posters",
    "job_to_open": "Job id (copy it from the list)", "notes": "Notes",
    "keyframe_upload": "Keyframe image for the scene above (PNG, JPEG, WebP; up to 20 MB)",
    "use_keyframe": "Use as this scene's keyframe",
    "music_upload": "Background music (mp3, wav, m4a, ogg; up to 20 MB)",
    "use_music": "Use this music",
    "missing_model": "Missing model", "source": "From (hf: Hugging Face or HF_ENDPOINT's mirror)",
    "download": "Download",
    "aspect": "Format", "voice": "Narrator's voice", "hear_voice": "▶ Hear this voice",
    "voice_sample": "Voice sample", "subtitle_style": "Subtitle style",
    "subtitle_preview": "How subtitles will look", "subtitle_size": "Text size (x the style's)",
    "subtitle_colour": "Text colour", "subtitle_position": "Position (auto: the style's)",
    "search": "Search your films (prompt or title)", "films": "Your films (click one to open it)",
    "rerender_film": "Re-render the whole film", "confirm_delete": "Yes, delete it",
    "keep": "No, keep it", "all_jobs": "Every job as a list", "keyframes": "Keyframes so far",
    "choices": "Allowed values",
}
ZH = {
    "create": "创作", "history": "历史", "system": "系统",
    "prompt": "用一句话描述你的影片", "style": "风格词（所有场景共用）", "scenes": "场景数",
    "seconds": "影片时长（秒）", "plan": "生成分镜", "planner_text": "分镜生成中…",
    "storyboard": "分镜表（可编辑任意单元格；可增删、移动行；整行留空即删除）",
    "quality": "画质",
    "quality_info": "turbo：4 步，约快 6 倍；full：25 步；auto：有 turbo 模型时用 turbo",
    "render": "渲染", "cancel": "取消", "progress": "进度", "previews": "已完成的场景",
    "film": "影片", "downloads": "下载（mp4、字幕、缩略图总览）",
    "rerender_scene": "要重新渲染的场景", "new_seed": "换一个随机种子",
    "rerender": "重新渲染此场景", "job": "任务", "refresh": "刷新", "open": "打开",
    "delete": "删除", "resume": "继续（渲染未完成的场景）", "jobs": "我的任务", "thumbnails": "海报", "job_to_open": "任务编号（从列表复制）",
    "notes": "说明", "keyframe_upload": "上方场景的关键帧图片（PNG、JPEG、WebP，最大 20 MB）",
    "use_keyframe": "设为该场景的关键帧", "music_upload": "背景音乐（mp3、wav、m4a、ogg，最大 20 MB）",
    "use_music": "使用这段音乐",
    "missing_model": "缺少的模型", "source": "来源（hf：Hugging Face 或 HF_ENDPOINT 镜像；modelscope：魔搭）",
    "download": "下载",
    "aspect": "画幅", "voice": "旁白声音", "hear_voice": "▶ 试听",
    "voice_sample": "试听", "subtitle_style": "字幕样式", "subtitle_preview": "字幕预览",
    "subtitle_size": "字号（相对样式）", "subtitle_colour": "字幕颜色", "subtitle_position": "位置（auto：按样式）",
    "search": "搜索影片（提示词或标题）", "films": "我的影片（点击打开）",
    "rerender_film": "重新渲染整部影片", "confirm_delete": "确定删除", "keep": "保留",
    "all_jobs": "全部任务列表", "keyframes": "已生成的关键帧", "choices": "可选值",
}

i18n = gr.I18n(en=EN, zh=ZH, **{"zh-CN": ZH})
