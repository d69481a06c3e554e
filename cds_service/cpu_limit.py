"""The CPUs this process may use: the container's CPU limit (cgroup v2 `cpu.max`, or v1's CFS quota) when there
is one, else the CPU count. `docker run --cpus 2` on a 16-core host means 2, which os.cpu_count() does not say."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs allowed by the cgroup quota (rounded up), or None without a limit."""
    quota_period: tuple[str, str] | None = None
    if (v2 := _read(root / "cpu.max")) is not None:
        parts = v2.split()
        quota_period = (parts[0], parts[1]) if len(parts) == 2 else None
    elif (quota := _read(root / "cpu" / "cpu.cfs_quota_us")) and (period := _read(root / "cpu" / "cpu.cfs_period_us")):
        quota_period = (quota, period)
    if quota_period is None or quota_period[0] in ("max", "-1"):
        return None
    try:
        quota_us, period_us = int(quota_period[0]), int(quota_period[1])
    except ValueError:
        return None
    return max(1, math.ceil(quota_us / period_us)) if quota_us > 0 and period_us > 0 else None


def available_cpus() -> int:
    count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    return min(count, limit) if limit else count
