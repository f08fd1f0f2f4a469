"""The Python API of the installed wheel, against the shipped sample
checkpoint: a script written for TensorRT-LLM's `tensorrt_llm.commands.prune`
runs unchanged but for its import line.

Run by .ci/run with the virtualenv's interpreter after `pip install .`:
    python -m unittest discover -s python/tests -v
Outputs are checked by reading the safetensors headers directly (8-byte
little-endian length, then JSON), so no third-party package is needed.
"""

import json
import os
import struct
import subprocess
import sys
import sysconfig
import tempfile
import unittest
from pathlib import Path

import trtllm_prune
from trtllm_prune import PRUNABLE_WEIGHTS, PruneError, can_prune, load_config, prune_and_save

SAMPLE = Path(__file__).resolve().parents[2] / "sample" / "tinyllama-tp2"


def read_safetensors(path):
    """(header without __metadata__, data buffer) of a safetensors file."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    return header, raw[8 + n :]


def tensor_bytes(header, data, name):
    begin, end = header[name]["data_offsets"]
    return data[begin:end]


class OriginalNames(unittest.TestCase):
    def test_is_the_installed_package_not_the_source_tree(self):
        site = Path(sysconfig.get_path("purelib")).resolve()
        self.assertTrue(Path(trtllm_prune.__file__).resolve().is_relative_to(site), trtllm_prune.__file__)
        self.assertTrue((Path(trtllm_prune.__file__).parent / "py.typed").is_file())

    def test_prunable_weights_are_the_originals_in_order(self):
        self.assertEqual(
            PRUNABLE_WEIGHTS,
            [
                "attention.qkv.weight",
                "attention.proj.weight",
                "mlp.fc.weight",
                "mlp.proj.weight",
                "mlp.gate.weight",
            ],
        )

    def test_can_prune_is_a_substring_test(self):
        self.assertTrue(can_prune("transformer.layers.0.attention.qkv.weight"))
        self.assertTrue(can_prune("transformer.layers.3.attention.qkv.weights_scaling_factor"))
        self.assertTrue(can_prune("transformer.layers.1.mlp.gate.weight"))
        self.assertFalse(can_prune("transformer.layers.0.attention.dense.weight"))
        self.assertFalse(can_prune("transformer.layers.0.mlp.router.weight"))
        self.assertFalse(can_prune("lm_head.weight"))

    def test_load_config_reads_json_and_gives_empty_for_a_missing_file(self):
        self.assertEqual(load_config(SAMPLE / "no-such-config.json"), {})
        config = load_config(SAMPLE / "config.json")
        self.assertEqual(config["mapping"]["world_size"], 2)
        self.assertEqual(load_config(str(SAMPLE / "config.json")), config)


class PruneAndSave(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_script_for_the_original_runs_unchanged(self):
        # What scripts did with tensorrt_llm.commands.prune: positional
        # arguments, absolute string paths, no return value used.
        out = os.path.abspath(str(self.root / "out"))
        prune_and_save(os.path.abspath(str(SAMPLE)), out, False)
        config = json.loads(Path(out, "config.json").read_text())
        self.assertIs(config["is_pruned"], True)
        for rank in range(load_config(SAMPLE / "config.json")["mapping"]["world_size"]):
            before, data_in = read_safetensors(SAMPLE / f"rank{rank}.safetensors")
            after, data_out = read_safetensors(Path(out) / f"rank{rank}.safetensors")
            self.assertEqual(sorted(before), sorted(after))
            for name, entry in before.items():
                self.assertEqual(after[name]["dtype"], entry["dtype"], name)
                if can_prune(name):
                    self.assertEqual(after[name]["shape"], [0], name)
                    self.assertEqual(tensor_bytes(after, data_out, name), b"", name)
                else:
                    self.assertEqual(after[name]["shape"], entry["shape"], name)
                    self.assertEqual(
                        tensor_bytes(after, data_out, name), tensor_bytes(before, data_in, name), name
                    )

    def test_prune_all_empties_every_tensor_and_returns_the_summary(self):
        out = self.root / "all"
        summary = prune_and_save(SAMPLE, out, True)
        header, data = read_safetensors(out / "rank0.safetensors")
        self.assertTrue(all(e["shape"] == [0] for e in header.values()))
        self.assertEqual(data, b"")
        self.assertEqual(summary["totals"]["tensors_kept"], 0)
        self.assertGreater(summary["totals"]["tensors_pruned"], 0)

    def test_keyword_extras_reach_the_tool(self):
        out = self.root / "kept"
        prune_and_save(SAMPLE, out, True, keep=["*lm_head*"], verify=True, jobs=1)
        header, _ = read_safetensors(out / "rank0.safetensors")
        self.assertNotEqual(header["lm_head.weight"]["shape"], [0])
        self.assertEqual(header["transformer.ln_f.weight"]["shape"], [0])
        with self.assertRaises(ValueError):
            prune_and_save(SAMPLE, self.root / "bad", False, jobs=0)

    def test_hollow_keeps_every_shape_and_reads_zeros_where_weights_were(self):
        out = self.root / "hollow"
        summary = prune_and_save(SAMPLE, out, False, hollow=True, verify=True)
        self.assertEqual(summary["hollow"]["apparent_bytes"], summary["totals"]["bytes_in"])
        self.assertLess(summary["hollow"]["stored_bytes"], summary["totals"]["bytes_in"])
        for rank in range(load_config(SAMPLE / "config.json")["mapping"]["world_size"]):
            before, data_in = read_safetensors(SAMPLE / f"rank{rank}.safetensors")
            after, data_out = read_safetensors(out / f"rank{rank}.safetensors")
            self.assertEqual(after, before)
            for name in before:
                expected = tensor_bytes(before, data_in, name)
                if can_prune(name):
                    expected = bytes(len(expected))
                self.assertEqual(tensor_bytes(after, data_out, name), expected, name)

    def test_a_hugging_face_folder_the_rule_misses_is_refused_unless_a_full_copy_is_asked(self):
        hf = self.root / "hf"
        hf.mkdir()
        names = [f"model.layers.{l}.mlp.down_proj.weight" for l in range(2)]
        header, offset = {}, 0
        for name in names:
            header[name] = {"dtype": "BF16", "shape": [4, 4], "data_offsets": [offset, offset + 32]}
            offset += 32
        text = json.dumps(header).encode()
        (hf / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes(offset))
        with self.assertRaises(PruneError) as caught:
            prune_and_save(hf, self.root / "refused", False)
        self.assertIn("--prune '*.mlp.down_proj.weight'", str(caught.exception))
        self.assertFalse((self.root / "refused").exists())
        prune_and_save(hf, self.root / "pruned", False, prune="*.mlp.down_proj.weight")
        after, _ = read_safetensors(self.root / "pruned" / "model.safetensors")
        self.assertTrue(all(after[n]["shape"] == [0] for n in names))
        prune_and_save(hf, self.root / "copy", False, full_copy=True)
        after, _ = read_safetensors(self.root / "copy" / "model.safetensors")
        self.assertTrue(all(after[n]["shape"] == [4, 4] for n in names))

    def test_a_failure_raises_a_runtime_error_with_the_tools_message(self):
        missing = self.root / "no-such-checkpoint"
        with self.assertRaises(RuntimeError) as caught:
            prune_and_save(str(missing), str(self.root / "out"), False)
        error = caught.exception
        self.assertIsInstance(error, PruneError)
        self.assertEqual(error.exit_code, 1)
        self.assertIn(str(missing), str(error))
        self.assertNotIn("\n", str(error))
        self.assertFalse((self.root / "out").exists())

    def test_python_dash_m_runs_the_command_line(self):
        done = subprocess.run(
            [sys.executable, "-m", "trtllm_prune", "--version"], capture_output=True, text=True
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("trtllm-prune", done.stdout)
        done = subprocess.run([sys.executable, "-m", "trtllm_prune", "--no-such-flag"], capture_output=True)
        self.assertEqual(done.returncode, 2)


if __name__ == "__main__":
    unittest.main()
