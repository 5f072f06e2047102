"""The studio through its API (gradio_client) and its command line: plan, edit, render,
history, accounts and who may fetch which file."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from gradio.processing_utils import hash_file
from gradio.utils import get_upload_folder
from gradio_client import Client

from app import create_studio
from pipeline.history import History
from pipeline.render import RenderSettings
from tests.conftest import ROOT
from ui.access import Accounts

SMALL = RenderSettings(backend="animatic", width=128, height=72, fps=12)


def launched_studio(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    demo, launch = create_studio(tmp_path / "outputs", SMALL)
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    client = Client(url, verbose=False)
    yield client, url, tmp_path / "outputs"
    client.close()
    demo.close()


@pytest.fixture()
def studio(tmp_path, monkeypatch, studio_plans_by_rule):
    """A launched studio whose Plan button plans by rule (conftest.studio_plans_by_rule)."""
    yield from launched_studio(tmp_path, monkeypatch)


@pytest.fixture()
def studio_with_model(tmp_path, monkeypatch, embedded_chat):
    """A launched studio whose Plan button runs the embedded language model."""
    yield from launched_studio(tmp_path, monkeypatch)


def has_file(value) -> bool:
    """A real output value (a skipped output arrives as {"__type__": "update"})."""
    return isinstance(value, str) or (isinstance(value, dict) and bool(value.get("video")))


def COL(name: str) -> int:
    """A storyboard table column's index."""
    from pipeline.storyboard import TABLE_COLUMNS

    return TABLE_COLUMNS.index(name)


def plan(client: Client, prompt: str, scenes: int = 2, seconds: float = 4):
    job = client.submit(prompt, "cinematic", scenes, seconds, api_name="/plan")
    streamed = [o[0] for o in job]
    stream, table, job_id, notes = job.outputs()[-1]
    return streamed, table, job_id


def test_plan_edit_render_gives_previews_then_the_film(studio_with_model):
    client, _url, outputs = studio_with_model
    streamed, table, job_id = plan(client, "A fox explores a snowy village")
    assert len(streamed) > 3 and '"scenes"' in streamed[-1]  # the planner's text streamed in
    assert len(table["data"]) == 2 and job_id
    table["data"][1][0] = "The fox curls up by a warm fire."  # edit a cell
    job = client.submit(job_id, table, api_name="/render")
    updates = list(job)
    previews_seen = [len(u[1] or []) for u in updates]
    film_at = next(i for i, u in enumerate(updates) if has_file(u[2]))
    assert max(previews_seen[:film_at]) == 2  # both previews arrived before the film
    assert previews_seen.index(1) < previews_seen.index(2) < film_at
    progress, previews, film, files = updates[-1]
    assert Path(film["video"] if isinstance(film, dict) else film).is_file()
    assert sorted(Path(f).suffix for f in files) == [".mp4", ".png", ".srt"]
    record = json.loads((outputs / "history.json").read_text(encoding="utf-8"))
    job_record = next(iter(record["jobs"].values()))
    assert job_record["status"] == "done" and set(job_record["scenes"]) == {"1", "2"}
    assert job_record["storyboard"]["scenes"][1]["description"] == "The fox curls up by a warm fire."
    assert "(animatic)" in previews[0]["caption"]


@pytest.mark.parametrize("row, column, value, message", [
    (0, COL("duration"), "forever", "scene 1, duration: must be a number"),
    # the content filter reads what the /render API is given, not only the planner's prompt
    (1, COL("visual_prompt"), "a naked figure on the sand",
     "scene 2, visual_prompt: contains a blocked term"),
])
def test_a_bad_cell_is_named_and_nothing_is_lost(studio, row, column, value, message):
    client, _url, outputs = studio
    _, table, job_id = plan(client, "A kite over a beach")
    before = json.loads((outputs / "history.json").read_text(encoding="utf-8"))
    table["data"][row][column] = value
    with pytest.raises(Exception, match=message):
        client.predict(job_id, table, api_name="/render")
    after = json.loads((outputs / "history.json").read_text(encoding="utf-8"))
    assert after == before
    assert not list(outputs.glob("**/*.mp4"))


def test_history_lists_opens_and_deletes_jobs(studio):
    client, _url, outputs = studio
    _, table, job_id = plan(client, "A lighthouse at dawn")
    rows, _posters = client.predict(api_name="/history")
    assert [r[0] for r in rows["data"]] == [job_id] and rows["data"][0][3] == "planned"
    opened = client.predict(job_id, api_name="/open_job")
    assert opened[0]["data"] == table["data"] and opened[1] == job_id
    job_dir = Path(json.loads((outputs / "history.json").read_text())["jobs"]["1"]["dir"])
    assert job_dir.is_dir()
    rows, _ = client.predict(job_id, api_name="/delete_job")
    assert rows["data"] == [] and not job_dir.exists()


def test_listen_without_accounts_refuses_to_start(tmp_path):
    done = subprocess.run([sys.executable, "app.py", "--listen"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "need accounts" in done.stderr and "adduser" in done.stderr


def test_adduser_stores_a_salted_hash_not_the_password(tmp_path):
    users = tmp_path / "users.json"
    for name in ("alice", "bob"):
        done = subprocess.run([sys.executable, "app.py", "adduser", name, "--auth", str(users),
                               "--password-stdin"], cwd=ROOT, input="correct horse battery\n",
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
    text = users.read_text()
    assert "correct horse" not in text
    stored = json.loads(text)
    assert stored["alice"]["hash"] != stored["bob"]["hash"]  # salted
    accounts = Accounts.load(users)
    assert accounts.check("alice", "correct horse battery") and not accounts.check("alice", "x")
    short = subprocess.run([sys.executable, "app.py", "adduser", "carol", "--auth", str(users),
                            "--password-stdin"], cwd=ROOT, input="short\n", capture_output=True,
                           text=True, timeout=120)
    assert short.returncode == 2 and "at least 8" in short.stderr


def fetch(url: str, cookie: str | None = None) -> int:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def login(url: str, name: str, password: str) -> str:
    data = f"username={name}&password={password}".encode()
    request = urllib.request.Request(url + "login", data=data, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        cookies = response.headers.get_all("set-cookie")
    return "; ".join(c.split(";")[0] for c in cookies)


def studio_for_alice_and_bob(tmp_path, monkeypatch):  # noqa: ANN001, ANN201
    """A studio with accounts alice and bob, launched; returns (demo, url)."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    accounts = Accounts.load(tmp_path / "users.json")
    accounts.add("alice", "alice-password")
    accounts.add("bob", "bob-password")
    demo, launch = create_studio(tmp_path / "outputs", SMALL, accounts)
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    return demo, url


def test_each_person_sees_and_fetches_only_their_own_files(tmp_path, monkeypatch,
                                                          studio_plans_by_rule):
    demo, url = studio_for_alice_and_bob(tmp_path, monkeypatch)
    try:
        with pytest.raises(Exception):
            Client(url, verbose=False)  # no login, no API
        assert fetch(url + "gradio_api/info") in (401, 403)
        alice = Client(url, auth=["alice", "alice-password"], verbose=False)
        bob = Client(url, auth=["bob", "bob-password"], verbose=False)
        _, table, job_id = plan(alice, "A fox in the snow")
        *_, (_progress, _previews, film, files) = list(alice.submit(job_id, table,
                                                                    api_name="/render"))
        film_file = next(f for f in files if f.endswith(".mp4"))
        original = next((tmp_path / "outputs" / "alice").rglob("film.mp4"))
        # The URL the browser got: Gradio's cached copy of alice's film.
        served = Path(get_upload_folder()) / hash_file(original) / "film.mp4"
        assert served.is_file()
        alice_cookie = login(url, "alice", "alice-password")
        bob_cookie = login(url, "bob", "bob-password")
        for target in (served, original):
            link = f"{url}gradio_api/file={target}"
            assert fetch(link, alice_cookie) == 200
            assert fetch(link, bob_cookie) == 404
            assert fetch(link) in (401, 403, 404)
        assert bob.predict(api_name="/history")[0]["data"] == []
        with pytest.raises(Exception, match="does not exist"):
            bob.predict(job_id, api_name="/open_job")
        with pytest.raises(Exception, match="does not exist"):
            bob.predict(job_id, table, api_name="/render")
        assert Path(film_file).name == "film.mp4"
        alice.close()
        bob.close()
    finally:
        demo.close()


def test_keyframe_uploads_are_checked_and_paths_cannot_escape_the_job(studio, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    client, _url, outputs = studio
    _, table, job_id = plan(client, "A red barn in a field")
    picture = tmp_path / "barn.png"
    Image.new("RGB", (320, 180), (180, 30, 30)).save(picture)
    edited = client.predict(job_id, table, 1, handle_file(str(picture)),
                            api_name="/upload_keyframe")
    assert edited["data"][0][COL("keyframe")] == "uploads/scene_01.png"
    for name, content in (("notes.png", b"not an image"), ("notes.txt", b"hello"),
                          ("empty.png", b"")):
        bad = tmp_path / name
        bad.write_bytes(content)
        with pytest.raises(Exception, match="scene 1, keyframe|Invalid file type"):
            client.predict(job_id, table, 1, handle_file(str(bad)), api_name="/upload_keyframe")
    for escape in ("../../../../etc/passwd", "/etc/hostname", "uploads/../../other.png"):
        table["data"][0][COL("keyframe")] = escape
        with pytest.raises(Exception, match="is not an image uploaded to this job"):
            client.predict(job_id, table, api_name="/render")
    *_, (_progress, _previews, film, _files) = list(client.submit(job_id, edited,
                                                                   api_name="/render"))
    assert has_file(film)
    scene = json.loads(next(outputs.rglob("scene_01.json")).read_text())
    assert scene["keyframe"] == "upload: scene_01.png"


def test_one_scene_is_re_rendered_and_the_film_re_assembled(studio):
    client, _url, outputs = studio
    _, table, job_id = plan(client, "A paper boat on a rainy street", scenes=3, seconds=9)
    list(client.submit(job_id, table, api_name="/render"))
    clips = {n: next(outputs.rglob(f"scene_0{n}.mp4")) for n in (1, 2, 3)}
    before = {n: p.read_bytes() for n, p in clips.items()}
    film = next(outputs.rglob("film.mp4"))
    film_before = film.stat().st_mtime_ns
    table["data"][1][COL("narration")] = "The boat spins in a puddle."  # said and subtitled
    *_, (progress, previews, new_film, _files) = list(client.submit(
        job_id, table, 2, True, api_name="/rerender_scene"))
    assert has_file(new_film) and "film ready" in progress and len(previews) == 3
    assert clips[1].read_bytes() == before[1] and clips[3].read_bytes() == before[3]
    assert clips[2].read_bytes() != before[2]
    assert film.stat().st_mtime_ns > film_before
    srt = next(outputs.rglob("film.srt")).read_text(encoding="utf-8")
    assert "The boat spins in a puddle." in srt


def test_system_tab_names_the_device_and_how_to_get_missing_models():
    from ui.studio import Studio

    text = Studio.system_markdown()
    assert "**Device:** CPU" in text
    assert "| stabilityai/stable-video-diffusion-img2vid-xt | video | no |" in text
    assert "hf auth login" in text
    assert "| HuggingFaceTB/SmolLM2-135M-Instruct | llm | yes |" in text


def test_uploads_over_the_size_limit_are_refused(studio, tmp_path):
    from gradio_client import handle_file

    client, _url, _outputs = studio
    _, table, job_id = plan(client, "A red barn in a field", scenes=1, seconds=3)
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\x89PNG" + bytes(21 * 2**20))
    with pytest.raises(Exception):
        client.predict(job_id, table, 1, handle_file(str(huge)), api_name="/upload_keyframe")
    assert not list(_outputs.rglob("uploads/*"))


def test_cancel_stops_the_render_and_keeps_finished_scenes(tmp_path, monkeypatch,
                                                          studio_plans_by_rule,
                                                          tiny_svd, tiny_text_to_image):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    settings = RenderSettings(backend="svd", video_model=str(tiny_svd),
                              image_model=str(tiny_text_to_image), width=64, height=64, steps=8,
                              frames=3, fps=4)
    demo, launch = create_studio(tmp_path / "outputs", settings)
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    try:
        client = Client(url, verbose=False)
        _, table, job_id = plan(client, "A lantern in the night", scenes=3, seconds=6)
        job = client.submit(job_id, table, api_name="/render")
        for update in job:
            if len(update[1] or []) == 1:  # the first preview is on screen: press Cancel
                client.predict(api_name="/cancel")
                break
        deadline = time.time() + 60
        while not job.done() and time.time() < deadline:
            time.sleep(0.2)
        history = json.loads((tmp_path / "outputs" / "history.json").read_text())
        record = next(iter(history["jobs"].values()))
        for _ in range(50):  # the worker notices within one denoising step
            if record["status"] == "cancelled":
                break
            time.sleep(0.2)
            history = json.loads((tmp_path / "outputs" / "history.json").read_text())
            record = next(iter(history["jobs"].values()))
        assert record["status"] == "cancelled"
        clips = sorted(p.name for p in (tmp_path / "outputs").rglob("scene_0?.mp4"))
        assert clips[0] == "scene_01.mp4" and "scene_03.mp4" not in clips
        assert not list((tmp_path / "outputs").rglob("film.mp4"))
        client.close()
    finally:
        demo.close()


def in_queue(job, timeout_s: float = 60) -> None:
    """Wait until the server has put a submitted job in its queue (or started it)."""
    from gradio_client.utils import Status

    deadline = time.time() + timeout_s
    while job.status().code in (Status.STARTING, Status.JOINING_QUEUE):
        assert time.time() < deadline, "the job never joined the queue"
        time.sleep(0.02)


def test_ten_people_at_once_all_finish_in_queue_order_and_stay_apart(tmp_path, monkeypatch,
                                                                     studio_plans_by_rule):
    import threading

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-cache"))
    accounts = Accounts.load(tmp_path / "users.json")
    names = [f"user{n}" for n in range(10)]
    for name in names:
        accounts.users[name] = {"hash": __import__("bcrypt").hashpw(
            f"{name}-password".encode(), __import__("bcrypt").gensalt(4)).decode(), "admin": False}
    demo, launch = create_studio(tmp_path / "outputs", SMALL, accounts)
    _, url, _ = launch(prevent_thread_lock=True, server_port=None)
    try:
        clients = {n: Client(url, auth=[n, f"{n}-password"], verbose=False) for n in names}
        planned: dict[str, tuple] = {}

        def plan_one(name: str) -> None:
            _, table, job_id = plan(clients[name], f"A kite flown by {name}", scenes=1,
                                    seconds=2)
            planned[name] = (table, job_id)

        threads = [threading.Thread(target=plan_one, args=(n,)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(planned) == 10
        finished: dict[str, float] = {}
        results: dict[str, tuple] = {}

        def render_one(name: str, job) -> None:
            results[name] = list(job)[-1]
            finished[name] = time.perf_counter()

        threads = []
        for name in names:  # join the queue one after another: each once the last is in it
            table, job_id = planned[name]
            job = clients[name].submit(job_id, table, api_name="/render")
            threads.append(threading.Thread(target=render_one, args=(name, job)))
            threads[-1].start()
            in_queue(job)
        for thread in threads:
            thread.join()
        assert all(has_file(results[n][2]) for n in names)  # every job made its film
        assert sorted(names, key=finished.get) == names  # in the order they queued
        cookies = {n: login(url, n, f"{n}-password") for n in names}
        films = {n: next((tmp_path / "outputs" / n).rglob("film.mp4")) for n in names}
        for n, other in zip(names, names[1:] + names[:1]):
            assert fetch(f"{url}gradio_api/file={films[n]}", cookies[n]) == 200
            assert fetch(f"{url}gradio_api/file={films[n]}", cookies[other]) == 404
            history = clients[n].predict(api_name="/history")[0]["data"]
            assert [row[0] for row in history] == [planned[n][1]]
        for client in clients.values():
            client.close()
    finally:
        demo.close()


def test_an_interrupted_job_resumes_with_only_its_missing_scenes(studio):
    client, _url, outputs = studio
    _, table, job_id = plan(client, "A snowman in a garden", scenes=2, seconds=6)
    # Render scene 1 alone: the film cannot be assembled yet, and the job says so.
    with pytest.raises(Exception, match="scene 2: its clip scene_02.mp4 is missing"):
        client.predict(job_id, table, 1, False, api_name="/rerender_scene")
    first = next(outputs.rglob("scene_01.mp4"))
    kept = first.read_bytes()
    history = History(outputs)
    history.update(job_id, status="rendering", pid=2**22 + 12345)  # a render whose process died
    assert history.mark_interrupted() == [job_id]
    rows, _ = client.predict(api_name="/history")
    assert rows["data"][0][3] == "interrupted"
    *_, (progress, previews, film, _files) = list(client.submit(job_id, api_name="/resume"))
    assert has_file(film) and len(previews) == 2 and first.read_bytes() == kept
    assert History(outputs).get(job_id)["status"] == "done"


def test_music_is_checked_before_use_and_goes_into_the_film(studio, tmp_path):
    from gradio_client import handle_file

    from tests.test_assemble import sine_wav

    client, _url, outputs = studio
    _, table, job_id = plan(client, "A windmill at sunset", scenes=1, seconds=3)
    corrupt = tmp_path / "song.mp3"
    corrupt.write_bytes(b"ID3" + bytes(range(256)) * 8)
    with pytest.raises(Exception, match="song.mp3 is not audio"):
        client.predict(job_id, handle_file(str(corrupt)), api_name="/upload_music")
    assert client.predict(job_id, handle_file(str(sine_wav(tmp_path / "tune.wav", 1.0))),
                          api_name="/upload_music") == "music: music.wav"
    *_, (_p, _v, film, _f) = list(client.submit(job_id, table, api_name="/render"))
    from pipeline.video_io import probe

    assert probe(next(outputs.rglob("film.mp4")))["audio"] == ["aac"]


def upload(url: str, cookie: str, name: str, content: bytes) -> list[str]:
    """POST one file to Gradio's upload route as a browser does; returns the cached paths."""
    boundary = "storyreel-test-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST", headers={
        "Cookie": cookie, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_an_upload_is_served_only_to_the_person_who_uploaded_it(tmp_path, monkeypatch):
    import io

    from PIL import Image

    demo, url = studio_for_alice_and_bob(tmp_path, monkeypatch)
    try:
        alice_cookie = login(url, "alice", "alice-password")
        bob_cookie = login(url, "bob", "bob-password")
        picture = io.BytesIO()
        Image.new("RGB", (32, 32), (200, 100, 50)).save(picture, format="PNG")
        [cached] = upload(url, alice_cookie, "keyframe.png", picture.getvalue())
        assert Path(cached).is_file() and Path(cached).is_relative_to(get_upload_folder())
        link = f"{url}gradio_api/file={cached}"
        assert fetch(link, alice_cookie) == 200
        assert fetch(link, bob_cookie) == 404
        # A cached file nobody was given is nobody's: denied by default.
        stray = Path(get_upload_folder()) / ("0" * 40) / "stray.png"
        stray.parent.mkdir(parents=True)
        stray.write_bytes(picture.getvalue())
        assert fetch(f"{url}gradio_api/file={stray}", alice_cookie) == 404
    finally:
        demo.close()


def test_the_voice_picker_speaks_a_sample_and_the_film_keeps_its_voice_and_format(studio):
    import wave

    client, _url, outputs = studio
    sample = client.predict("espeak:cmn", "", api_name="/hear_voice")
    with wave.open(sample) as heard:
        assert heard.getnframes() / heard.getframerate() > 1.0  # the Chinese sample sentence
    with pytest.raises(Exception, match="robot"):
        client.predict("robot:x", "", api_name="/hear_voice")
    job = client.submit("A fox explores a snowy village", "cinematic", 1, 3, "9:16",
                        "espeak:en-gb-x-rp", api_name="/plan")
    _, table, job_id, _ = list(job)[-1]
    *_, (_progress, _previews, film, _files) = list(client.submit(
        job_id, table, "auto", "9:16", "espeak:en-gb-x-rp", "word-highlight", 1.5, "#ffe066",
        "top", api_name="/render"))
    assert has_file(film), _progress
    details = json.loads(next(outputs.rglob("film.json")).read_text(encoding="utf-8"))
    assert details["aspect"] == "9:16" and details["narration"]["voice"] == "en-gb-x-rp"
    assert details["subtitle_style"] == {**details["subtitle_style"], "name": "word-highlight",
                                         "size": 1.5, "colour": "#ffe066", "position": "top"}
    opened = client.predict(job_id, api_name="/open_job")
    assert opened[-2] == "9:16" and opened[-1] == "espeak:en-gb-x-rp"


def test_an_edited_narration_lengthens_its_scene_in_the_table(tmp_path):
    from pipeline.history import History
    from pipeline.jobs import Jobs
    from tests.conftest import make_board
    from ui.studio import Studio

    board = make_board({"duration": 1.5, "narration": "A fox."}, {"duration": 2.0})
    history = History(tmp_path / "outputs")
    job = history.create("local", "a fox", board.to_dict())
    studio = Studio(Jobs(history, SMALL))
    rows = board.to_rows()
    assert not isinstance(studio.fit_table(job["id"], rows), list)  # nothing to change
    rows[0][COL("narration")] = "A small fox walks slowly across the frozen river at dawn."
    fitted = studio.fit_table(job["id"], rows)
    assert fitted[0][COL("duration")] > 3 and fitted[1][COL("duration")] == 2.0
    assert fitted[0][COL("narration")] == rows[0][COL("narration")]


def test_one_history_command_line_jobs_for_everyone_or_their_account(tmp_path):
    """Without accounts, History lists every job made on this machine (CLI ones too); with
    accounts, a CLI job belongs to the account named by --user, or, without one, to admins."""
    from types import SimpleNamespace

    from pipeline import manifest
    from pipeline.history import History
    from pipeline.jobs import Jobs
    from tests.conftest import make_board
    from ui.studio import Studio

    history = History(tmp_path / "outputs")
    board = make_board({}, title="Lanterns")
    nobody = manifest.start(history, board, tmp_path / "a", SMALL, tmp_path, prompt="lanterns")
    alices = manifest.start(history, board, tmp_path / "b", SMALL, tmp_path, prompt="kites",
                            user="alice")
    studio_job = history.create("local", "a studio film", board.to_dict())

    def seen(studio: Studio, name: str | None, query: str = "") -> set[str]:
        request = SimpleNamespace(username=name, session_hash="s")
        return set(studio.library(query, request)[1])

    alone = Studio(Jobs(history, SMALL))
    assert seen(alone, None) == {nobody.job_id, alices.job_id, studio_job["id"]}
    assert seen(alone, None, "KITES") == {alices.job_id}  # search over prompts and titles
    for name, password, admin in (("alice", "a-long-password", False),
                                  ("bob", "b-long-password", False),
                                  ("boss", "c-long-password", True)):
        Accounts.load(tmp_path / "users.json").add(name, password, admin=admin)
    team = Studio(Jobs(history, SMALL), Accounts.load(tmp_path / "users.json"))
    assert seen(team, "alice") == {alices.job_id}
    assert seen(team, "bob") == set()
    assert seen(team, "boss") == {nobody.job_id, alices.job_id, studio_job["id"]}


def test_the_cast_panel_keeps_names_pictures_and_strengths_with_the_job(studio, tmp_path):
    """The planner's cast arrives with the storyboard; the Cast panel renames a member (the
    table follows), uploads their picture and sets its strength; a member without a look is
    named; History keeps the cast, and a render keeps it too."""
    from PIL import Image

    from gradio_client import handle_file

    client, _url, outputs = studio
    _, table, job_id = plan(client, "A fox explores a snowy village")
    record = json.loads((outputs / "history.json").read_text(encoding="utf-8"))["jobs"]["1"]
    assert [m["name"] for m in record["storyboard"]["cast"]] == ["Fox"]
    assert all(row[COL("cast")] == "Fox" for row in table["data"])
    face = tmp_path / "fox.png"
    Image.new("RGB", (64, 64), (220, 120, 30)).save(face)
    empty = ["", "", 0.6, None] * 3
    kept = client.predict(job_id, table, "Foxy", "a red fox with a white tail tip", 0.3,
                          handle_file(str(face)), *empty, None, 0.5, api_name="/save_cast")
    assert all(row[COL("cast")] == "Foxy" for row in kept[0]["data"])  # renamed in the table
    assert list(kept[1:4]) == ["Foxy", "a red fox with a white tail tip", 0.3] and kept[4]
    stored = json.loads((outputs / "history.json").read_text(encoding="utf-8"))["jobs"]["1"]
    member = stored["storyboard"]["cast"][0]
    assert member["reference"] == "uploads/cast_01.png" and member["strength"] == 0.3
    with pytest.raises(Exception, match="cast 2, look: is empty"):
        client.predict(job_id, kept[0], "Foxy", "a red fox", 0.3, handle_file(str(face)),
                       "Owl", "", 0.6, None, *["", "", 0.6, None] * 2, None, 0.5,
                       api_name="/save_cast")
    # A render keeps the cast the panel saved (the picture stays the uploaded one).
    list(client.submit(job_id, kept[0], api_name="/render"))
    after = json.loads((outputs / "history.json").read_text(encoding="utf-8"))["jobs"]["1"]
    assert after["storyboard"]["cast"][0]["reference"] == "uploads/cast_01.png"
    assert after["status"] == "done"
