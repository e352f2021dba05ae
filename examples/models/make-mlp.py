"""Writes examples/models/mlp.onnx: a small float32 MLP, x[batch, 64] -> Gemm(64->128) ->
Relu -> Gemm(128->10) -> y[batch, 10], with a dynamic batch dimension.

The weights come from Python's own seeded Mersenne Twister (random.Random(SEED)), packed as
little-endian float32 with struct, so the file does not depend on numpy's generators and
re-running this script rewrites it byte for byte:

    python3 -m venv .venv && .venv/bin/pip install -r examples/models/requirements.txt
    .venv/bin/python examples/models/make-mlp.py   # writes examples/models/mlp.onnx
    git diff --exit-code examples/models/mlp.onnx  # no change

requirements.txt beside this script pins the onnx and protobuf that wrote the committed file;
the IR version and opset are set explicitly below rather than taken from onnx's defaults.
"""

import os
import random
import struct

import onnx
from onnx import TensorProto, helper

SEED = 16
IN_FEATURES, HIDDEN, OUT_FEATURES = 64, 128, 10
OPSET = 17
IR_VERSION = 8  # onnxruntime-node 1.30 reads IR versions up to 11


def weights(rng: random.Random, count: int, scale: float) -> bytes:
    """count float32 values uniform in [-scale, scale), little-endian."""
    return struct.pack(f"<{count}f", *(rng.uniform(-scale, scale) for _ in range(count)))


def initializer(name: str, dims: list[int], raw: bytes) -> TensorProto:
    return helper.make_tensor(name, TensorProto.FLOAT, dims, raw, raw=True)


def build() -> onnx.ModelProto:
    rng = random.Random(SEED)
    # Uniform init scaled by 1/sqrt(fan_in) (PyTorch's nn.Linear default), so activations
    # stay of order one for inputs of order one.
    w1 = initializer("w1", [IN_FEATURES, HIDDEN], weights(rng, IN_FEATURES * HIDDEN, IN_FEATURES**-0.5))
    b1 = initializer("b1", [HIDDEN], weights(rng, HIDDEN, IN_FEATURES**-0.5))
    w2 = initializer("w2", [HIDDEN, OUT_FEATURES], weights(rng, HIDDEN * OUT_FEATURES, HIDDEN**-0.5))
    b2 = initializer("b2", [OUT_FEATURES], weights(rng, OUT_FEATURES, HIDDEN**-0.5))
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="fc1"),
        helper.make_node("Relu", ["h"], ["a"], name="relu"),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["y"], name="fc2"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", IN_FEATURES])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUT_FEATURES])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="tensor-arena examples/models/make-mlp.py",
        producer_version="1",
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model)
    return model


def main() -> None:
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mlp.onnx")
    data = build().SerializeToString(deterministic=True)
    with open(out, "wb") as f:
        f.write(data)
    print(f"wrote {out} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
