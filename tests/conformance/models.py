"""The same model written for each worker kind the conformance suite drives.

Each one behaves alike on the same input (``test_conformance.py`` says what it must do):
``"fail"`` raises after printing, ``"sleep"`` never answers, ``"die"`` exits with status 3,
``"hog"`` allocates memory without end, ``"spin"`` uses CPU without end, ``"sizes"`` returns
the batch sizes seen, other text is upper-cased and printed, bytes are reversed, JSON comes
back as ``{"got": input}``, null returns nothing, and tensors are doubled.
"""

from __future__ import annotations

PYTHON = """
import os
import time


class Model:
    def load(self):
        self.sizes = []

    def predict(self, input):
        self.sizes.append(1)
        if isinstance(input, bytes):
            return input[::-1]
        if isinstance(input, str):
            if input == "fail":
                print("before failure")
                raise ValueError("bad input: fail")
            if input == "sleep":
                time.sleep(60)
            if input == "die":
                os._exit(3)
            if input == "hog":
                return len([0] * (1 << 31))
            if input == "spin":
                while True:
                    pass
            if input == "sizes":
                return self.sizes
            if input == "slow":
                time.sleep(0.3)
            print("echo", input)
            return input.upper()
        if input is None:
            return None
        if hasattr(input, "dtype"):
            return input * 2 if input.dtype.kind != "O" else [len(b) for b in input.tolist()]
        if isinstance(input, dict) and all(hasattr(v, "dtype") for v in input.values()):
            return {"sum": input["a"] + input["b"]}
        return {"got": input}

    def predict_batch(self, inputs):
        results = [self.predict(x) for x in inputs]
        del self.sizes[len(self.sizes) - len(inputs) :]
        self.sizes.append(len(inputs))
        print("batch output goes to the log")
        return results
"""

NODE = r"""
'use strict';

class Model {
  load() {
    this.sizes = [];
  }

  async predict(input) {
    this.sizes.push(1);
    if (Buffer.isBuffer(input)) return Buffer.from(input).reverse();
    if (typeof input === 'string') {
      if (input === 'fail') {
        console.log('before failure');
        throw new RangeError('bad input: fail');
      }
      if (input === 'sleep') await new Promise((resolve) => setTimeout(resolve, 60000));
      if (input === 'die') process.exit(3);
      if (input === 'hog') {
        const kept = [];
        for (;;) kept.push(new Array(1 << 20).fill(kept.length));
      }
      if (input === 'spin') for (;;);
      if (input === 'sizes') return this.sizes;
      if (input === 'slow') await new Promise((resolve) => setTimeout(resolve, 300));
      console.log('echo', input);
      return input.toUpperCase();
    }
    if (input === null) return null;
    if (input.datatype === 'BYTES') return input.data.map((b) => b.length);
    if (input.datatype) return { ...input, data: input.data.map((v) => v * 2) };
    if (input.a && input.a.datatype) {
      return { sum: { ...input.a, data: input.a.data.map((v, i) => v + input.b.data[i]) } };
    }
    return { got: input };
  }

  async predictBatch(inputs) {
    const out = [];
    for (const x of inputs) out.push(await this.predict(x));
    this.sizes.splice(this.sizes.length - inputs.length, inputs.length);
    this.sizes.push(inputs.length);
    console.log('batch output goes to the log');
    return out;
  }
}

module.exports = { Model };
"""

LOAD_ERROR = {
    "python": "print('loading...')\nraise RuntimeError('weights missing')\n",
    "node": "console.log('loading...');\nthrow new Error('weights missing');\n",
}
