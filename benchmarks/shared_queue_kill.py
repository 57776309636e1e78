"""Why the local runner gives each worker process its own events pipe: a probe of a killed writer.

A worker process that sends events as fast as it can is SIGKILLed, then a new worker sends one event.
With one ``multiprocessing.Queue`` shared by both (the runner's old design), the new worker's event
never arrives when the first was killed mid-send (it held the queue's write lock, or left half a message
in the pipe). With a pipe per worker (``core.runner``), it always arrives. Prints how often each lost it.

    python benchmarks/shared_queue_kill.py [--trials 20]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import time

EVENT = ("progress", b"x" * 200)


def flood_queue(events) -> None:
    while True:
        events.put(EVENT)


def flood_pipe(sender) -> None:
    while True:
        sender.send(EVENT)


def send_one(channel) -> None:
    (channel.put if hasattr(channel, "put") else channel.send)("alive")


def arrived(receive, seconds: float = 3.0) -> bool:
    """Whether "alive" comes out of ``receive`` (which takes a timeout) within ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if receive(0.5) == "alive":
                return True
        except Exception:  # noqa: BLE001 - an empty queue, a broken pipe: keep looking until the deadline
            pass
    return False


def kill_while_sending(ctx, target, channel) -> None:
    process = ctx.Process(target=target, args=(channel,), daemon=True)
    process.start()
    time.sleep(0.3)  # it is sending by now
    os.kill(process.pid, signal.SIGKILL)
    process.join()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    lost_queue = lost_pipe = 0
    for _ in range(args.trials):
        shared = ctx.Queue()
        kill_while_sending(ctx, flood_queue, shared)
        second = ctx.Process(target=send_one, args=(shared,), daemon=True)
        second.start()
        lost_queue += not arrived(lambda timeout, q=shared: q.get(timeout=timeout))
        second.kill()

        receiver, sender = ctx.Pipe(duplex=False)
        kill_while_sending(ctx, flood_pipe, sender)
        sender.close()
        receiver.close()  # the dead worker's pipe goes with it; the next worker gets a new one
        receiver, sender = ctx.Pipe(duplex=False)
        second = ctx.Process(target=send_one, args=(sender,), daemon=True)
        second.start()
        sender.close()
        lost_pipe += not arrived(lambda timeout, r=receiver: r.recv() if r.poll(timeout) else None)
        second.kill()
    print(f"the next worker's event was lost after {lost_queue} of {args.trials} kills with a shared queue, "
          f"{lost_pipe} of {args.trials} with a pipe per worker")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
