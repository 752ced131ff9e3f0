"""NLP benchmarks: Banking77 and Bitext accuracy, pipeline throughput and memory.

    python bench/bench_nlp.py [--skip-banking] [--skip-baseline] [--banking-epochs 5] [--heads 3]

Every speed figure is printed with its baseline measured in the same run:
training is CPU only, with no pretrained weights. Banking77 is trained on
bench/data/banking77/train.csv and scored on dev.csv (the official test part is
kept apart).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import spacy
from spacy.language import Language

import nlp
from nlp.data import bitext_examples, shipped_examples
from nlp.training import TEXTCAT_MODEL, TrainSettings, evaluate_pipeline
from rapport.wiring import freeze_long_lived

BANKING = Path(__file__).parent / "data" / "banking77"

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
    parser.add_argument(
        "--skip-baseline", action="store_true", help="Skip spaCy's stock bag-of-words baseline."
    )
    parser.add_argument("--banking-epochs", type=int, default=5)
    parser.add_argument("--heads", type=int, default=3, help="Ensemble heads for Banking77.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        cache = Path(tmp)
        model_path = bench_default_model(cache)
        bench_throughput(model_path, cache)
        bench_memory(model_path, cache)
        if not args.skip_banking:
            bench_banking(
                cache, epochs=args.banking_epochs, heads=args.heads, baseline=not args.skip_baseline
            )


def bench_default_model(cache: Path) -> Path:
    started = time.perf_counter()
    path = nlp.ensure_default_model(cache)
    seconds = time.perf_counter() - started
    model = spacy.load(path)
    bitext = evaluate_pipeline(model, bitext_examples("dev"))
    shipped = evaluate_pipeline(model, shipped_examples("dev"))
    print("== default model (Bitext + Rapport's own examples)")
    print(f"training from scratch: {seconds:.1f} s")
    print(
        f"Bitext dev accuracy (Rapport categories): {bitext.accuracy:.4f}  macro-F1 {bitext.macro_f1:.4f}  n {bitext.n}"
    )
    print(f"all shipped dev (Bitext + own examples): {shipped.accuracy:.4f}  n {shipped.n}")
    return path


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


def bench_banking(cache: Path, *, epochs: int, heads: int, baseline: bool) -> None:
    train = nlp.read_examples(BANKING / "train.csv", "text", "category")
    dev = nlp.read_examples(BANKING / "dev.csv", "text", "category")
    print(f"== Banking77: train {len(train)}, dev {len(dev)}, 77 intents, CPU, no pretrained weights")
    settings = TrainSettings(epochs=epochs, textcat_model={**TEXTCAT_MODEL, "n_heads": heads})
    result = nlp.train(
        train,
        dev=dev,
        out_dir=cache / "banking77",
        settings=settings,
        progress=lambda line: print("  " + line),
    )
    assert result.dev is not None
    print(
        f"rapport.NgramBagTextcat.v1 ({heads} heads): dev accuracy {result.dev.accuracy:.4f}  "
        f"macro-F1 {result.dev.macro_f1:.4f}  training {result.seconds:.0f} s"
    )
    if baseline:
        stock = bench_stock_bow(train, dev)
        print(f"ratio to stock bag-of-words: {result.dev.accuracy / stock:.3f}")


def bench_stock_bow(train: list[tuple[str, str]], dev: list[tuple[str, str]], epochs: int = 10) -> float:
    """spaCy's stock TextCatBOW.v3 (uni+bigrams), same data, same loop."""
    stock = {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": True,
        "ngram_size": 2,
        "no_output_layer": False,
    }
    with tempfile.TemporaryDirectory() as tmp:
        result = nlp.train(
            train,
            dev=dev,
            out_dir=Path(tmp) / "bow",
            settings=TrainSettings(epochs=epochs, textcat_model=stock),
        )
    assert result.dev is not None
    print(
        f"stock spacy.TextCatBOW.v3 (bigrams, {epochs} epochs): dev accuracy {result.dev.accuracy:.4f}  "
        f"training {result.seconds:.0f} s"
    )
    return result.dev.accuracy


if __name__ == "__main__":
    main()
