"""Training in a child process (no Qt here).

The trainer's Python loop, its checkpoint pickling and its validation hold
the GIL for long stretches; in the window's process that stalls the event
loop for hundreds of milliseconds.  So the window runs the real
``model.ugaar.trainer.Trainer`` in a spawned process and talks to it over a
pipe: events come back as JSON dicts, ``"stop"`` goes the other way and
calls ``Trainer.stop()`` (ends cleanly after the current step).
"""
from __future__ import annotations

import multiprocessing as mp
import threading
import traceback
from typing import Any, Callable, Optional

from model.progress import CancelToken


BACKGROUND_NICE = 10


def _child(conn: Any, mode: str, config: Optional[dict[str, Any]], features: Any, run_dir: str) -> None:
    try:
        import os
        os.nice(BACKGROUND_NICE)  # the window's event loop keeps the CPU when both want it
    except (AttributeError, OSError):
        pass
    try:
        from model.events import event_to_json
        from model.ugaar.config import RunConfig
        from model.ugaar.trainer import Trainer

        def on_event(ev: Any) -> None:
            conn.send(("event", event_to_json(ev)))

        if mode == "resume":
            trainer = Trainer.resume(run_dir, features, on_event=on_event)
        elif mode == "settings":  # the form's values: the method's preset plus overrides
            kw = dict(config or {})
            trainer = Trainer(RunConfig.for_method(kw.pop("method"), **kw), features, run_dir, on_event=on_event)
        else:
            trainer = Trainer(RunConfig.from_dict(config), features, run_dir, on_event=on_event)

        def listen() -> None:
            while True:
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    trainer.stop()  # the window went away: end cleanly
                    return
                if msg == "stop":
                    trainer.stop()
                    return

        threading.Thread(target=listen, daemon=True).start()
        run = trainer.run()
        conn.send(("done", {"run_dir": str(run_dir), "status": getattr(run, "status", "")}))
    except BaseException as exc:  # noqa: BLE001 - every failure goes back as a message
        conn.send(("error", f"{exc}" or repr(exc), traceback.format_exc()))
    finally:
        conn.close()


def run_in_child(mode: str, config: Optional[dict[str, Any]], features: Any, run_dir: str,
                 on_event: Callable[[Any], None], cancel: CancelToken) -> dict[str, Any]:
    """Run (or resume) a training in a spawned process; blocks the calling (worker) thread.

    ``mode`` is ``settings`` (``config`` = RunConfig.for_method keyword arguments with
    ``method``), ``config`` (``config`` = RunConfig.to_dict()) or ``resume``.
    ``on_event`` receives ``model.events`` objects; setting ``cancel`` asks the
    trainer to stop after its current step.  Raises ``RuntimeError`` when the
    training fails.
    """
    from model.events import event_from_json
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(child, mode, config, features, str(run_dir)), daemon=True)
    proc.start()
    child.close()
    stop_sent = False
    result: Optional[dict[str, Any]] = None
    try:
        while True:
            if cancel.is_set and not stop_sent:
                try:
                    parent.send("stop")
                except (BrokenPipeError, OSError):
                    pass
                stop_sent = True
            if parent.poll(0.05):
                try:
                    msg = parent.recv()
                except EOFError:
                    break
                if msg[0] == "event":
                    on_event(event_from_json(msg[1]))
                elif msg[0] == "done":
                    result = msg[1]
                    break
                elif msg[0] == "error":
                    print(msg[2] if len(msg) > 2 else msg[1])
                    raise RuntimeError(msg[1])
            elif not proc.is_alive():
                break
    finally:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()
    if result is None:
        raise RuntimeError(f"the training process ended unexpectedly (exit code {proc.exitcode}); "
                           "the last good checkpoint is kept and the run can be resumed")
    return result
