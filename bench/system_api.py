"""The console's hot requests under load, measured with wrk (a load generator in C, so the
clients never limit the figures): 50 connections, each sending its next request as soon as the
last one is answered, for a few seconds per request kind.

- device page: `GET /devices/{id}` for a random device of the registry;
- open alerts: `GET /alerts?state=open` (the first page of the operators' queue);
- fleet stats: `GET /stats/fleet`.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

# wrk's Lua: the bearer token on every request, a random device per device-page request, and
# at the end one JSON line with the latency percentiles (microseconds) and the error counts.
_SCRIPT = """
wrk.headers["Authorization"] = "Bearer %(token)s"
local path = "%(path)s"
local devices = %(devices)d
request = function()
  if devices > 0 then
    return wrk.format(nil, string.format(path, math.random(0, devices - 1)))
  end
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d,'
    .. ' "max_us": %%d, "errors": %%d, "non_2xx": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, e.status))
end
"""


@dataclass(frozen=True)
class RequestKind:
    name: str
    path: str  # with %s for the device id when `random_device`
    random_device: bool = False


HOT_REQUESTS = (
    RequestKind("device page", "/api/v1/devices/bench-%06d", random_device=True),
    RequestKind("open alerts", "/api/v1/alerts?state=open"),
    RequestKind("fleet stats", "/api/v1/stats/fleet"),
)


@dataclass(frozen=True)
class ApiFigures:
    name: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    non_2xx: int


async def hammer(
    api_url: str,
    token: str,
    kind: RequestKind,
    *,
    devices: int,
    connections: int,
    seconds: float,
) -> ApiFigures:
    script = _SCRIPT % {
        "token": token,
        "path": kind.path,
        "devices": devices if kind.random_device else 0,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        process = await asyncio.create_subprocess_exec(
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "10s",
            "-s",
            file.name,
            api_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
    finally:
        await asyncio.to_thread(Path(file.name).unlink)
    text = out.decode()
    line = next((x for x in text.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{text}")
    got = json.loads(line.removeprefix("RESULT "))
    return ApiFigures(
        kind.name,
        requests_per_s=got["requests"] / (got["duration_us"] / 1e6),
        p50_ms=got["p50_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
        max_ms=got["max_us"] / 1000,
        errors=got["errors"],
        non_2xx=got["non_2xx"],
    )
