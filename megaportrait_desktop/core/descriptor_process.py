"""dlib's face-recognition ResNet in a helper process, so the app's window keeps answering while it runs.

dlib's Python binding holds the GIL for the whole forward pass: 80 ms per face on an idle 2-core
machine, several times that when the cores are busy. Every thread of the process waits meanwhile,
the GUI thread included, so an identity score froze the window once per run. In its own process the
network runs while this one only waits on a pipe (which releases the GIL). The chip (150 × 150 RGB)
goes over, 128 floats come back: the same model in the same dlib, so the same descriptor.

The helper is this module run as a program (``python -m megaportrait_desktop.core.descriptor_process
MODEL``; an installed build runs its own executable with ``--descriptor-server MODEL``): a plain
subprocess, so nothing of the app is imported or run again in it.
"""

from __future__ import annotations

import atexit
import contextlib
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

#: The argument an installed (frozen) build's executable takes to act as the helper (see ``main.py``).
SERVER_FLAG = "--descriptor-server"
_DESCRIPTOR_BYTES = 128 * 4


class DescriptorProcess:
    """A helper process holding dlib's recogniser; :meth:`compute` is its ``compute_face_descriptor``.

    If the helper dies (or cannot load the model), :meth:`compute` raises ``OSError`` and the caller
    computes in-process instead.
    """

    def __init__(self, model_path: Path) -> None:
        command = [sys.executable, SERVER_FLAG] if getattr(sys, "frozen", False) else \
            [sys.executable, "-m", __name__]
        self._process = subprocess.Popen([*command, str(model_path)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._lock = threading.Lock()
        atexit.register(self.close)  # the helper ends with the app, its pipes closed

    def compute(self, chip: np.ndarray) -> np.ndarray:
        """The 128-d descriptor of an aligned ``(150, 150, 3)`` uint8 face chip."""
        chip = np.ascontiguousarray(chip, np.uint8)
        h, w = chip.shape[:2]
        with self._lock:
            stdin, stdout = self._process.stdin, self._process.stdout
            if stdin is None or stdout is None:
                raise OSError("the descriptor process has no pipes")
            try:
                stdin.write(struct.pack(">HH", h, w) + chip.tobytes())
                stdin.flush()
                reply = _read(stdout, _DESCRIPTOR_BYTES)
            except (BrokenPipeError, ValueError) as exc:
                raise OSError(f"the descriptor process stopped ({exc})") from None
        return np.frombuffer(reply, np.float32).copy()

    def close(self) -> None:
        if self._process.stdin is not None:
            with contextlib.suppress(OSError):  # a helper that has died already: nothing to tell it
                self._process.stdin.close()
        try:
            self._process.wait(2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(2)
        if self._process.stdout is not None:
            self._process.stdout.close()


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if data is None or len(data) != size:
        raise OSError("the descriptor process stopped")
    return data


def serve(model_path: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """The helper's loop: a chip in, a descriptor out, until its input closes."""
    import dlib

    recogniser = dlib.face_recognition_model_v1(model_path)  # fails (and the helper ends) without the model
    while True:
        header = requests.read(4)
        if len(header) != 4:
            return
        h, w = struct.unpack(">HH", header)
        chip = np.frombuffer(_read(requests, h * w * 3), np.uint8).reshape(h, w, 3)
        replies.write(np.asarray(recogniser.compute_face_descriptor(chip), np.float32).tobytes())
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
