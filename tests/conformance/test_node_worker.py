"""What only the Node worker has: ES modules, exported schemas, parameters, default exports."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

from algora.workers.local import LocalBackend
from algora.workers.pool import Pool
from algora.workers.spec import CallRequest

from .test_conformance import make_spec

ESM_MODEL = """
export default class Model {
  static inputSchema = { type: 'number' };
  inputSchema = { type: 'number' };
  outputSchema = { type: 'object' };
  async load() { this.base = 10; }
  predict(input, parameters) {
    return { sum: this.base + input, parameters, big: 7n, typed: new Int16Array([1, -2]) };
  }
}
"""


def test_an_es_module_with_schemas_and_parameters(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "node", "")
    (spec.source_dir / "model.js").unlink()
    (spec.source_dir / "model.mjs").write_text(ESM_MODEL, encoding="utf-8")
    spec = replace(spec, entrypoint="model.mjs")

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        info = await pool.start()
        try:
            assert (info.kind, info.batch) == ("class", False)
            assert (info.input_schema, info.output_schema) == (
                {"type": "number"},
                {"type": "object"},
            )
            fields = {"parameters": {"scale": 2}}
            result = await pool.call(CallRequest("p", "json", b"5", 10.0, fields=fields))
            assert json.loads(result.payload) == {
                "sum": 15, "parameters": {"scale": 2}, "big": 7, "typed": [1, -2],
            }  # fmt: skip
            result = await pool.call(CallRequest("q", "json", b"1", 10.0))
            assert "parameters" not in json.loads(result.payload)
        finally:
            await pool.stop()

    asyncio.run(main())


def test_a_module_that_is_a_function(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, "node", "module.exports = async (input) => input * 3;\n")

    async def main() -> None:
        pool = Pool(spec, LocalBackend(), tmp_path / "data")
        info = await pool.start()
        try:
            assert info.kind == "function"
            assert (await pool.call(CallRequest("f", "json", b"4", 10.0))).payload == b"12"
        finally:
            await pool.stop()

    asyncio.run(main())
