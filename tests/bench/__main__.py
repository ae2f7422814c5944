"""`python -m tests.bench` (make bench): every benchmark in turn, each writing bench-results/<name>.json.

Arguments are passed to each benchmark (e.g. `--quick`).
"""
import sys

from tests.bench import bench_lease, bench_model, bench_ontology, bench_routing, bench_verifier

BENCHMARKS = [bench_lease, bench_model, bench_ontology, bench_verifier, bench_routing]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return max(bench.main(argv) for bench in BENCHMARKS)


if __name__ == "__main__":
    sys.exit(main())
