"""The model seam's figures (issue 3), against the scripted server with a fixed latency.

    python benchmarks/bench_llm.py [--requests 4000] [--concurrency 64] [--latency 0.1]
                                   [--litellm] [--memory 100000]

Prints, in one run so the ratios hold on a noisy machine:
- throughput of a bare aiohttp client, the OpenAI SDK (aiohttp and default transports), optionally
  litellm, and a full `rubricate generate` command, against the ideal concurrency / latency;
- a rerun served from the cache (records/s);
- with --memory N: peak memory of `generate` over N/5 and N records (flat = ratio 1.0);
- resume: a run killed half-way, rerun: requests asked twice, and whether the output equals an
  uninterrupted run's.
The server runs in its own process (tests/llm_server.py) so it does not share the client's core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
CLI = [sys.executable, "-m", "rubricate.cli.main"]


class Server:
    def __init__(self, latency: float):
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "llm_server.py"), "--port", "0",
                                      "--latency", str(latency), "--no-log"], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def body(i: int) -> dict:
    return {"model": "fake-model", "messages": [{"role": "user", "content": f"problem {i}"}], "max_tokens": 32}


async def bare_aiohttp(url: str, n: int, concurrency: int) -> float:
    import aiohttp

    sem = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def one(i: int) -> None:
            async with sem:
                async with session.post(url + "/v1/chat/completions", json=body(i),
                                        headers={"Authorization": "Bearer x"}) as response:
                    data = await response.json()
                    assert data["choices"][0]["message"]["content"]
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - start)


async def openai_sdk(url: str, n: int, concurrency: int, aiohttp_transport: bool) -> float:
    import openai

    kwargs = {"http_client": openai.DefaultAioHttpClient()} if aiohttp_transport else {}
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, **kwargs)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            response = await client.chat.completions.create(**body(i))
            assert response.choices[0].message.content
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    rate = n / (time.perf_counter() - start)
    await client.close()
    return rate


async def litellm_client(url: str, n: int, concurrency: int) -> float:
    import litellm

    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            response = await litellm.acompletion(api_base=url + "/v1", api_key="x", num_retries=0,
                                                 **{**body(i), "model": "openai/fake-model"})
            assert response.choices[0].message.content
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - start)


def rubricate_generate(url: str, src: Path, tmpl: Path, concurrency: int, extra: list[str],
                       out: Path | None = None) -> tuple[dict, float]:
    with tempfile.NamedTemporaryFile(suffix=".json") as stats:
        cmd = [*CLI, "generate", str(src), "--template", str(tmpl), "--into", "g", "--model", "openai/fake-model",
               "--api-base", url + "/v1", "--concurrency", str(concurrency), "--max-tokens", "32",
               "--stats-json", stats.name, *extra]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=open(out, "wb") if out else subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        return json.loads(Path(stats.name).read_text()), wall


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--litellm", action="store_true", help="also time litellm.acompletion (slow import)")
    parser.add_argument("--memory", type=int, default=0, help="records for the peak-memory check (e.g. 100000)")
    parser.add_argument("--resume", type=int, default=2000, help="requests in the kill-and-resume check (0: skip)")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    ideal = c / args.latency
    tmp = Path(tempfile.mkdtemp())
    src = tmp / "in.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "problem": f"problem {i}"}) + "\n" for i in range(n)))
    tmpl = tmp / "t.jinja"
    tmpl.write_text("{{ problem }}")

    server = Server(args.latency)
    try:
        print(f"== {n} requests, concurrency {c}, latency {args.latency * 1000:.0f} ms: ideal {ideal:.0f} req/s ==")
        rows = [("bare aiohttp", asyncio.run(bare_aiohttp(server.url, n, c))),
                ("openai SDK, aiohttp transport", asyncio.run(openai_sdk(server.url, n, c, True))),
                ("openai SDK, default transport", asyncio.run(openai_sdk(server.url, n, c, False)))]
        if args.litellm:
            rows.append(("litellm acompletion", asyncio.run(litellm_client(server.url, n, c))))
        stats, wall = rubricate_generate(server.url, src, tmpl, c, ["--no-cache"])
        engine_rate = stats["requests"] / stats["wall_seconds"]
        rows.append(("rubricate generate (engine time)", engine_rate))
        rows.append(("rubricate generate (whole process)", n / wall))
        bare = rows[0][1]
        for name, rate in rows:
            print(f"{name:38s} {rate:7.0f} req/s  {100 * rate / ideal:5.1f}% of ideal  {rate / bare:5.2f}x bare")
        print(f"target: rubricate >= 85% of ideal: {'met' if engine_rate >= 0.85 * ideal else 'MISSED'} (engine), "
              f"{'met' if n / wall >= 0.85 * ideal else 'missed'} (whole process, startup included)")

        cache = tmp / "cache.sqlite"
        rubricate_generate(server.url, src, tmpl, c, ["--cache", str(cache)])
        stats, wall = rubricate_generate(server.url, src, tmpl, c, ["--cache", str(cache)])
        assert stats["requests"] == 0 and stats["cache_hits"] == n, stats
        print(f"\n== rerun from the cache: {n / wall:.0f} records/s (whole process), "
              f"{n / stats['wall_seconds']:.0f} records/s (engine); target >= 2000 ==")
    finally:
        server.close()

    if args.memory:
        fast = Server(0.0)
        try:
            print(f"\n== peak memory, generate without cache, latency 0 ==")
            peaks = []
            for count in (args.memory // 5, args.memory):
                big = tmp / f"big{count}.jsonl"
                big.write_text("".join(json.dumps({"id": f"r{i}", "problem": f"problem {i}"}) + "\n"
                                       for i in range(count)))
                cmd = [*CLI, "generate", str(big), "--template", str(tmpl), "--into", "g", "--model",
                       "openai/fake-model", "--api-base", fast.url + "/v1", "--concurrency", str(c), "--no-cache"]
                start = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                _, status, usage = os.wait4(proc.pid, 0)
                peaks.append(usage.ru_maxrss / 1024)
                print(f"{count:>8} records: peak RSS {peaks[-1]:7.1f} MB in {time.perf_counter() - start:6.1f} s")
            print(f"ratio {peaks[1] / peaks[0]:.3f} (flat = 1.0)")
        finally:
            fast.close()

    if args.resume:
        resume(tmp, args.resume, c)


def resume(tmp: Path, count: int, concurrency: int) -> None:
    from llm_server import FakeLLMServer

    src = tmp / "resume.jsonl"
    src.write_text("".join(json.dumps({"id": f"r{i}", "problem": f"resume {i}"}) + "\n" for i in range(count)))
    tmpl = tmp / "t.jinja"
    print(f"\n== resume: {count} requests, killed half-way, rerun ==")
    with FakeLLMServer(latency=0.02) as server:
        base = [*CLI, "generate", str(src), "--template", str(tmpl), "--into", "g", "--model", "openai/fake-model",
                "--api-base", server.openai_base, "--concurrency", str(concurrency), "--cache", str(tmp / "r.sqlite")]
        proc = subprocess.Popen(base + ["-o", str(tmp / "resumed.jsonl")], stderr=subprocess.DEVNULL)
        while server.count() < count // 2:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        before = {r["text"] for r in server.requests}
        server.reset()
        subprocess.run(base + ["-o", str(tmp / "resumed.jsonl")], check=True, stderr=subprocess.DEVNULL)
        again = {r["text"] for r in server.requests} & before
        uninterrupted = subprocess.run([*base[:-2], "--no-cache"], check=True, capture_output=True).stdout
    same = (tmp / "resumed.jsonl").read_bytes() == uninterrupted
    print(f"killed after {len(before)} requests; rerun asked {len(again)} of them again "
          f"(only those in flight at the kill, at most {concurrency}); output equals an uninterrupted run's: {same}")


if __name__ == "__main__":
    main()
