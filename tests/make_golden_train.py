"""Generate the training golden file with torch autograd and torch.optim.AdamW as the reference, and check
numpy-bert against torch on whole tensors (what the stored file can only sample), printing the figures.

Needs torch==2.13.0 and transformers (never needed to run the tests). Writes tests/golden/train.npz:
  grad/<case>/...       torch's loss and every gradient of the random-weight classifiers of train_cases.py
                        (sequence classifiers, the token classifiers of TOKEN_CASES, the question-answering
                        models of QA_CASES and the masked language models of MLM_CASES)
  minilm/...            the real all-MiniLM-L6-v2 with a seeded head: torch's loss and, per tensor, max |grad|,
                        its L2 norm, seeded sample entries and seeded random projections
  minilm_tokens/...     the same model as a token classifier on words with seeded labels: the token labels
                        as transformers' examples align them (word_ids), torch's loss and the gradients' summary
  minilm_qa/...         the same model as a question-answering model (seeded head) on question/sentence pairs
  minilm_mlm/...        the same model as a masked language model (a new seeded MLM head) on the sentences with
                        tokens masked by mlm_data.mask_tokens: the masked inputs, the labels, loss and gradients
  mnrl/<case>/...       sentence-transformers' MultipleNegativesRankingLoss: the loss and the encoder's gradients
                        (MiniLM summarized as above, the tiny model whole)
  steps/<case>/...      10 AdamW steps with the linear schedule and clipping: the loss at every step and the
                        final weights (whole for the random classifier, sampled for MiniLM)
  adamw/...             the weights after adamw_step's settings in train_cases.ADAMW, from seeded gradients
It also saves classifiers (of sequences and of tokens), question-answering and masked language models with
model_folder.save_pretrained and loads them with transformers (goal 4).

Run from the repository root:  python tests/make_golden_train.py
"""
import os
import tempfile

import numpy as np
import torch
from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM, BertForQuestionAnswering,
                          BertForSequenceClassification, BertForTokenClassification, Trainer,
                          get_linear_schedule_with_warmup)

from conftest import GOLDEN_DIR, minilm_dir  # first: puts the repository on sys.path
import train_cases as tc  # noqa: E402 (after conftest)
from bert import bert, classifier_head, mlm_head, qa_head, token_classifier_head
from convert import to_params, to_state_dict
from model_folder import load_model_folder, save_pretrained
from optim import adamw_init, adamw_step, leaves
from embedding_training import init_embedding_training, mnrl_loss_and_grads
from finetune import batch_labels, never_masked, token_labels
from layers import IGNORE
from mlm_data import mask_tokens
from training import init_classifier, init_masked_lm, init_question_answering, init_token_classifier, loss_and_grads

torch.set_num_threads(2)
OUT = {}


def model_class(params):
    """transformers' model of params' kind: BertForSequenceClassification, BertForTokenClassification (a
    classifier without a pooler), BertForQuestionAnswering (a "qa" head) or BertForMaskedLM (an "mlm" head)."""
    if "qa" in params:
        return BertForQuestionAnswering
    if "mlm" in params:
        return BertForMaskedLM
    return BertForSequenceClassification if "pooler" in params else BertForTokenClassification


def torch_model(hparams, params):
    """The model of params' kind (model_class) holding exactly params, in eval mode (no dropout)."""
    head = params.get("qa", params.get("classifier", {"w": np.zeros((1, 2))}))  # an MLM's: num_labels unused
    config = BertConfig(**{k: v for k, v in hparams.items() if k != "num_labels"}, num_labels=head["w"].shape[1])
    model = model_class(params)(config).eval()
    state = to_state_dict(params)
    if "mlm" in params:  # the decoder: tied to the word embeddings (unless it is the head's own) and to the bias
        state.setdefault("cls.predictions.decoder.weight", state["bert.embeddings.word_embeddings.weight"])
        state.setdefault("cls.predictions.decoder.bias", state["cls.predictions.bias"])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
    return model


def as_params(named, n_layers):
    """{HF name: tensor} -> numpy-bert's layout, float32 contiguous."""
    tree = to_params({name: t.detach().numpy() for name, t in named.items()}, n_layers,
                     tied="cls.predictions.decoder.weight" not in named)  # a tied parameter is listed once
    return [(path, np.ascontiguousarray(a, dtype=np.float32)) for path, a in leaves(tree)]


def torch_loss_and_grads(model, inputs):
    input_ids, segment_ids, attention_mask, labels = inputs
    model.zero_grad()
    targets = ({"start_positions": torch.from_numpy(labels[:, 0]), "end_positions": torch.from_numpy(labels[:, 1])}
               if isinstance(model, BertForQuestionAnswering) else {"labels": torch.from_numpy(labels)})
    out = model(input_ids=torch.from_numpy(input_ids), token_type_ids=torch.from_numpy(segment_ids),
                attention_mask=torch.from_numpy(attention_mask), **targets)
    out.loss.backward()
    grads = as_params({n: p.grad for n, p in model.named_parameters() if p.grad is not None},  # an untied MLM:
                      model.config.num_hidden_layers)  # its decoder's bias is used, cls.predictions.bias is not
    return out.loss.item(), grads


def compare(label, ours, torchs):
    """Print and return the worst max |ours - torch| / max |torch| over the tensors, but for those that are zero
    but for rounding (train_cases.zero_gradients), whose largest entries are printed instead."""
    zeros = tc.zero_gradients(ours)
    pairs = [(path, a, b) for (path, a), (_, b) in zip(leaves(ours), torchs)]
    worst = max((float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30)), path)
                for path, a, b in pairs if path not in zeros)
    print(f"  {label}: worst tensor max|ours - torch| / max|torch| = {worst[0]:.2e} ({worst[1]})")
    for path, a, b in pairs:
        if path in zeros:
            print(f"    {path}, zero but for rounding: max |ours| {np.abs(a).max():.1e}, max |torch| "
                  f"{np.abs(b).max():.1e}")
    return worst[0]


def summarize(prefix, arrays):
    """Store, per array in leaves order: max |a|, the L2 norm, seeded sample entries and seeded projections."""
    flats = [(path, a.reshape(-1)) for path, a in arrays]
    idx = np.stack([tc.probe_indices(path, flat) for path, flat in flats])
    OUT[f"{prefix}/max"] = np.array([np.abs(flat).max() for _, flat in flats], dtype=np.float32)
    OUT[f"{prefix}/norm"] = np.array([np.linalg.norm(flat.astype(np.float64)) for _, flat in flats])
    OUT[f"{prefix}/idx"] = idx.astype(np.int32)
    OUT[f"{prefix}/val"] = np.stack([flat[i] for (_, flat), i in zip(flats, idx)])
    OUT[f"{prefix}/proj"] = np.stack([tc.probe_vectors(path, flat.size) @ flat for path, flat in flats])


def flat(arrays):
    """One float32 vector of the arrays, in leaves order."""
    return np.concatenate([a.reshape(-1) for _, a in arrays])


def random_gradients():
    print("gradients, random-weight classifiers (dropout off):")
    for name in tc.GRADIENT_CASES:
        hparams, params = tc.classifier(name)
        inputs = tc.batch(name)
        loss, grads = torch_loss_and_grads(torch_model(hparams, params), inputs)
        OUT[f"grad/{name}/loss"], OUT[f"grad/{name}/flat"] = np.float64(loss), flat(grads)
        our_loss, ours = loss_and_grads(params, hparams, *inputs)
        print(f"  {name}: loss {loss:.6f}, ours - torch {our_loss - loss:+.1e}")
        compare(name, ours, grads)


def minilm():
    tokenizer, hparams, params = load_model_folder(minilm_dir())
    params = init_classifier(params, hparams, 2, seed=tc.HEAD_SEED)
    return tokenizer, hparams, params


def minilm_gradients():
    print("gradients, all-MiniLM-L6-v2 with a seeded head (dropout off):")
    tokenizer, hparams, params = minilm()
    model = BertForSequenceClassification.from_pretrained(minilm_dir(), num_labels=2).eval()
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(params["classifier"]["w"].T))
        model.classifier.bias.copy_(torch.from_numpy(params["classifier"]["b"]))
    ours_state = to_state_dict(params)
    assert max(float(np.abs(ours_state[n] - p.detach().numpy()).max()) for n, p in model.named_parameters()) == 0
    minilm_case("minilm", "MiniLM", model, params, hparams, tc.minilm_batch(tokenizer))


def minilm_case(prefix, label, model, params, hparams, inputs, note=""):
    """torch's loss and summarized gradients of a MiniLM case, stored under prefix, and ours against them."""
    loss, grads = torch_loss_and_grads(model, inputs)
    OUT[f"{prefix}/loss"] = np.float64(loss)
    summarize(f"{prefix}/grad", grads)
    our_loss, ours = loss_and_grads(params, hparams, *inputs)
    print(f"  {note}loss {loss:.6f}, ours - torch {our_loss - loss:+.1e}")
    compare(label, ours, grads)


def minilm_token_gradients():
    print("gradients, all-MiniLM-L6-v2 as a token classifier with a seeded head (dropout off):")
    tokenizer, hparams, params = load_model_folder(minilm_dir())
    params = init_token_classifier(params, hparams, tc.MINILM_TOKEN_LABELS, seed=tc.HEAD_SEED)
    hf_tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    enc = hf_tokenizer(tc.MINILM_WORDS, is_split_into_words=True, padding=True, return_tensors="np")
    word_labels = tc.minilm_word_labels()
    labels = np.full(enc["input_ids"].shape, IGNORE, dtype=np.int64)
    for row, words in enumerate(word_labels):  # transformers' examples: a word's label on its first token
        previous = None
        for position, word in enumerate(enc.word_ids(row)):
            if word is not None and word != previous:
                labels[row, position] = words[word]
            previous = word
    rows = [token_labels(tokenizer, w, lab) for w, lab in zip(tc.MINILM_WORDS, word_labels)]
    encoded = tokenizer.batch_encode_tokens([tokens for tokens, _ in rows], max_length=128)
    assert (encoded["input_ids"] == enc["input_ids"]).all()
    assert (batch_labels([lab for _, lab in rows], range(len(rows)), labels.shape[1]) == labels).all()
    OUT["minilm_tokens/labels"] = labels
    minilm_case("minilm_tokens", "MiniLM tokens", torch_model(hparams, params), params, hparams,
                (encoded["input_ids"], encoded["segment_ids"], encoded["attention_mask"], labels),
                f"{int((labels != IGNORE).sum())} labelled tokens of {int(encoded['attention_mask'].sum())}; ")


def minilm_qa_gradients():
    print("gradients, all-MiniLM-L6-v2 as a question-answering model with a seeded head (dropout off):")
    tokenizer, hparams, params = load_model_folder(minilm_dir())
    params = init_question_answering(params, hparams, seed=tc.HEAD_SEED)
    inputs = tc.minilm_qa_batch(tokenizer)
    hf_tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    enc = hf_tokenizer([tc.MINILM_QUESTION] * len(tc.MINILM_SENTENCES), tc.MINILM_SENTENCES, padding=True,
                       return_tensors="np")
    assert all((ours == enc[key]).all() for ours, key in zip(inputs, ("input_ids", "token_type_ids",
                                                                     "attention_mask")))
    minilm_case("minilm_qa", "MiniLM question answering", torch_model(hparams, params), params, hparams, inputs)


def minilm_mlm_gradients():
    print("gradients, all-MiniLM-L6-v2 as a masked language model with a new seeded head (dropout off):")
    tokenizer, hparams, params = load_model_folder(minilm_dir())
    params = init_masked_lm(params, hparams, seed=tc.HEAD_SEED)
    encoded = tokenizer.batch_encode(tc.MINILM_SENTENCES, max_length=128)
    enc = AutoTokenizer.from_pretrained(minilm_dir())(tc.MINILM_SENTENCES, padding=True, return_tensors="np")
    assert (encoded["input_ids"] == enc["input_ids"]).all()
    input_ids, labels = mask_tokens(encoded["input_ids"], np.random.default_rng(tc.HEAD_SEED),
                                    tokenizer.vocab["[MASK]"], len(tokenizer.vocab), never_masked(tokenizer),
                                    tc.MINILM_MLM_PROBABILITY)
    OUT["minilm_mlm/input_ids"], OUT["minilm_mlm/labels"] = input_ids, labels
    minilm_case("minilm_mlm", "MiniLM masked LM", torch_model(hparams, params), params, hparams,
                (input_ids, encoded["segment_ids"], encoded["attention_mask"], labels),
                f"{int((labels != IGNORE).sum())} masked tokens of {int(encoded['attention_mask'].sum())}; ")


def mnrl_gradients():
    """sentence-transformers' MultipleNegativesRankingLoss, backward through its SentenceTransformer."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    print("gradients, MultipleNegativesRankingLoss (dropout off):")
    for name, (folder, st_settings, _, scale) in tc.MNRL_CASES.items():
        folder = minilm_dir() if folder is None else os.path.join(GOLDEN_DIR, folder)
        tokenizer, hparams, params = load_model_folder(folder)
        if st_settings is None:
            model = SentenceTransformer(folder, device="cpu")
        else:
            hparams = dict(hparams, sentence_transformers=st_settings)
            model = SentenceTransformer(modules=[Transformer(folder, max_seq_length=128),
                                                 Pooling(hparams["hidden_size"], st_settings["pooling"])],
                                        device="cpu")
        model.eval()
        columns = tc.mnrl_columns(name)
        features = [model.preprocess(texts) for texts in columns]
        ours_columns = [tokenizer.batch_encode(texts, max_length=128) for texts in columns]
        for theirs, ours in zip(features, ours_columns):
            assert (theirs["input_ids"].numpy() == ours["input_ids"]).all()
        encoder = model[0].auto_model
        encoder.zero_grad()
        loss = MultipleNegativesRankingLoss(model, scale=scale)(features, None)
        loss.backward()
        named = {n: p.grad for n, p in encoder.named_parameters() if not n.startswith("pooler.")}
        grads = as_params(named, hparams["num_hidden_layers"])
        OUT[f"mnrl/{name}/loss"] = np.float64(loss.item())
        if name == "minilm":
            summarize(f"mnrl/{name}/grad", grads)
        else:
            OUT[f"mnrl/{name}/flat"] = flat(grads)
        our_loss, ours = mnrl_loss_and_grads(init_embedding_training(params, hparams), hparams, ours_columns, scale)
        print(f"  {name}: loss {loss.item():.6f}, ours - torch {our_loss - loss.item():+.1e}")
        compare(name, ours, grads)


def torch_train_steps(model, batches, settings):
    """Trainer's loop: AdamW over Trainer's decay groups, the linear schedule, clipping; losses per step."""
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": settings["weight_decay"]},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=settings["lr"])
    warmup = int(np.ceil(settings["steps"] * settings["warmup_ratio"]))
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, settings["steps"])
    losses = []
    for inputs in batches:
        input_ids, segment_ids, attention_mask, labels = map(torch.from_numpy, inputs)
        loss = model(input_ids=input_ids, token_type_ids=segment_ids, attention_mask=attention_mask,
                     labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings["max_norm"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return np.array(losses), as_params(dict(model.named_parameters()), model.config.num_hidden_layers)


def report_steps(label, losses, ours_losses, params, final):
    print(f"  {label}: losses {losses[0]:.5f} -> {losses[-1]:.5f}; worst |ours - torch| / torch over the steps "
          f"{np.max(np.abs(ours_losses - losses) / np.abs(losses)):.1e}; final weights max |ours - torch| "
          f"{max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(leaves(params), final)):.1e}")


def steps():
    print("10 AdamW steps, linear schedule with warmup, clipping (dropout off):")
    hparams, params = tc.classifier("gelu")
    batches = [tc.batch("gelu", step) for step in range(tc.TRAIN_STEPS["steps"])]
    losses, final = torch_train_steps(torch_model(hparams, params), batches, tc.TRAIN_STEPS)
    OUT["steps/gelu/loss"], OUT["steps/gelu/flat"] = losses, flat(final)
    report_steps("random gelu", losses, tc.train_steps(params, hparams, batches, tc.TRAIN_STEPS)[0], params, final)

    tokenizer, hparams, params = minilm()
    model = torch_model(hparams, params)
    batches = [tc.minilm_batch(tokenizer)] * tc.MINILM_TRAIN_STEPS["steps"]
    start = {path: a.copy() for path, a in leaves(params)}
    losses, final = torch_train_steps(model, batches, tc.MINILM_TRAIN_STEPS)
    OUT["steps/minilm/loss"] = losses
    summarize("steps/minilm/delta", [(path, a - start[path]) for path, a in final])
    ours_losses, norms = tc.train_steps(params, hparams, batches, tc.MINILM_TRAIN_STEPS)
    print(f"  MiniLM gradient norms {norms.min():.3f} to {norms.max():.3f} "
          f"(clipped at {tc.MINILM_TRAIN_STEPS['max_norm']})")
    report_steps("MiniLM", losses, ours_losses, params, final)
    deltas = [(p, a - start[p]) for p, a in final]
    compare("MiniLM update (final - start)", {p: a - start[p] for p, a in leaves(params)}, deltas)


def adamw_alone():
    hparams, params = tc.classifier("gelu")
    model = torch_model(hparams, params)
    decay = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    s = tc.ADAMW
    groups = [{"params": [p for n, p in named if n in decay], "weight_decay": s["weight_decay"]},
              {"params": [p for n, p in named if n not in decay], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=s["lr"], betas=s["betas"], eps=s["eps"])
    state = adamw_init(params)
    for step in range(s["steps"]):
        grads = tc.adamw_grads(params, step)
        for n, p in named:
            p.grad = torch.from_numpy(np.ascontiguousarray(dict(to_state_dict(grads))[n]))
        optimizer.step()
        adamw_step(params, grads, state, s["lr"], s["weight_decay"], s["betas"], s["eps"])
    final = as_params(dict(named), hparams["num_hidden_layers"])
    OUT["adamw/flat"] = flat(final)
    print(f"adamw_step alone ({s}): max |ours - torch| "
          f"{max(float(np.abs(a - b).max()) for (_, a), (_, b) in zip(leaves(params), final)):.1e}")


def round_trip():
    """Goal 4: save_pretrained's folder in transformers: no missing or unexpected keys, the same logits."""
    print("save_pretrained -> transformers:")
    tokenizer, hparams, params = minilm()
    cases = [("MiniLM + seeded head", tokenizer, dict(hparams, id2label={0: "negative", 1: "positive"}), params)]
    tiny_tokenizer, tiny_hparams, tiny = load_model_folder(os.path.join(GOLDEN_DIR, "tiny-gelu"))
    cases.append(("tests/golden/tiny-gelu + 3-label head", tiny_tokenizer, tiny_hparams,
                  init_classifier(tiny, tiny_hparams, 3, seed=1)))
    cases.append(("MiniLM + seeded token head", tokenizer, dict(hparams, id2label=dict(enumerate("OABCD"))),
                  init_token_classifier(params, hparams, 5, seed=2)))
    cases.append(("tests/golden/tiny-gelu + 4-label token head", tiny_tokenizer, tiny_hparams,
                  init_token_classifier(tiny, tiny_hparams, 4, seed=3)))
    cases.append(("MiniLM + seeded question-answering head", tokenizer, hparams,
                  init_question_answering(params, hparams, seed=4)))
    cases.append(("tests/golden/tiny-gelu + question-answering head", tiny_tokenizer, tiny_hparams,
                  init_question_answering(tiny, tiny_hparams, seed=5)))
    cases.append(("MiniLM + seeded new MLM head", tokenizer, hparams, init_masked_lm(params, hparams, seed=6)))
    cases.append(("tests/golden/tiny-gelu + its own MLM head", tiny_tokenizer, tiny_hparams,
                  init_masked_lm(tiny, tiny_hparams)))
    untied = dict(tiny_hparams, tie_word_embeddings=False)
    cases.append(("tests/golden/tiny-gelu + its own MLM head and a new decoder (untied)", tiny_tokenizer, untied,
                  init_masked_lm(tiny, untied, seed=7)))
    for label, tok, hp, p in cases:
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "saved")
            save_pretrained(folder, tok, p, hp)
            tokens = "pooler" not in p
            model, info = model_class(p).from_pretrained(folder, output_loading_info=True)
            hf_tok = AutoTokenizer.from_pretrained(folder)
            enc = hf_tok(tc.MINILM_SENTENCES, padding=True, return_tensors="pt")
            with torch.no_grad():
                out = model.eval()(**enc)
            hf_logits = (np.stack([out.start_logits.numpy(), out.end_logits.numpy()], -1) if "qa" in p else
                         out.logits.numpy())
            ours = tok.batch_encode(tc.MINILM_SENTENCES, max_length=128)
            assert (ours["input_ids"] == enc["input_ids"].numpy()).all()
            seq, pooled = bert(ours["input_ids"], ours["segment_ids"], p, hp, attention_mask=ours["attention_mask"])
            logits = (np.stack(qa_head(seq, p), -1) if "qa" in p else mlm_head(seq, p, hp) if "mlm" in p else
                      token_classifier_head(seq, p) if tokens else classifier_head(pooled, p))
            real = ours["attention_mask"].astype(bool)[..., None] if tokens else True
            diff = float(np.abs(np.where(real, logits - hf_logits, 0)).max())
            keys = {k: v for k, v in info.items() if v}
            print(f"  {label}: {type(model).__name__}, loading info {keys or 'clean'}; "
                  f"id2label {model.config.id2label}; "
                  f"logits max |ours - transformers| {diff:.1e}")
            assert not keys and diff <= 1e-4


def main():
    random_gradients()
    minilm_gradients()
    minilm_token_gradients()
    minilm_qa_gradients()
    minilm_mlm_gradients()
    mnrl_gradients()
    steps()
    adamw_alone()
    round_trip()
    path = os.path.join(GOLDEN_DIR, "train.npz")
    np.savez_compressed(path, **OUT)
    print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KiB, {len(OUT)} arrays)")


if __name__ == "__main__":
    main()
