"""A bounded load test of `neuromas serve`, from a second process on localhost.

Starts `neuromas serve` on a network (default: the quickstart's untrained [2, 1]; `--run` a
trained run directory) as a child process, then from this process sends `--requests` chat
requests with `--concurrency` in flight, then `--bad` malformed or oversized requests (bad
JSON, no messages, unknown model, an oversized message, streaming, n > 1, an unknown role, a
missing key), and checks the server still answers after them. Figures: requests/s, p50/p95
latency, failures, and how many bad requests got a 4xx.

    python -m benchmarks.serve_load [--run RUN_DIR] [--requests 200] [--concurrency 8] [--bad 50]
    python -m benchmarks.serve_load --smoke     # 4 requests, 2 in flight, 10 bad ones; writes nothing
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from openai import AsyncOpenAI, OpenAIError

from benchmarks.common import ROOT, table, write_results
from neuromas.localserver import free_port, stop, wait_for

KEY = "load-test-key"


def bad_requests(model: str, limit: int) -> list[tuple[str, bytes, dict]]:
    """(what, body, headers) of requests that must each get a 4xx."""
    ok = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def body(**fields) -> bytes:
        return json.dumps({"model": model, "messages": [{"role": "user", "content": "What is 2+2?"}], **fields}).encode()

    kinds = [
        ("bad json", b"{not json", ok),
        ("no messages", json.dumps({"model": model}).encode(), ok),
        ("empty messages", body(messages=[]), ok),
        ("unknown model", body(model="gpt-9"), ok),
        ("oversized", body(messages=[{"role": "user", "content": "9" * (limit + 1)}]), ok),
        ("stream", body(stream=True), ok),
        ("n > 1", body(n=4), ok),
        ("unknown role", body(messages=[{"role": "wizard", "content": "hi"}]), ok),
        ("no key", body(), {"Content-Type": "application/json"}),
        ("wrong key", body(), {**ok, "Authorization": "Bearer nope"}),
    ]
    return kinds


async def load(url: str, model: str, questions: list[str], concurrency: int) -> tuple[list[float], int]:
    """Send every question through the real openai client, `concurrency` in flight; no retries,
    so every failure counts."""
    latencies, failures = [], 0
    gate = asyncio.Semaphore(concurrency)
    async with AsyncOpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=600) as client:
        async def one(question: str) -> None:
            nonlocal failures
            async with gate:
                start = time.perf_counter()
                try:
                    reply = await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": question}])
                    ok = reply.choices[0].message.content is not None
                except OpenAIError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                failures += not ok

        await asyncio.gather(*(one(q) for q in questions))
    return latencies, failures


def post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(f"{url}/v1/chat/completions", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=str(ROOT / "configs" / "quickstart.yaml"))
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--bad", type=int, default=50)
    parser.add_argument("--max-input-chars", type=int, default=2000)
    parser.add_argument("--smoke", action="store_true", help="4 requests, 2 in flight, 10 bad ones; writes nothing")
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.concurrency, args.bad = 4, 2, 10

    port, model = free_port(), "load-test"
    log = Path(tempfile.mkdtemp()) / "serve.log"
    command = [sys.executable, "-m", "neuromas.cli", "serve", args.run, "--port", str(port), "--model-id", model,
               "--api-key-env", "LOAD_TEST_KEY", "--max-input-chars", str(args.max_input_chars), "--max-batch", "32"]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "LOAD_TEST_KEY": KEY})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health", 300, server)
        from neuromas import tasks

        pool = [e.input for e in tasks.load("arith", operands=2, digits=2).examples("test")]
        questions = [pool[i % len(pool)] for i in range(args.requests)]
        asyncio.run(load(url, model, questions[:4], 4))  # warm-up, not counted
        start = time.perf_counter()
        latencies, failures = asyncio.run(load(url, model, questions, args.concurrency))
        seconds = time.perf_counter() - start

        kinds = bad_requests(model, args.max_input_chars)
        statuses = []
        for i in range(args.bad):
            what, body, headers = kinds[i % len(kinds)]
            statuses.append((what, post(url, body, headers)))
        healthy = get(f"{url}/health") == 200
        good = json.dumps({"model": model, "messages": [{"role": "user", "content": questions[0]}]}).encode()
        after = post(url, good, {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        still_answers = healthy and after == 200 and server.poll() is None
    finally:
        stop(server, grace_s=30)

    metrics = {
        "requests": args.requests, "concurrency": args.concurrency, "failures": failures,
        "rps": round(args.requests / seconds, 3), "p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1), "mean_ms": round(1000 * statistics.mean(latencies), 1),
        "bad_requests": len(statuses), "bad_requests_4xx": sum(400 <= s < 500 for _, s in statuses),
        "bad_request_statuses": sorted({f"{what}: {s}" for what, s in statuses}),
        "healthy_after": still_answers,
    }
    markdown = (
        f"`neuromas serve {Path(args.run).name}` ([2, 1] network, greedy), load from a second process on localhost: "
        f"{args.requests} requests, {args.concurrency} in flight.\n\n"
        + table(["requests", "failures", "requests/s", "p50 ms", "p95 ms", "bad requests", "answered 4xx", "healthy after"],
                [[metrics["requests"], failures, metrics["rps"], metrics["p50_ms"], metrics["p95_ms"], metrics["bad_requests"],
                  metrics["bad_requests_4xx"], still_answers]])
        + "\n\nBad requests sent (status): " + "; ".join(metrics["bad_request_statuses"]) + "\n"
    )
    write_results("serve_load", vars(args) | {"run": Path(args.run).name}, metrics, markdown, write=not args.smoke)
    if failures or metrics["bad_requests_4xx"] != metrics["bad_requests"] or not still_answers:
        sys.exit(1)


if __name__ == "__main__":
    main()
