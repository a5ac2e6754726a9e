"""A miniwdl container backend that runs each task's command directly on this machine, without a container.

For local runs and tests of `workflows/aimi_batch.wdl` where Docker is absent (CI, laptops with the venv): the task
command runs in its miniwdl working directory with the host's environment, and `runtime.docker` is ignored. Paths
miniwdl shows the command (`<task dir>/host/work/...`) resolve through a symlink to the attempt's real work folder;
inputs are linked in. Enabled with `[scheduler] container_backend = aimi_host` (see workflows/miniwdl-local.cfg).
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from WDL.runtime import config
from WDL.runtime.error import Terminated
from WDL.runtime.task_container import TaskContainer

CONTAINER_DIR = "host"


class HostContainer(TaskContainer):
    """Task commands as host subprocesses; cpu and memory are not enforced (one task at a time is advised)."""

    @classmethod
    def global_init(cls, cfg: config.Loader, logger: logging.Logger) -> None:
        logger.warning("aimi_host backend: task commands run on this machine without containers")

    @classmethod
    def detect_resource_limits(cls, cfg: config.Loader, logger: logging.Logger) -> dict[str, int]:
        return {"cpu": os.cpu_count() or 1, "mem_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")}

    def __init__(self, cfg: config.Loader, run_id: str, host_dir: str) -> None:
        super().__init__(cfg, run_id, host_dir)
        self.container_dir = os.path.join(host_dir, CONTAINER_DIR)

    def _run(self, logger: logging.Logger, terminating: Callable[[], bool], command: str) -> int:
        self._point_work_dir()
        self._link_inputs()
        script = Path(self.host_dir, "command")
        exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.runtime_values.get("env", {}).items())
        script.write_text(exports + command)
        shell = self.cfg.get("task_runtime", "command_shell")
        with open(self.host_stdout_txt(), "ab") as out, open(self.host_stderr_txt(), "ab") as err, \
                self.poll_stderr_context(logger) as poll_stderr, self.task_running_context():
            process = subprocess.Popen([*shlex.split(shell), str(script)], cwd=self.host_work_dir(), stdout=out,
                                       stderr=err, start_new_session=True)
            return self._wait(process, terminating, poll_stderr)

    @staticmethod
    def _wait(process: subprocess.Popen[Any], terminating: Callable[[], bool], poll: Callable[[], None]) -> int:
        while True:
            if terminating():
                process.terminate()
            try:
                code = process.wait(1)
            except subprocess.TimeoutExpired:
                poll()
                continue
            poll()
            if terminating():
                raise Terminated()
            return code

    def _point_work_dir(self) -> None:
        """`<container_dir>/work` -> this attempt's work folder (work, work2, ... on retries)."""
        link = Path(self.container_dir, "work")
        link.parent.mkdir(exist_ok=True)
        link.unlink(missing_ok=True)
        link.symlink_to(self.host_work_dir(), target_is_directory=True)

    def _link_inputs(self) -> None:
        """Inputs appear where miniwdl told the command they are (unless `copy_input_files` put copies there)."""
        for host_path, container_path in self.input_path_map.items():
            target = Path(self.host_work_path(container_path).rstrip("/"))
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(host_path.rstrip("/"))
