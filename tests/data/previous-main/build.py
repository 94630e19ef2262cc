"""How tests/data/previous-main/ was built, with the previous main (flat modules, commit b2be5f8):
    PYTHONPATH=<a checkout of b2be5f8> python build.py <folder>
It imports the old module paths on purpose; it is kept as the record of what made the files, and
is not run by the tests."""
import shutil, sys, json
from pathlib import Path
import pandas as pd
import torch

out = Path(sys.argv[1]); shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
from ensemble.example import make_base_model
from ensemble.averaging import average_checkpoints
from ensemble.inference import predict_logits
from ensemble.data import load_split
from ensemble.voting import vote

texts = ["좋아요 정말", "별로예요", "그냥 그래요", "최고입니다", "싫어요 진짜", "보통이에요", "괜찮네요", "나빠요"]
labels = ["neg", "pos"]
for i in range(2):  # two "checkpoints" of one run
    ck = out / "run" / f"checkpoint-{i + 1}"
    make_base_model(ck, texts, labels, hidden_size=8, num_layers=1, num_heads=2, max_position_embeddings=32, seed=i)
avg = average_checkpoints([out / "run" / "checkpoint-1", out / "run" / "checkpoint-2"], out=out / "weights" / "avg",
                          progress=False)
second = out / "run" / "checkpoint-2"
pd.DataFrame({"id": [f"v{i}" for i in range(8)], "text": texts, "label": ["pos", "neg", "neg", "pos", "neg", "pos", "pos", "neg"]}).to_csv(out / "valid.csv", index=False)
pd.DataFrame({"id": [f"t{i}" for i in range(4)], "text": texts[:4]}).to_csv(out / "test.csv", index=False)
cache = out / "cache"
for m in (avg, second):
    for s in ("valid", "test"):
        predict_logits(m, load_split(out / f"{s}.csv", name=s, label_if_present=True), cache=cache, progress=False)
members = {"avg": str(avg), "ck2": str(second)}
data = {"valid": str(out / "valid.csv"), "test": str(out / "test.csv")}
frame = vote(members, data, "optimize", cache_dir=cache, weights_dir=out / "weights", submissions_dir=out / "submissions",
             columns={"label_if_present": True})
print(frame.attrs["path"])
