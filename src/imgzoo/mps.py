"""NVIDIA's Multi-Process Service (MPS) for processes that share one GPU: a control daemon private
to its caller, started and stopped by it.

Without MPS, CUDA processes on one GPU take turns in time slices; with MPS their kernels run side
by side, which is what runs too small to fill a GPU (a pack, `resources.pack`) need to add up.
The daemon's pipe and log folders are a fresh temporary folder of the caller's, passed to the
clients in their environment (`Daemon.env`): it serves no other job's processes on a shared node,
and another user's daemon does not serve ours. Torch-free.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

CONTROL = "nvidia-cuda-mps-control"


@dataclass
class Daemon:
    env: dict[str, str]  # what a client's environment needs to use this daemon
    folder: Path

    def _control(self, command: str) -> str:
        done = subprocess.run([CONTROL], input=command + "\n", capture_output=True, text=True,
                              env={**os.environ, **self.env}, timeout=30)
        return done.stdout.strip()

    def servers(self) -> list[str]:
        """The process ids of the MPS servers running for this daemon (one starts when the
        first client connects): empty where no client used MPS."""
        return self._control("get_server_list").split()

    def stop(self) -> None:
        """Quit the daemon (and its server) and remove its folders. It runs after the pack's
        runs: a daemon that does not answer must not replace their result with its error."""
        try:
            self._control("quit")
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"imgzoo: {CONTROL} quit failed ({e})", file=sys.stderr)
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def start() -> tuple[Daemon | None, str]:
    """(a daemon started for this caller, ""), or (None, why not) where the machine offers none."""
    control = shutil.which(CONTROL)
    if control is None:
        return None, f"no {CONTROL} on this machine"
    folder = Path(tempfile.mkdtemp(prefix="imgzoo-mps-"))
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(folder / "pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(folder / "log")}
    for path in env.values():
        Path(path).mkdir()
    try:
        done = subprocess.run([control, "-d"], capture_output=True, text=True,
                              env={**os.environ, **env}, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(folder, ignore_errors=True)
        return None, f"{CONTROL} -d did not start ({e})"
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        why = (done.stderr or done.stdout).strip().splitlines()
        return None, f"{CONTROL} -d failed: {why[-1] if why else f'exit {done.returncode}'}"
    return Daemon(env, folder), ""
