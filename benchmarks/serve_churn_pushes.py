"""The pusher of benchmarks.serve_version_churn: `Churn`, which pushes versions and moves labels
while the clients (benchmarks.serve_churn_clients) send requests, the config it writes and the
server `Status` it waits on; the `Timeline` of what it changed and when; and `check`, which
judges from that timeline which answers came from a wrong version. They live together, apart
from the server start-up and the report, because which versions may answer a request follows
from how, and when, the pusher moved the labels and versions.

Churn (every `push_interval` seconds at most): a push copies the export into version N+1 as a
real push does (into a staging directory, then one rename into the base path), and the config
file is rewritten (a temporary file, then one rename) so ``canary`` -> N+1 and, every other
push, ``stable`` -> the previous canary. With ``--policy=specific`` (the default) the file's
``specific { versions }`` list adds N+1 first (TF Serving's rule: a label may only point at a
loaded version), then the labels move and the list keeps only the labelled versions and the
newest others up to `keep`, so the old versions are unloaded by the same rewrite that moves
the labels off them. With ``--policy=latest`` the policy is ``latest { num_versions: keep }``:
the rename itself loads N+1 and unloads the oldest, so ``stable`` is moved first whenever the
push would drop the version it is on. Each change waits until the server's status shows it
applied (``/v1/models/generator/versions/N``, ``.../labels/L``), as a careful pusher does.

Wrong version: every change is kept as a timeline: label L (or "latest") names version v from
the moment the change was written until the moment the next change to L was seen applied. A
request sent at s and answered at r may be answered by any version L named at some time in [s,
r]; any other is wrong.
"""

import os
import pathlib
import shutil
import threading
import time

import requests

from benchmarks.serve_churn_clients import MODEL, TARGETS, Record

# Failure guard for every wait on the server; each ends as soon as what it waits for happened.
WAIT_SECONDS = 120.0


class Timeline:
    """Which versions each target (a label, or "latest") named, and when.

    `change` records a change as written (the server may apply it any time after); `confirm`
    records that the server was seen to have applied it, which ends every earlier version of
    that target: a request sent after that moment can no longer get them.
    """

    def __init__(self):
        self._spans: dict[str, list[list]] = {t: [] for t in TARGETS}  # [version, from, until]

    def change(self, target: str, version: int, at: float) -> None:
        spans = self._spans[target]
        if not spans or spans[-1][0] != version or spans[-1][2] is not None:
            spans.append([version, at, None])

    def confirm(self, target: str, version: int, at: float) -> None:
        for span in self._spans[target]:
            if span[2] is None and span[0] != version:
                span[2] = at

    def allowed(self, target: str, sent: float, received: float) -> set[int]:
        """The versions `target` named at some time in [sent, received]."""
        return {
            v
            for v, start, end in self._spans[target]
            if start <= received and (end is None or end >= sent)
        }

    def changes(self, target: str) -> int:
        """How many times `target` moved."""
        return max(0, len(self._spans[target]) - 1)


def config_text(policy: str, versions, labels: dict, keep: int, base: pathlib.Path) -> str:
    """The ModelServerConfig of the one model, in text format."""
    if policy == "specific":
        listed = " ".join(f"versions: {v}" for v in sorted(versions))
        policy_text = f"specific {{ {listed} }}"
    else:
        policy_text = f"latest {{ num_versions: {keep} }}"
    label_text = "".join(
        f'    version_labels {{ key: "{k}" value: {v} }}\n' for k, v in sorted(labels.items())
    )
    return (
        "model_config_list {\n  config {\n"
        f'    name: "{MODEL}"\n    base_path: "{base}"\n    model_platform: "tensorflow"\n'
        f"    model_version_policy {{ {policy_text} }}\n{label_text}  }}\n}}\n"
    )


def write_atomically(path: pathlib.Path, text: str) -> None:
    """`text` into `path` by one rename: the server's poll reads the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Status:
    """The server's REST status endpoint: what is loaded, what a label points at."""

    def __init__(self, url: str, wait_seconds: float = WAIT_SECONDS):
        self.url, self.wait_seconds = url, wait_seconds
        self.session = requests.Session()

    def versions(self) -> dict[int, str]:
        r = self.session.get(self.url, timeout=30)
        r.raise_for_status()
        return {int(s["version"]): s["state"] for s in r.json()["model_version_status"]}

    def label(self, label: str) -> int | None:
        r = self.session.get(f"{self.url}/labels/{label}", timeout=30)
        if r.status_code != 200:
            return None
        states = r.json()["model_version_status"]
        return int(states[0]["version"]) if states else None

    def wait(self, what: str, check) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not apply {what} in {self.wait_seconds:.0f} s")
            time.sleep(0.02)


class Churn:
    """Pushes versions and moves labels, as described in the module docstring."""

    def __init__(self, base, staging, config_path, status: Status, timeline, policy, keep):
        if keep < 2:
            raise ValueError(f"keep must be >= 2 (a stable and a canary), got {keep}")
        self.base, self.staging = pathlib.Path(base), pathlib.Path(staging)
        self.config_path, self.status, self.timeline = pathlib.Path(config_path), status, timeline
        self.policy, self.keep = policy, keep
        self.source = self.base / "1"  # what every push copies
        self.labels = {"stable": 1, "canary": 2}
        self.versions = {1, 2}  # the specific policy's list
        self.pushed: list[int] = []
        self.config_writes = 0
        self.error: str | None = None
        self.done = threading.Event()  # set when `run` returns

    def write_config(self) -> None:
        text = config_text(self.policy, self.versions, self.labels, self.keep, self.base)
        write_atomically(self.config_path, text)
        self.config_writes += 1

    def start_config(self) -> None:
        """Versions 1 and 2 on disk, stable -> 1 and canary -> 2: the state both runs start in."""
        shutil.copytree(self.source, self.base / "2")
        self.write_config()

    def push_version(self, version: int) -> None:
        """The export as `version`, appearing whole: copied aside, then one rename."""
        staged = self.staging / str(version)
        shutil.copytree(self.source, staged)
        os.rename(staged, self.base / str(version))

    def move_labels(self, labels: dict) -> None:
        for label, version in labels.items():
            if self.labels[label] != version:
                self.timeline.change(label, version, time.monotonic())
        self.labels.update(labels)
        self.write_config()
        for label, version in labels.items():
            self.status.wait(
                f"{label} -> {version}", lambda k=label, v=version: self.status.label(k) == v
            )
            self.timeline.confirm(label, version, time.monotonic())

    def tick(self) -> None:
        """One push: version N+1, canary -> N+1, and every other push stable -> old canary."""
        new = max(self.versions | set(self.pushed)) + 1
        old_canary = self.labels["canary"]
        move_stable = len(self.pushed) % 2 == 1
        if self.policy == "latest":
            # The rename unloads all but the `keep` newest: stable must leave the one it drops.
            if move_stable or self.labels["stable"] <= new - self.keep:
                self.move_labels({"stable": old_canary})
                move_stable = False
            self.timeline.change("latest", new, time.monotonic())
            self.push_version(new)
        else:
            self.push_version(new)
            self.timeline.change("latest", new, time.monotonic())
            self.versions.add(new)
            self.write_config()
        self.status.wait(f"version {new}", lambda: self.status.versions().get(new) == "AVAILABLE")
        self.timeline.confirm("latest", new, time.monotonic())
        self.pushed.append(new)
        labels = {"canary": new}
        if move_stable:
            labels["stable"] = old_canary
        if self.policy == "specific":
            # The labelled versions, then the newest others, up to `keep`; the rest unload.
            kept = set((self.labels | labels).values())
            for version in sorted(self.versions, reverse=True):
                if len(kept) >= self.keep:
                    break
                kept.add(version)
            self.versions = kept
        self.move_labels(labels)

    def run(self, stop: threading.Event, interval: float, pushes: int | None = None) -> None:
        """Pushes until `stop` is set (or `pushes` were made), one every `interval` s at most."""
        try:
            while not stop.is_set() and (pushes is None or len(self.pushed) < pushes):
                started = time.monotonic()
                self.tick()
                stop.wait(max(0.0, started + interval - time.monotonic()))
        except Exception as e:  # reported, and fails the run
            self.error = f"{type(e).__name__}: {e}"
        finally:
            self.done.set()

    def expected_final(self) -> set[int]:
        """The versions the server should serve once everything settled."""
        if self.policy == "specific":
            return set(self.versions)
        return set(sorted({1, 2} | set(self.pushed))[-self.keep :])


def check(records: list[Record], timeline: Timeline) -> dict:
    """Counts of failed and wrong-version requests, overall and per target, with examples."""
    failed = [r for r in records if r.error is not None]
    wrong = [
        r
        for r in records
        if r.error is None and r.version not in timeline.allowed(r.target, r.sent, r.received)
    ]
    t0 = records[0].sent if records else 0.0

    def example(r: Record) -> dict:
        return {
            "target": r.target,
            "sent_s": round(r.sent - t0, 3),
            "received_s": round(r.received - t0, 3),
            "version": r.version,
            "allowed": sorted(timeline.allowed(r.target, r.sent, r.received)),
            "error": r.error,
        }

    by_target = {}
    for target in TARGETS:
        mine = [r for r in records if r.target == target]
        by_target[target] = {
            "requests": len(mine),
            "failed": sum(r.error is not None for r in mine),
            "wrong_version": sum(r in wrong for r in mine),
            "versions_answering": len({r.version for r in mine if r.version is not None}),
        }
    return {
        "failed": len(failed),
        "wrong_version": len(wrong),
        "first_failed": [example(r) for r in failed[:5]],
        "first_wrong_version": [example(r) for r in wrong[:5]],
        "by_target": by_target,
    }
