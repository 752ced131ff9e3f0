"""NLP benchmarks: accuracy beside a TF-IDF baseline, calibration, throughput and memory.

    python bench/bench_nlp.py [--skip-banking]     (needs the bench extra: pip install -e '.[bench]')

Every figure is printed beside a baseline measured in the same run. Accuracy: Rapport's
default model (as `rapport demo` and `serve` train it) and a TF-IDF (word 1-2 + char_wb 2-5
n-grams) logistic regression trained on exactly the same rows, scored on the realistic
evaluation mail (tests/fixtures/eval/, never trained on), the demo's sample mailbox with gold
labels, and Bitext's dev part; Banking77 is trained with `rapport nlp train`'s defaults on
bench/data/banking77/train.csv and scored on dev.csv (the official test part is kept apart):
those defaults choose, on a held-out eighth of train.csv, between the linear model and the
linear model with pretrained word-piece vectors averaged with a hidden part (Banking77 gets
the second; its settings were chosen on eighths of train.csv, never on dev.csv). Training
is CPU only; the only pretrained weights are the shipped vectors (nlp/data/vectors). Last
figures (2026-12-07, machine shared): realistic mail 0.986 vs 0.977, sample 0.911 vs 0.889,
Bitext 1.000 vs 1.000, Banking77 dev 0.920 vs 0.917 (training 157 s; the target 0.93 is not
reached), throughput 25.4 % of the bare tokenizer, +60 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

import spacy
from spacy.language import Language

import nlp
from inbox.evaluation import read_labelled_mail
from nlp.data import bitext_examples, shipped_examples
from nlp.training import expected_calibration_error
from rapport.wiring import freeze_long_lived

ROOT = Path(__file__).resolve().parents[1]
BANKING = Path(__file__).parent / "data" / "banking77"
EVAL = ROOT / "tests" / "fixtures" / "eval"
SAMPLE_INBOX = ROOT / "rapport" / "sample" / "mailbox" / "INBOX"
THRESHOLD = 0.5  # rapport.toml's default [nlp] confidence_threshold
Predict = Callable[[list[str]], list[str]]

MEMORY_PROBE = """
import gc, json, sys, psutil
from pathlib import Path
process = psutil.Process()
import nlp  # imports spaCy, thinc and lingua: not the pipeline
gc.collect()
before = process.memory_info().rss
clf = nlp.load_classifier(Path(sys.argv[1]), cache_dir=Path(sys.argv[2]))
clf.classify(["Where is my order ORD-12345? I paid 120 EUR on 3 March 2026."] * 256)
gc.collect()
print(json.dumps({"before_mb": before / 2**20, "after_mb": process.memory_info().rss / 2**20}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-banking", action="store_true", help="Skip the Banking77 training (minutes).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        cache = Path(tmp)
        model_path = bench_default_model(cache)
        bench_accuracy(model_path, cache)
        bench_throughput(model_path, cache)
        bench_memory(model_path, cache)
        if not args.skip_banking:
            bench_banking(cache)


def bench_default_model(cache: Path) -> Path:
    started = time.perf_counter()
    path = nlp.ensure_default_model(cache)
    print("== default model (Bitext + Rapport's own examples and mails)")
    print(f"training from scratch: {time.perf_counter() - started:.1f} s")
    return path


def tfidf_baseline(train: Sequence[tuple[str, str]]) -> Predict:
    """The classic baseline: TF-IDF word 1-2 + char_wb 2-5 n-grams, logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    model = make_pipeline(features, LogisticRegression(C=10, max_iter=3000))
    model.fit([text for text, _ in train], [label for _, label in train])
    return lambda texts: [str(label) for label in model.predict(texts)]


def bench_accuracy(model_path: Path, cache: Path) -> None:
    classifier = nlp.load_classifier(model_path, cache_dir=cache, threshold=0.0)
    started = time.perf_counter()
    baseline = tfidf_baseline(shipped_examples("train"))
    print(f"== accuracy beside TF-IDF + logistic regression (same training rows; fitted in "
          f"{time.perf_counter() - started:.0f} s)")
    realistic = read_labelled_mail([EVAL / "realistic-a.csv", EVAL / "realistic-b.csv"], EVAL / "realistic")
    sample = read_labelled_mail([EVAL / "sample_gold.csv"], SAMPLE_INBOX)
    sets = {
        "realistic mail, 10 languages": [(m.text, m.category, m.language or "") for m in realistic],
        "sample mailbox (gold)": [(m.text, m.category, "") for m in sample],
        "Bitext dev (categories)": [(t, c, "") for t, c in bitext_examples("dev")],
    }
    print(f"{'set':<30} {'n':>4} {'Rapport':>8} {'baseline':>8} {'ratio':>6}")
    for name, rows in sets.items():
        texts = [text for text, _, _ in rows]
        results = classifier.classify(texts)
        ours = [r.category for r in results]
        theirs = baseline(texts)
        gold = [label for _, label, _ in rows]
        mine, base = accuracy(ours, gold), accuracy(theirs, gold)
        print(f"{name:<30} {len(rows):>4} {mine:>8.3f} {base:>8.3f} {mine / base:>6.3f}")
        if rows[0][2]:
            by_language: dict[str, list[bool]] = defaultdict(list)
            for (_, label, language), category in zip(rows, ours, strict=True):
                by_language[language].append(category == label)
            print("  per language: " + "  ".join(f"{k} {sum(v) / len(v):.2f}" for k, v in sorted(by_language.items())))
        report_calibration([r.confidence for r in results], [c == g for c, g in zip(ours, gold, strict=True)])


def accuracy(predicted: Sequence[str], gold: Sequence[str]) -> float:
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def report_calibration(confidences: list[float], correct: list[bool]) -> None:
    sure = [hit for confidence, hit in zip(confidences, correct, strict=True) if confidence >= THRESHOLD]
    precision = sum(sure) / len(sure) if sure else 0.0
    print(f"  at threshold {THRESHOLD}: needs_triage {1 - len(sure) / len(correct):.1%}, precision when sure "
          f"{precision:.3f}, expected calibration error {expected_calibration_error(confidences, correct):.3f}")


def short_texts() -> list[str]:
    texts = [text for text, _ in nlp.read_examples(BANKING / "train.csv", "text", "category")]
    return texts[:8000]


def docs_per_second(pipeline: Language, texts: list[str]) -> tuple[float, float]:
    """(wall-clock, CPU-time) docs/s of one pass; CPU time is steadier on a shared machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _doc in pipeline.pipe(texts, batch_size=256):
        pass
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def best_rates(
    pipelines: dict[str, Language], texts: list[str], repeats: int = 7
) -> dict[str, tuple[float, float]]:
    """Best of alternating runs, so load from other processes hits every pipeline alike."""
    best = dict.fromkeys(pipelines, (0.0, 0.0))
    for _ in range(repeats):
        for name, pipeline in pipelines.items():
            wall, cpu = docs_per_second(pipeline, texts)
            best[name] = (max(best[name][0], wall), max(best[name][1], cpu))
    return best


def bench_throughput(model_path: Path, cache: Path) -> None:
    texts = short_texts()
    classifier = nlp.load_classifier(model_path, cache_dir=cache)
    docs_per_second(classifier.nlp, texts[:1000])  # fill the per-word caches
    bare = spacy.blank("en")
    unfrozen = best_rates({"bare": bare, "full": classifier.nlp}, texts, repeats=3)
    freeze_long_lived()  # as Rapport's runtime does after loading the model
    rates = best_rates({"bare": bare, "full": classifier.nlp}, texts)
    print(f"== throughput, {len(texts)} short texts (Banking77), nlp.pipe, one process, best of 7 alternating runs")
    for label, (wall, cpu) in (
        ("bare tokenizer spacy.blank('en')", rates["bare"]),
        (f"whole pipeline {classifier.nlp.pipe_names}", rates["full"]),
    ):
        print(f"{label}: {wall:,.0f} docs/s wall-clock, {cpu:,.0f} docs/s CPU time")
    print(
        f"ratio: {rates['full'][0] / rates['bare'][0]:.1%} wall-clock, "
        f"{rates['full'][1] / rates['bare'][1]:.1%} CPU time (target >= 20%)"
    )
    print(
        f"  before gc.freeze() (as a bare script would run it): "
        f"{unfrozen['full'][0] / unfrozen['bare'][0]:.1%} wall-clock, best of 3"
    )
    print(f"  of which Python's cyclic GC: {gc_microseconds_per_doc(classifier.nlp, texts):.1f} µs per doc")
    for name in classifier.nlp.pipe_names:
        with classifier.nlp.select_pipes(enable=[name]):
            wall, cpu = best_rates({name: classifier.nlp}, texts, repeats=3)[name]
        print(f"  tokenizer + {name} only: {wall:,.0f} docs/s wall-clock, {cpu:,.0f} CPU time")


def gc_microseconds_per_doc(pipeline: Language, texts: list[str]) -> float:
    """Time spent in garbage collection during one pass: batches keep docs alive across
    collections, so a full collection (rescanning every object of the process) recurs."""
    spent, started = [0.0], [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent[0] += time.perf_counter() - started[0]

    gc.callbacks.append(on_gc)
    try:
        docs_per_second(pipeline, texts)
    finally:
        gc.callbacks.remove(on_gc)
    return spent[0] / len(texts) * 1e6


def bench_memory(model_path: Path, cache: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(model_path), str(cache)],
        capture_output=True,
        text=True,
        check=True,
    )
    probe = json.loads(done.stdout)
    print("== memory (fresh process, RSS)")
    print(
        f"after imports {probe['before_mb']:.0f} MB, loaded pipeline + 256 texts {probe['after_mb']:.0f} MB"
    )
    print(f"added by the pipeline: {probe['after_mb'] - probe['before_mb']:.0f} MB (target <= 200 MB)")


def bench_banking(cache: Path) -> None:
    train = nlp.read_examples(BANKING / "train.csv", "text", "category")
    dev = nlp.read_examples(BANKING / "dev.csv", "text", "category")
    print(f"== Banking77: train {len(train)}, dev {len(dev)}, 77 intents, `rapport nlp train` defaults")
    result = nlp.train_held_out(train, out_dir=cache / "banking77", progress=lambda line: print("  " + line))
    scored = nlp.evaluate(result.out_dir, dev)
    started = time.perf_counter()
    baseline = accuracy(tfidf_baseline(train)(texts := [t for t, _ in dev]), [label for _, label in dev])
    print(f"Rapport: dev accuracy {scored.accuracy:.4f}  macro-F1 {scored.macro_f1:.4f}  "
          f"training {result.seconds:.0f} s")
    print(f"TF-IDF + logistic regression on all {len(train)} rows: {baseline:.4f} "
          f"({time.perf_counter() - started:.0f} s for {len(texts)} texts)  ratio {scored.accuracy / baseline:.3f}")


if __name__ == "__main__":
    main()
