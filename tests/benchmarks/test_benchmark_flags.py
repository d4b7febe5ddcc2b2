"""The benchmarks that share flag names import into one process: xdist runs many test files in
one process, and absl refuses a flag name defined twice. benchmarks.quality defines --seconds
(and more) at import; serve_load_test and serve_version_churn define theirs only when run as
programs (`define_flags()` under ``__main__``), and then list them in --help."""

import subprocess
import sys

import helpers


def test_the_benchmarks_that_share_flag_names_import_together():
    import benchmarks.quality  # noqa: F401  (--seconds, at import)
    import benchmarks.serve_load_test  # noqa: F401  (--seconds, --client_threads...)
    import benchmarks.serve_version_churn  # noqa: F401  (--seconds, --client_threads...)


def test_serve_load_test_run_as_a_program_defines_its_flags():
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.serve_load_test", "--help"],
        cwd=helpers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # absl's --help exits 1; serve_version_churn's is checked in test_serve_version_churn.py.
    for flag in ("--seconds", "--client_threads_list", "--server_flag"):
        assert flag in result.stdout, result.stderr[-2000:]
