"""A tiny stand-in for SmilingWolf's WD14 tagger, for running sd-scripts' real tagging script offline.

    python make_fake_tagger.py MODEL_DIR/SmilingWolf_wd-v1-4-convnext-tagger-v2

Writes model.onnx (input_1:0 [N,448,448,3] float -> predictions_sigmoid [N,13], the shapes of the real
tagger) and a 13-tag selected_tags.csv (4 ratings, 8 general tags, 1 character). The tags come out of a
fixed random linear map of the image's mean colour: nonsense, but the script's whole path runs. Needs
numpy and onnx (run it with the trainer's Python).
"""

import csv
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
ratings = ["general", "sensitive", "questionable", "explicit"]
general = ["1girl", "solo", "smile", "outdoors", "blue_sky", "looking_at_viewer", "simple_background", "red_theme"]
characters = ["hatsune_miku"]
with open(os.path.join(out, "selected_tags.csv"), "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["tag_id", "name", "category", "count"])
    rows = [(n, 9) for n in ratings] + [(n, 0) for n in general] + [(n, 4) for n in characters]
    for i, (name, category) in enumerate(rows):
        w.writerow([i, name, category, 1000])
k = len(rows)
rng = np.random.default_rng(0)
weight = (rng.standard_normal((3, k)) * 0.05).astype(np.float32)
bias = rng.standard_normal(k).astype(np.float32) * 2
x = helper.make_tensor_value_info("input_1:0", TensorProto.FLOAT, ["N", 448, 448, 3])
y = helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["N", k])
axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "axes")
nodes = [
    helper.make_node("ReduceMean", ["input_1:0", "axes"], ["mean"], keepdims=0),
    helper.make_node("MatMul", ["mean", "w"], ["mm"]),
    helper.make_node("Add", ["mm", "b"], ["logits"]),
    helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
]
initializers = [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"), axes]
graph = helper.make_graph(nodes, "fake_wd14", [x], [y], initializers)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, os.path.join(out, "model.onnx"))
