"""Several training commands at once, one process each: torch's threads are per process, so
two one-thread processes use two cores where one process's second thread would not."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor


def run_processes(commands: dict, jobs: int):
    """Run {label: command} each as its own process, `jobs` at a time; exit naming the labels
    whose process failed."""
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        codes = list(pool.map(lambda command: subprocess.run(command, check=False).returncode, commands.values()))
    failed = [label for label, code in zip(commands, codes) if code]
    if failed:
        sys.exit(f"failed: {', '.join(map(str, failed))}")
