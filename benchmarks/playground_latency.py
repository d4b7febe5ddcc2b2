r"""The playground's latency as a person feels it: from moving the truncation slider to the new
images being painted, measured inside a real headless Chromium with the Performance API.

    nice -n 19 .venv/bin/python -m benchmarks.playground_latency [--moves=100] [--count=8] \
        [--model_base_path=<workdir>/export/generator] [--server_cpus=1 --browser_cpus=0] \
        [--out=result.json]

Starts ``python -m gan_keras.serve`` as a subprocess on 127.0.0.1 (under ``taskset -c
<server_cpus>``: the issue's target is for a server on one core) with the given export or, by
default, a freshly exported untrained DCGAN-sized generator (28x28x1, latent 100: the demo's
shape, as benchmarks/serving_demo.py exports it). This process, and with it chromedriver
and Chromium, is pinned to ``--browser_cpus`` so the two never share a core.

Other work on the machine shares those cores, so beside the latencies it reports the CPU time
the server and the browser used per move (from /proc), which is what a move needs on cores
of its own, and the load average before and after.

The page (gan_keras/serving/static/playground/sampling.js) marks every slider input
(``performance.mark``) and, once every image that input changed has been decoded
(``img.decode()``) and a frame has been painted after it (``requestAnimationFrame`` then a
task), records ``performance.measure("truncation-to-paint")`` from that mark. Here the slider
is moved one step (0.05) at a time, as a drag moves it: its value is set and its ``input``
event fired, and the next move waits for this one's measure (a PerformanceObserver, no
polling), so every measure is one input's own latency: ``--count`` tiles, each one
``:sample?n=1&seed=..&truncation=..`` request, fetched in parallel. The first ``--warmup``
moves are left out. Prints p50/p95/mean/max in ms. Needs Debian's chromium and
chromium-driver (scripts/test.sh installs them) and selenium; talks to 127.0.0.1 only.
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import serving_demo

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _start_server(base: pathlib.Path, log_path: pathlib.Path, cpus: str):
    """The model server as a user runs it; returns (process, its REST URL)."""
    cmd = [
        sys.executable,
        "-m",
        "gan_keras.serve",
        f"--model_base_path={base}",
        "--model_name=generator",
        "--rest_api_port=0",
        "--file_system_poll_wait_seconds=0",
    ]
    try:
        import tensorflow_serving.apis  # noqa: F401

        cmd.append("--port=0")  # gRPC on a free port, unused here
    except ImportError:
        pass
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    log = open(log_path, "w")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        match = re.search(r"on (http://127\.0\.0\.1:\d+)/v1/models/", log_path.read_text())
        if match:
            return proc, match.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}): {log_path.read_text()}")
        time.sleep(0.25)
    proc.kill()
    raise TimeoutError("the server did not start in 180 s")


def _cpu_seconds(pids) -> float:
    """User + system CPU time of these processes so far, from /proc (gone ones count 0)."""
    total = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _descendants(root: int) -> set[int]:
    """The processes below `root` (chromedriver, Chromium and its helpers)."""
    children = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, set()).add(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


def _wait(driver, script, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise TimeoutError(f"timed out waiting for: {script}")


# One move: sets the slider to a value and fires its `input` event (what a drag fires at each
# step), then waits, without polling, for the page's measure of that input. Answers its latency
# and when the last :sample answer of it had arrived (Resource Timing), so the time splits into
# waiting for the server and decoding + painting.
_MOVE = """
const [value, done] = arguments;
new PerformanceObserver((list, observer) => {
  const m = list.getEntriesByName('truncation-to-paint')[0];
  if (!m) return;
  observer.disconnect();
  const answers = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes(':sample') && e.startTime >= m.startTime);
  performance.clearResourceTimings();
  const arrived = Math.max(...answers.map((e) => e.responseEnd)) - m.startTime;
  done([m.duration, answers.length, arrived, document.getElementById('error').textContent]);
}).observe({ type: 'measure' });
const slider = document.getElementById('truncation');
slider.value = value;
slider.dispatchEvent(new Event('input', { bubbles: true }));
"""


def measure(url: str, moves: int, warmup: int, count: int, server_pid: int):
    """Moves the slider `warmup + moves` steps. Returns the last `moves` moves' (latency, time
    until the last image's bytes had arrived) in ms, and the CPU milliseconds per move the
    server and the browser (chromedriver, Chromium) used over them."""
    from selenium.webdriver.common.by import By

    driver = _browser()
    try:
        driver.get(f"{url}/ui/generator?n={count}")
        _wait(driver, "return document.body.dataset.ready === 'true'")
        _wait(driver, "return document.getElementById('grid').ariaBusy === 'false'")
        driver.set_script_timeout(60)
        step = float(driver.find_element(By.ID, "truncation").get_attribute("step"))
        steps = round(1 / step)  # 20 steps from 1 down to 0
        driver.execute_script("performance.clearResourceTimings()")
        results, browser_pids = [], set()
        for move in range(warmup + moves):
            if move == warmup:
                browser_pids = _descendants(os.getpid()) - {server_pid}
                cpu = (_cpu_seconds([server_pid]), _cpu_seconds(browser_pids))
            # A sweep down to 0, back up to 1, ...: every move changes the value.
            position = move % (2 * steps) + 1
            value = 1 - step * (position if position <= steps else 2 * steps - position)
            duration, answers, arrived, error = driver.execute_async_script(_MOVE, round(value, 4))
            if error or answers != count:
                raise RuntimeError(f"move {move}: {answers} :sample answers, not {count}; {error}")
            results.append((duration, arrived))
        server_ms = 1000 * (_cpu_seconds([server_pid]) - cpu[0]) / moves
        browser_ms = 1000 * (_cpu_seconds(browser_pids) - cpu[1]) / moves
        return results[warmup:], {"server": round(server_ms, 1), "browser": round(browser_ms, 1)}
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_base_path", help="Export to serve (default: export a fresh one).")
    parser.add_argument("--moves", type=int, default=100, help="Slider moves measured.")
    parser.add_argument("--warmup", type=int, default=5, help="Moves left out first.")
    parser.add_argument("--count", type=int, default=8, help="Samples in the grid (requests).")
    parser.add_argument("--server_cpus", default="1", help="taskset CPU list of the server.")
    parser.add_argument("--browser_cpus", default="0", help="CPUs of this process and Chromium.")
    parser.add_argument("--out", help="Also write the result here as JSON.")
    args = parser.parse_args()
    if args.browser_cpus:
        cpus = {int(c) for c in args.browser_cpus.split(",")}
        os.sched_setaffinity(0, cpus)  # chromedriver and Chromium inherit it
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = pathlib.Path(tmp)
        base = pathlib.Path(args.model_base_path or serving_demo.export_demo_generator(tmp_dir))
        proc, url = _start_server(base, pathlib.Path(tmp, "server.log"), args.server_cpus)
        load_before = os.getloadavg()[0]
        try:
            moves, cpu_ms = measure(url, args.moves, args.warmup, args.count, proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    durations = [duration for duration, _ in moves]
    arrived = [a for _, a in moves]
    after_arrival = [duration - a for duration, a in moves]
    result = {
        "command": " ".join(["python", "-m", "benchmarks.playground_latency", *sys.argv[1:]]),
        "model_base_path": args.model_base_path or "untrained 28x28x1 DCGAN (latent 100)",
        "count": args.count,
        "moves": len(durations),
        "server_cpus": args.server_cpus,
        "browser_cpus": args.browser_cpus,
        "p50_ms": round(serving_demo.percentile(durations, 50), 1),
        "p95_ms": round(serving_demo.percentile(durations, 95), 1),
        "mean_ms": round(statistics.fmean(durations), 1),
        "max_ms": round(max(durations), 1),
        # Where the time went: until the last image's bytes arrived (requests and server),
        # then decoding and painting in the browser.
        "answers_arrived_p50_ms": round(serving_demo.percentile(arrived, 50), 1),
        "decode_and_paint_p50_ms": round(serving_demo.percentile(after_arrival, 50), 1),
        # The CPU each side used per move: what the latency needs when nothing else runs.
        "cpu_ms_per_move": cpu_ms,
        # Other work on the machine competes for the cores: the 1-minute load average.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
