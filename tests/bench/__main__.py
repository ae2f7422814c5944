"""`python -m tests.bench` (make bench): every benchmark in turn, each writing bench-results/<name>.json.

Arguments are passed to each benchmark (e.g. `--quick`). Each runs in its own process: several configure Django
in-process against their own throw-away database, and Django's settings are fixed once per process.
"""
import subprocess
import sys

BENCHMARKS = ["bench_lease", "bench_model", "bench_ontology", "bench_verifier", "bench_routing"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    codes = []
    for name in BENCHMARKS:
        code = subprocess.run([sys.executable, "-m", f"tests.bench.{name}", *argv]).returncode
        if code:
            print(f"tests.bench.{name} exited with {code}", file=sys.stderr)
        codes.append(code)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
