"""Scenes rendered in parallel on Ray: one worker per GPU, on this machine or a LAN cluster.

    workers = RayWorkers.start(gpus="all")                  # a local Ray over this machine's GPUs
    workers = RayWorkers.start(cluster="10.0.0.5:6379")     # join a running Ray cluster
    for event in render_storyboard(board, out, settings, workers=workers): ...

Each worker is a single-threaded actor holding one GPU (`num_gpus=1`: Ray sets its
CUDA_VISIBLE_DEVICES, so it sees its card as cuda:0) and keeps its keyframe and video pipelines
warm between films, with a compile cache folder of its own. A worker runs the same
`SceneRenderer` as the in-process path. A worker on the head's own machine returns a scene's
frames through Ray's object store (shared memory there) and the head encodes them on a thread
of its own while that GPU makes its next scene, as the in-process path does; a worker on
another machine encodes its clip itself, so only the small mp4 crosses the network.
pipeline/render.py (the head) writes each scene into the job folder. Progress goes
back through a Ray queue; cancel is `ray.cancel`, which the worker reads after every denoising
step. A worker whose process dies is restarted by Ray once, and its scene is sent again.

Ray is optional (requirements-ray.txt); this is the only module that imports it.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.files import sweep_partials
from pipeline.events import Event, Notice
from pipeline.scene_render import (RenderCancelled, RenderedScene, RenderError, SceneFrames,
                                   SceneRenderer, SceneTask, VideoChoice, WorkerLost,
                                   finish_scene)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "bash scripts/setup.sh --with-ray (or: pip install -r requirements-ray.txt)"


class RayUnavailable(RuntimeError):
    """Ray is not installed, or it found no GPU to put a worker on; the message says what to do."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable(f"rendering on several GPUs needs Ray, an optional install: "
                             f"{INSTALL}") from None
    return ray


def parse_gpus(value: str | int | None) -> int | str | None:
    """`--gpus` as given: a count (1 or more), "all", or None (no Ray: render in-process)."""
    if value is None or value == "":
        return None
    if str(value).strip().lower() == "all":
        return "all"
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"--gpus {value!r}: give a number of GPUs (1 or more) or 'all'") from None
    if count < 1:
        raise ValueError(f"--gpus {count}: give a number of GPUs (1 or more) or 'all'")
    return count


class SceneActor:
    """One GPU's worker (created through `ray.remote`): warm models, one scene at a time."""

    def __init__(self, index: int, progress: Any, env: dict[str, str] | None = None):
        import ray

        os.environ.update(env or {})
        _own_compile_cache(index)  # before anything compiles; several processes never share one
        gpus = ray.get_gpu_ids()
        self.name = f"{socket.gethostname()} GPU {gpus[0] if gpus else index}"
        self.progress = progress
        self.scratch = Path(tempfile.gettempdir()) / f"storyreel-worker-{index}"
        sweep_partials(self.scratch)  # what a killed predecessor left
        self.renderer: SceneRenderer | None = None

    def describe(self) -> tuple[str, int, str]:
        """(this worker's name: its node and GPU, its process id, its Ray node's id)."""
        import ray

        return self.name, os.getpid(), ray.get_runtime_context().get_node_id()

    def prepare(self, settings: Any, needs_images: bool) -> VideoChoice:
        self.renderer = SceneRenderer(settings, self._emit, self._cancelled, self.scratch,
                                      self.name)
        try:
            return self.renderer.prepare(needs_images)
        except RenderError as err:
            raise RenderError(f"{self.name}: {err}") from None

    def render_scene(self, task: SceneTask) -> RenderedScene:
        """The whole scene, its clip encoded here (a worker on another machine than the head)."""
        return self._prepared().render_scene(task)

    def make_frames(self, task: SceneTask) -> SceneFrames:
        """The scene's frames, for the head to encode (a worker on the head's machine)."""
        return self._prepared().make_frames(task)

    def film_done(self) -> None:
        """The film is over: unlock the page-locked memory its clips' frames were copied into."""
        from pipeline.animate import release_frame_buffers

        release_frame_buffers()

    def _prepared(self) -> SceneRenderer:
        if self.renderer is None:
            raise RenderError(f"{self.name}: not prepared for this film")
        return self.renderer

    def _emit(self, event: Event) -> None:
        self.progress.put_nowait(event)

    @staticmethod
    def _cancelled() -> bool:
        import ray

        return ray.get_runtime_context().is_canceled()


def _own_compile_cache(index: int) -> None:
    """This worker's compile cache folder, seeded from this machine's cache when it is new (so a
    model compiled in-process before starts warm here)."""
    from models.speed import use_persistent_compile_cache

    shared = Path(use_persistent_compile_cache())
    own = shared.parent / f"{shared.name}-worker-{index}"
    if not own.exists() and shared.is_dir():
        shutil.copytree(shared, own, ignore=shutil.ignore_patterns("*.lock", "*.tmp*"),
                        dirs_exist_ok=True)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(own)


@dataclass
class _Worker:
    name: str
    pid: int
    node: str                    # its Ray node's id
    actor: Any
    beside_head: bool = False    # on the head's machine: it hands frames over, the head encodes
    ready: bool = False          # prepared for the film now rendering
    preparing: Any = None        # a prepare call in flight after a restart
    running: Any = None          # the scene call in flight


@dataclass
class StartTimes:
    ray_s: float                 # ray.init (or joining the cluster)
    workers_s: float             # the workers' processes up, each holding its GPU
    warmup_s: float | None = None  # the first film's prepare: models loaded on every worker


class RayWorkers:
    """The Ray path of `render_storyboard` (see pipeline/render.py's SceneWorkers)."""

    def __init__(self, ray: Any, workers: list[_Worker], progress: Any, times: StartTimes,
                 started_ray: bool):
        self.ray, self.workers, self.progress, self.times = ray, workers, progress, times
        self.started_ray = started_ray
        self.lock = threading.Lock()     # one film at a time on the pool
        self.emit: Callable[[Event], None] = lambda event: None
        self.film: tuple[Any, bool] | None = None  # (settings, needs images) of the film now
        self.running: dict[Any, tuple[_Worker, int]] = {}  # call -> (worker, scene)
        self.encoder = ThreadPoolExecutor(2, thread_name_prefix="storyreel-encode")
        self.encoding: dict[Future[RenderedScene], int] = {}  # clips encoding here -> scene
        self.scratch: Path | None = None  # the job folder, where clips are encoded here
        head = ray.get_runtime_context().get_node_id()
        for worker in workers:
            worker.beside_head = worker.node == head

    @classmethod
    def start(cls, gpus: int | str = "all", cluster: str | None = None,
              worker_env: list[dict[str, str]] | None = None) -> RayWorkers:
        """Start (or join) Ray and one worker per GPU: `gpus` a count or "all" (every GPU Ray
        sees), `cluster` the address of a running cluster's head. `worker_env` gives each
        worker extra environment variables (a node's model folder, for example)."""
        ray = import_ray()
        began = time.perf_counter()
        started_ray = False
        if not ray.is_initialized():
            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if cluster:  # the workers on other machines get this checkout's code
                options["runtime_env"] = {"py_modules": [str(ROOT / "pipeline"),
                                                         str(ROOT / "models")]}
            else:
                path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                       if p)
                options["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
            ray.init(address=cluster or None, **options)
            started_ray = True
        ray_s = time.perf_counter() - began
        available = int(ray.cluster_resources().get("GPU", 0))
        count = available if gpus == "all" else int(gpus)
        if available == 0 or count > available:
            where = f"the Ray cluster at {cluster}" if cluster else "this machine"
            raise RayUnavailable(f"--gpus {gpus}: {where} has {available} GPU(s) Ray can use")
        from ray.util.queue import Queue

        began = time.perf_counter()
        progress = Queue(actor_options={"num_cpus": 0})
        remote = ray.remote(num_gpus=1, num_cpus=1, max_restarts=1)(SceneActor)
        actors = [remote.remote(i, progress, (worker_env or [{}] * count)[i])
                  for i in range(count)]
        workers = [_Worker(*ray.get(actor.describe.remote()), actor=actor) for actor in actors]
        times = StartTimes(ray_s, time.perf_counter() - began)
        log.info("Ray: %d worker(s) (%s) in %.1f s + %.1f s", count,
                 ", ".join(w.name for w in workers), times.ray_s, times.workers_s)
        return cls(ray, workers, progress, times, started_ray)

    # ---- SceneWorkers --------------------------------------------------------------------

    def prepare(self, settings: Any, needs_images: bool, emit: Callable[[Event], None],
                cancel: threading.Event, out_dir: Path) -> VideoChoice:
        if not self.lock.acquire(blocking=False):
            emit(Notice("waiting for the film rendering now to finish (the GPUs are busy)"))
            self.lock.acquire()
        self.emit, self.film, self.running = emit, (settings, needs_images), {}
        self.scratch = out_dir
        began = time.perf_counter()
        calls = {id(w): w.actor.prepare.remote(settings, needs_images) for w in self.workers}
        choices: dict[int, VideoChoice] = {}
        problems: list[str] = []
        for worker in self.workers:
            worker.ready, worker.preparing, worker.running = False, None, None
            try:
                choices[id(worker)] = self.ray.get(calls[id(worker)])
            except self.ray.exceptions.RayActorError:
                problems.append(f"{worker.name}: the worker has stopped")
            except self.ray.exceptions.RayTaskError as err:
                problems.append(str(_cause(err)))
        if not choices:
            raise RenderError("no worker can render this film: " + "; ".join(problems))
        best = max(choices.values(), key=_rank)
        notes = list(dict.fromkeys(n for c in choices.values() if c.same_film(best)
                                   for n in c.notices))
        for worker in self.workers:
            choice = choices.get(id(worker))
            if choice is not None and choice.same_film(best):
                worker.ready = True
            elif choice is not None:
                why = "; ".join(choice.notices) or f"it would render with {choice.backend}"
                problems.append(f"{worker.name}: {why}")
        for problem in problems:
            notes.append(f"left out of this film: {problem}")
        if self.times.warmup_s is None:
            self.times.warmup_s = time.perf_counter() - began
        return VideoChoice(best.backend, best.quality, best.video_model, best.steps,
                           best.image_model, best.worker, tuple(notes))

    def idle(self) -> list[str]:
        return [w.name for w in self.workers if w.ready and w.running is None]

    def submit(self, worker: str, task: SceneTask) -> None:
        chosen = next(w for w in self.workers if w.name == worker)
        method = chosen.actor.make_frames if chosen.beside_head else chosen.actor.render_scene
        chosen.running = method.remote(task)
        self.running[chosen.running] = (chosen, task.number)

    def finished(self, timeout: float) -> list[tuple[int, RenderedScene | BaseException]]:
        self._check_restarts()
        calls = list(self.running)
        ready = []
        if calls:
            ready, _ = self.ray.wait(calls, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = self.ray.wait(calls, num_returns=len(calls), timeout=0)
        elif self.encoding:
            wait(list(self.encoding), timeout=timeout, return_when=FIRST_COMPLETED)
        else:
            time.sleep(timeout)
        self._relay_progress()  # a scene's progress before its end
        ended: list[tuple[int, RenderedScene | BaseException]] = []
        for call in ready:
            worker, number = self.running.pop(call)
            worker.running = None  # free for the next scene, even while its clip encodes here
            result = self._result(worker, call)
            if isinstance(result, SceneFrames):
                settings, _ = self.film
                clip = self.encoder.submit(finish_scene, result, settings.fps, self.scratch,
                                           self.emit)
                self.encoding[clip] = number
            else:
                ended.append((number, result))
        for clip in [c for c in self.encoding if c.done()]:
            ended.append((self.encoding.pop(clip), clip.exception() or clip.result()))
        return ended

    def cancel(self) -> None:
        for call in self.running:  # a clip encoding here is finished
            self.ray.cancel(call)

    def release(self) -> None:
        self._relay_progress()
        self.running, self.film = {}, None
        for worker in self.workers:
            worker.running = None
            worker.actor.film_done.remote()  # after the film's calls, before the next film's
        self.emit = lambda event: None
        self.lock.release()

    # ---- the rest ------------------------------------------------------------------------

    def shutdown(self) -> None:
        """End the workers (their GPU memory is freed with their processes), and Ray if this
        process started it."""
        for worker in self.workers:
            self.ray.kill(worker.actor)
        self.encoder.shutdown(wait=True)
        if self.started_ray:
            self.ray.shutdown()

    def _result(self, worker: _Worker, call: Any) -> RenderedScene | SceneFrames | BaseException:
        ray = self.ray
        try:
            return ray.get(call)
        except ray.exceptions.TaskCancelledError:
            return RenderCancelled()
        except ray.exceptions.RayActorError:
            worker.ready = False  # Ray restarts it once; it is prepared again before new scenes
            if self.film is not None:
                worker.preparing = worker.actor.prepare.remote(*self.film)
            return WorkerLost(f"{worker.name} stopped while rendering")
        except ray.exceptions.RayTaskError as err:
            return _cause(err)

    def _check_restarts(self) -> None:
        """A restarted worker rejoins once it is prepared; one that cannot is left out."""
        for worker in self.workers:
            if worker.preparing is None:
                continue
            done, _ = self.ray.wait([worker.preparing], timeout=0)
            if not done:
                continue
            try:
                self.ray.get(worker.preparing)
                worker.name, worker.pid, worker.node = self.ray.get(
                    worker.actor.describe.remote())
                worker.ready = True
            except (self.ray.exceptions.RayActorError, self.ray.exceptions.RayTaskError) as err:
                self.emit(Notice(f"{worker.name} did not come back ({type(err).__name__}); the "
                                 f"other workers go on"))
            worker.preparing = None

    def _relay_progress(self) -> None:
        size = self.progress.qsize()
        if size:
            for event in self.progress.get_nowait_batch(size):
                self.emit(event)


def _rank(choice: VideoChoice) -> tuple[bool, bool, bool]:
    """Generated video over an animatic, turbo over full, a keyframe model over none."""
    return choice.backend == "svd", choice.quality == "turbo", choice.image_model is not None


def _cause(err: BaseException) -> BaseException:
    """The exception a worker raised, out of Ray's wrapper."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err
