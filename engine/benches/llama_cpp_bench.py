"""llama.cpp side of `cargo bench -p glint-engine --bench engine`: the same measurements on the
same GGUF, token ids and thread count, through llama-cpp-python.

Install for the comparison (not a test dependency):
    python3 -m venv ~/.cache/glint-venv && ~/.cache/glint-venv/bin/pip install llama-cpp-python
    GLINT_BENCH_PYTHON=~/.cache/glint-venv/bin/python cargo bench -p glint-engine --bench engine

Usage: llama_cpp_bench.py MODEL TOKENS_JSON THREADS; prints one JSON line of results.
"""
import json
import resource
import statistics
import sys
import time

import llama_cpp


def peak_rss_mb() -> float:
    """This process's own peak resident memory. Not `ru_maxrss`: Linux carries it over from the
    parent through fork and exec, so it would report the Rust bench's peak whenever that was
    higher."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    model, tokens_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = json.load(open(tokens_path))
    tokens = spec["tokens"]
    started = time.perf_counter()
    llm = llama_cpp.Llama(
        model_path=model,
        n_ctx=4096,
        n_batch=512,
        n_ubatch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    out = {"version": llama_cpp.__version__, "load_s": [time.perf_counter() - started]}

    def reset_to(n):
        llm.n_tokens = n
        llm._ctx.kv_cache_seq_rm(-1, n, -1)

    def prefill(ids, start=0):
        reset_to(start)
        llm.eval(ids[start:])

    for n in (128, 512, 2048):
        rates = []
        for _ in range(spec["reps"][str(n)]):
            t = time.perf_counter()
            prefill(tokens[:n])
            rates.append(n / (time.perf_counter() - t))
        out[f"prefill_{n}"] = rates

    prefill(tokens[:128])
    step_rates = []
    for i in range(128):
        t = time.perf_counter()
        llm.eval([tokens[128 + i]])
        step_rates.append(1.0 / (time.perf_counter() - t))
    out["decode"] = step_rates

    cold = []
    n = 1024
    for r in range(spec["reps"]["cold"]):
        ids = list(tokens[:n])
        t = time.perf_counter()
        prefill(ids)
        llm.sample(top_k=1)
        cold.append((time.perf_counter() - t) * 1e3)
    out["cold_ttft_ms"] = cold

    warm = []
    base = list(tokens[:n])
    prefill(base)
    for extra in spec["warm_tails"]:
        ids = base + extra
        # Longest common prefix with what is cached, backing off one token for fresh logits.
        cached = llm._input_ids[: llm.n_tokens].tolist()
        common = 0
        while common < min(len(cached), len(ids)) and cached[common] == ids[common]:
            common += 1
        common = min(common, len(ids) - 1)
        t = time.perf_counter()
        prefill(ids, common)
        llm.sample(top_k=1)
        warm.append((time.perf_counter() - t) * 1e3)
    out["warm_ttft_ms"] = warm
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
