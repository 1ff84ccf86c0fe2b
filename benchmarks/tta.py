"""Test-time flips beside a CIFAR report's headline: the exported model scored on plain and mirrored images.

    python benchmarks/tta.py reports/cifar10-sep-100k     # -> a row of benchmarks/tta/runs.csv, then table.md
    python benchmarks/tta.py table                         # -> benchmarks/tta/table.md

The report's exported weights (``export/model.keras``, its seed chosen on validation) predict each image and its
left-right mirror; the two softmax outputs are averaged ("flip"). Both ways are scored on the run's own 5k
validation split (the split seed in ``run.json``) and on the test set. A report's headline stays the plain test
accuracy after the last epoch: the flip number is reported beside it, and whether it helps is read on validation.
The plain validation and test accuracies must equal the ones the run recorded for that seed, which checks that the
same weights and images were scored.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

import jobs as jobs_mod  # beside this script: CSV rows

HERE = Path(__file__).resolve().parent / "tta"
ROOT = HERE.parent.parent
CSV = HERE / "runs.csv"
FIELDS = ["report", "params", "seed", "val_plain", "val_flip", "test_plain", "test_flip", "hardware"]
HARDWARE = f"{os.cpu_count()}-core CPU"


def accuracies(predict, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(plain, flip) accuracy of ``predict`` on ``images`` (N×H×W×C): flip averages its outputs on each image and on
    its left-right mirror (the width axis reversed)."""
    plain = predict(images)
    flip = (plain + predict(images[:, :, ::-1, :])) / 2
    return float((plain.argmax(1) == labels).mean()), float((flip.argmax(1) == labels).mean())


def measure(report: Path, data_dir: str | None) -> dict:
    import budgetnas
    import keras

    if not (report / "export" / "model.keras").is_file():
        raise SystemExit(f"{report}: no export/model.keras (a finished, exported report folder is needed)")
    run = json.loads((report / "run.json").read_text(encoding="utf-8"))
    recorded = budgetnas.open_run(report).winner().chosen_seed()  # the seed the run exported
    model = keras.saving.load_model(report / "export" / "model.keras", compile=False)

    def predict(x: np.ndarray) -> np.ndarray:
        return model.predict(x.astype("float32"), batch_size=1000, verbose=0)

    splits = budgetnas.load_splits(run["budget"], seed=run["seed"], data_dir=data_dir)
    val = accuracies(predict, splits.val.x, splits.val.y)
    test = accuracies(predict, splits.test.x, splits.test.y)
    for split, acc, want in (("validation", val[0], recorded.final_val_accuracy),
                             ("test", test[0], recorded.test_accuracy)):
        if abs(acc - want) > 1e-4:
            raise SystemExit(f"{report}: plain {split} accuracy {acc:.4f} is not the {want:.4f} the run recorded "
                             f"for seed {recorded.seed}: not the same weights or images")
    return {"report": report.name, "params": model.count_params(), "seed": recorded.seed,
            **{f"{split}_{way}": f"{100 * acc:.2f}" for split, accs in (("val", val), ("test", test))
               for way, acc in zip(("plain", "flip"), accs)}, "hardware": HARDWARE}


def table() -> str:
    rows = jobs_mod.read_rows(CSV)
    lines = ["# Test-time flips beside the headline (CIFAR-10)", "",
             "`python benchmarks/tta.py REPORT` on the report's exported weights (seed chosen on validation); "
             "\"flip\" averages the softmax of each image and its mirror. Validation: the run's 5k split carved "
             "from the training set, where the choice is made; test: reported beside the plain headline, "
             "never as it.", "",
             "| report | params | seed | val plain | val flip | Δ val | test plain | test flip | Δ test | hardware |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        dv = jobs_mod.signed(float(r["val_flip"]) - float(r["val_plain"]))
        dt = jobs_mod.signed(float(r["test_flip"]) - float(r["test_plain"]))
        lines.append(f"| {r['report']} | {int(r['params']):,} | {r['seed']} | {r['val_plain']}% | {r['val_flip']}% "
                     f"| {dv} | {r['test_plain']}% | {r['test_flip']}% | {dt} | {r['hardware']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="a CIFAR report folder with export/model.keras, or `table`")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    if args.report != "table":
        report = Path(args.report)
        if any(r["report"] == report.name for r in jobs_mod.read_rows(CSV)):
            raise SystemExit(f"{report.name} is already in {CSV.relative_to(ROOT)}: remove its row to measure again")
        HERE.mkdir(exist_ok=True)
        jobs_mod.append_rows(CSV, FIELDS, [measure(report, args.data_dir)])
    text = table()
    (HERE / "table.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
