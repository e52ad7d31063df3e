"""BERT (Devlin et al., 2018, "BERT: Pre-training of Deep Bidirectional Transformers") in NumPy.

Read top to bottom: activations, the two building blocks (dense layer, layer norm), then the model in the
order data flows through it — embeddings, N encoder layers (multi-head self-attention and feed-forward,
each followed by a residual connection and layer norm), pooler — the two pre-training heads (masked
language model, next sentence prediction) and the heads of fine-tuned checkpoints (sequence and token
classification, question answering).

params is a nested dict of float32 arrays (layout in README.md, "The params layout"); hparams is the
model's config.json as a dict (CONFIG_REQUIRED and CONFIG_DEFAULTS, at the end, say what is read from it).
Shapes: B = batch, L = sequence length, H = hidden size, I = intermediate size, V = vocabulary size,
A = attention heads, D = H // A. Everything is float32. The helpers take numpy's out= (out=x works in
place); the model functions never modify what they are given.
"""
import numpy as np

# --- Activations --------------------------------------------------------------------------------------

# erf(z) = tanh(z * P(z^2)): P is a degree-6 polynomial fitted to artanh(erf(z)) / z on z in (0, 4.5]
# (tests/make_erf_coefficients.py). The approximation is within 6e-8 of erf; evaluated in float32 it stays
# within 1.5e-7 (about 2 ulp) of math.erf. P grows with z^2, so tanh saturates to +-1 as erf does.
ERF_COEFFICIENTS = np.array([1.1283797054277296, 0.10276548192251347, -1.843849959720543e-4,
                             -6.257181820101466e-4, 8.97119366361249e-5, -5.985557462915383e-6,
                             1.5895055072089011e-7], dtype=np.float32)


def odd_polynomial(x, coefficients):  # a new array
    """x * P(x^2), P's coefficients lowest first, by Horner's rule in place on one temporary."""
    with np.errstate(over="ignore"):  # for huge |x| it overflows to +-inf: the callers' limits handle that
        s = x * x
        p = s * coefficients[-1]
        for c in coefficients[-2:0:-1]:
            p += c
            p *= s
        p += coefficients[0]
        p *= x
    return p


def erf(x):
    """The error function, elementwise, float32: tanh(x P(x^2)), and tanh(+-inf) = +-1."""
    p = odd_polynomial(x, ERF_COEFFICIENTS)
    return np.tanh(p, out=p)


# GELU(x) = x/2 (1 + erf(x / sqrt(2))), and erf(x / sqrt(2)) = tanh(x Q(x^2)) with Q(s) = P(s / 2) / sqrt(2): these
# are Q's coefficients. GELU's tanh approximation is the same form with Q(s) = sqrt(2/pi) (1 + 0.044715 s).
GELU_COEFFICIENTS = (ERF_COEFFICIENTS.astype(np.float64) / np.sqrt(2) / 2.0 ** np.arange(len(ERF_COEFFICIENTS))
                     ).astype(np.float32)
GELU_TANH_COEFFICIENTS = (np.sqrt(2 / np.pi) * np.array([1, 0.044715])).astype(np.float32)


def gelu(x, out=None):
    """Exact GELU, x * Phi(x) = x/2 * (1 + erf(x / sqrt(2))): BERT's "gelu"."""
    return np.multiply(x, gelu_phi(x, GELU_COEFFICIENTS), out=out)


def gelu_tanh(x, out=None):
    """GELU's tanh approximation, x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): "gelu_new" / "gelu_pytorch_tanh"."""
    return np.multiply(x, gelu_phi(x, GELU_TANH_COEFFICIENTS), out=out)


def gelu_phi(x, coefficients):  # a new array
    """GELU's Phi(x) in the form (1 + tanh(x Q(x^2))) / 2, Q's coefficients lowest first."""
    t = odd_polynomial(x, coefficients)
    np.tanh(t, out=t)
    t += np.float32(1)
    t *= np.float32(0.5)
    return t


def relu(x, out=None):
    return np.maximum(x, np.float32(0), out=out)


ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "relu": relu}
POOLER_ACTIVATIONS = {"tanh": np.tanh, "relu": relu}


def activation_of(hparams):
    return ACTIVATIONS[hparams["hidden_act"]]


# --- Building blocks ----------------------------------------------------------------------------------

def dense(x, p):  # [..., n_in] -> [..., n_out]
    """A fully connected layer, x @ w + b, as one matrix product over all leading axes."""
    y = x.reshape(-1, x.shape[-1]) @ p["w"]
    y += p["b"]
    return y.reshape(*x.shape[:-1], y.shape[-1])


ELEMENTS_PER_BLOCK = 2 ** 17  # 512 KiB of float32: few calls (each costs ~1 us, and the GIL when threaded), and in L2


def layer_norm(x, p, eps, out=None, residual=None):  # over the last axis: [..., H] -> [..., H]
    """Normalize each vector to zero mean and unit variance, then scale by g and shift by b; a cache-sized
    block of rows at a time, so that each pass reads the block from L2 rather than from memory. residual:
    normalize x + residual instead (a sublayer's "Add & Norm"), the sum made block by block too."""
    if out is not None and not out.flags.c_contiguous:
        out[...] = layer_norm(x, p, eps, residual=residual)
        return out
    H = x.shape[-1]
    y = np.empty(x.shape, dtype=np.float32) if out is None else out
    rows, y_rows = x.reshape(-1, H), y.reshape(-1, H)
    residual_rows = None if residual is None else residual.reshape(-1, H)
    n = max(1, ELEMENTS_PER_BLOCK // H)
    for i in range(0, len(rows), n):
        block, y_block = rows[i:i + n], y_rows[i:i + n]
        if residual_rows is not None:
            block = np.add(block, residual_rows[i:i + n], out=y_block)
        mean = block @ np.full(H, np.float32(1 / H))  # a matrix-vector product: faster than .mean()
        np.subtract(block, mean[:, None], out=y_block)
        var = np.einsum("ij,ij->i", y_block, y_block) / np.float32(H)  # the mean square, without a temporary
        y_block *= (np.float32(1) / np.sqrt(var + np.float32(eps)))[:, None]
        y_block *= p["g"]
        y_block += p["b"]
    return y


def softmax(x, out=None):  # over the last axis
    y = np.subtract(x, x.max(axis=-1, keepdims=True), out=out)  # numerically stable: the largest exponent is 0
    np.exp(y, out=y)
    y /= y.sum(axis=-1, keepdims=True)
    return y


# --- The model ----------------------------------------------------------------------------------------

def embeddings(input_ids, segment_ids, p, eps):  # [B, L] -> [B, L, H]
    """Token + position + segment (token type) embeddings, then layer norm."""
    x = p["word"][input_ids] + p["position"][:input_ids.shape[1]] + p["token_type"][segment_ids]  # positions 0..L-1
    return layer_norm(x, p["ln"], eps, out=x)


SCORES_PER_BLOCK = 2 ** 18  # 256 Ki float32 scores = 1 MiB (L2 here): in cache from Q K^T to the product with V


def attention(x, mask_bias, p, n_head, n_queries=None):  # x [B, L, H], mask_bias [B, 1, 1, L] or None -> [B, Lq, H]
    """Multi-head scaled dot-product self-attention, softmax(Q K^T / sqrt(D) + mask) V, a cache-sized block of
    sequences, heads and query rows at a time: the block's scores [b, a, r, L] stay in cache from Q K^T through
    the softmax to the product with V. n_queries: only the first Lq = n_queries positions ask (the keys and
    values still come from all L positions), e.g. 1 for the [CLS] vector alone."""
    B, L, H = x.shape
    D = H // n_head
    Lq = L if n_queries is None else n_queries
    q, k, v = heads(dense(x, p["qkv"]).reshape(B, L, 3, n_head, D), Lq)  # from x W_qkv + b
    context = np.empty((B, Lq, n_head, D), dtype=np.float32)  # the heads side by side, for the output projection
    n_seqs, n_heads, n_rows = attention_block(B, Lq, L, n_head)
    for b in range(0, B, n_seqs):
        seqs = slice(b, b + n_seqs)
        bias = None if mask_bias is None or not mask_bias[seqs].any() else mask_bias[seqs]
        for a in range(0, n_head, n_heads):
            group = (seqs, slice(a, a + n_heads))  # these sequences' heads a to a + n_heads
            for r in range(0, Lq, n_rows):
                weights, row_sums = softmax_terms(q[group][:, :, r:r + n_rows], k[group], bias)  # [b, a, r, L]
                out = context[seqs, r:r + n_rows, a:a + n_heads].transpose(0, 2, 1, 3)  # [b, a, r, D]
                np.matmul(weights, v[group], out=out)
                out /= row_sums[..., None]  # the softmax's division, on D values a row instead of L
    return dense(context.reshape(B, Lq, H), p["proj"])


SMALLEST_ROW_SUM = np.float32(1e-30)  # exp's terms stay normal floats, so they keep float32's precision


def softmax_terms(q, k_t, bias):  # q [b, a, r, D], K^T [b, a, D, L] -> exp(scores - shift) [b, a, r, L], sums [b, a, r]
    """The softmax's terms exp(s - shift) of the scores s = q K^T + bias (padded keys get a large negative bias:
    zero weight), and their row sums. Any shift of a row gives the same softmax: it only guards exp against
    overflow (s > 88) and a whole row's underflow. So the scores go to exp as they are, and only when a row
    sum says that a row overflowed or vanished are they computed again, shifted by each row's largest score."""
    ones = np.ones(k_t.shape[-1], dtype=np.float32)
    for shifted in (False, True):
        scores = q @ k_t
        if bias is not None:
            scores += bias
        if shifted:
            scores -= scores.max(axis=-1, keepdims=True)  # the largest exponent is 0
        with np.errstate(over="ignore"):
            terms = np.exp(scores, out=scores)
        row_sums = terms @ ones  # a matrix-vector product is faster than .sum() on short rows
        if shifted or ((row_sums >= SMALLEST_ROW_SUM) & (row_sums < np.inf)).all():
            return terms, row_sums


def attention_block(B, Lq, L, n_head):
    """(sequences, heads, query rows) of one attention block, its scores within SCORES_PER_BLOCK: first as
    many query rows as fit (taller matrices make faster products), then heads, then sequences."""
    rows = max(1, min(Lq, SCORES_PER_BLOCK // L))
    n_heads = max(1, min(n_head, SCORES_PER_BLOCK // (rows * L)))
    return max(1, min(B, SCORES_PER_BLOCK // (n_head * rows * L))), n_heads, rows


def heads(xw, Lq):  # [B, L, 3, A, D] -> Q [B, A, Lq, D] / sqrt(D), K^T [B, A, D, L], V [B, A, L, D]
    """Each head's queries (scaled by 1 / sqrt(D), in place), keys (transposed) and values: strided views of
    x W + b, which the matrix products read as they are, without copies."""
    q = xw[:, :Lq, 0].transpose(0, 2, 1, 3)
    q *= np.float32(1 / np.sqrt(xw.shape[-1]))
    return q, xw[:, :, 1].transpose(0, 2, 3, 1), xw[:, :, 2].transpose(0, 2, 1, 3)


def feed_forward(x, p, activation):  # [B, L, H] -> [B, L, I] -> [B, L, H]
    """Position-wise feed-forward network: dense -> activation -> dense, with the bias and the activation on
    cache-sized blocks of the [B L, I] intermediate (each pass from L2)."""
    h = x.reshape(-1, x.shape[-1]) @ p["fc"]["w"]  # [B L, I]
    n = max(1, ELEMENTS_PER_BLOCK // h.shape[1])
    for i in range(0, len(h), n):
        block = h[i:i + n]
        block += p["fc"]["b"]
        activation(block, out=block)
    return dense(h, p["proj"]).reshape(x.shape)


ROWS_PER_CHUNK = 1024  # positions per chunk: big products, and intermediates ([rows, 3H], [rows, I]) in L3


def encoder_layer(x, mask_bias, block, n_head, activation, eps, n_queries=None):  # [B, L, H] -> [B, Lq, H]
    """Post-LN transformer layer: x = LN(x + attention(x)); x = LN(x + feed_forward(x)), on a chunk of whole
    sequences (about ROWS_PER_CHUNK positions) at a time: every intermediate stays in cache, and the scratch
    memory stays bounded. n_queries: only the first n_queries positions come out (see attention)."""
    B, L, H = x.shape
    out = np.empty((B, L if n_queries is None else n_queries, H), dtype=np.float32)
    n_seqs = sequences_per_chunk(B, L)
    for b in range(0, B, n_seqs):
        seqs = slice(b, b + n_seqs)
        y = attention(x[seqs], None if mask_bias is None else mask_bias[seqs], block["attn"], n_head, n_queries)
        y = layer_norm(y, block["ln_1"], eps, out=y, residual=x[seqs, :y.shape[1]])
        layer_norm(feed_forward(y, block["ffn"], activation), block["ln_2"], eps, out=out[seqs], residual=y)
    return out


def sequences_per_chunk(B, L):  # ceil(B / n) for the fewest chunks n = ceil(B L / ROWS_PER_CHUNK), evenly filled
    return -(-B // -(-B * L // ROWS_PER_CHUNK))


def pooler(x, p, activation=np.tanh):  # [B, L, H] -> [B, H]
    """tanh dense layer on the first ([CLS]) token: the sentence-level representation (DistilBERT's
    classifier has a ReLU one: hparams["pooler_act"])."""
    return activation(dense(x[:, 0], p))


def bert(input_ids, segment_ids, params, hparams, attention_mask=None, cls_only=False):
    """The encoder. input_ids / segment_ids / attention_mask: ints [B, L] (or [L] for one sequence);
    segment_ids=None means all 0, attention_mask=None means all 1 (1 = real token, 0 = padding).
    Returns seq_output [B, L, H] and pooled_output [B, H] (None when the checkpoint has no pooler).
    cls_only: the last layer computes the [CLS] position alone (its keys and values still come from every
    token), so seq_output is [B, 1, H]: all that the pooler or a [CLS] feature needs, for less work."""
    hparams = model_config(params, hparams)
    input_ids, segment_ids, attention_mask, single = check_inputs(input_ids, segment_ids, attention_mask, hparams)
    eps = hparams["layer_norm_eps"]
    activation = activation_of(hparams)
    mask_bias = None if attention_mask.all() else (  # [B, 1, 1, L], or None when nothing is padding
        np.where(attention_mask, np.float32(0), np.float32(-1e9))[:, None, None, :])
    x = embeddings(input_ids, segment_ids, params["embeddings"], eps)
    for i, block in enumerate(params["blocks"], 1):
        n_queries = 1 if cls_only and i == len(params["blocks"]) else None
        x = encoder_layer(x, mask_bias, block, hparams["num_attention_heads"], activation, eps, n_queries)
    pooled = (pooler(x, params["pooler"], POOLER_ACTIVATIONS[hparams.get("pooler_act", "tanh")])
              if "pooler" in params else None)
    if single:
        return x[0], (None if pooled is None else pooled[0])
    return x, pooled


# --- Pre-training heads -------------------------------------------------------------------------------

def mlm_head(seq_output, params, hparams):  # [..., L, H] -> [..., L, V]
    """Masked language model: dense -> activation -> layer norm -> decoder, the word embeddings (tied), or the
    head's own decoder [V, H] when the checkpoint has one (tie_word_embeddings false)."""
    hparams = model_config(params, hparams)
    p = head_of(params, "mlm")
    seq_output = check_features("seq_output", seq_output, hparams["hidden_size"])
    h = activation_of(hparams)(dense(seq_output, p["transform"]))
    h = layer_norm(h, p["ln"], hparams["layer_norm_eps"], out=h)
    logits = h.reshape(-1, h.shape[-1]) @ mlm_decoder(params).T
    logits += p["bias"]
    return logits.reshape(*h.shape[:-1], logits.shape[-1])


def mlm_decoder(params):  # [V, H]
    return params["mlm"].get("decoder", params["embeddings"]["word"])


def nsp_head(pooled_output, params):  # [..., H] -> [..., 2]; index 0 = "text_b follows text_a"
    """Next sentence prediction: a dense layer on the pooled output."""
    return head_dense(params, "nsp", "pooled_output", pooled_output)


# --- Fine-tuned task heads (the dropout before them acts in training only) -------------------------------

def classifier_head(pooled_output, params):  # [..., H] -> [..., num_labels]
    """Sequence classification (BertForSequenceClassification): a dense layer on the pooled output."""
    return head_dense(params, "classifier", "pooled_output", pooled_output)


def token_classifier_head(seq_output, params):  # [..., L, H] -> [..., L, num_labels]
    """Token classification (BertForTokenClassification, e.g. NER): a dense layer on every token's vector."""
    return head_dense(params, "classifier", "seq_output", seq_output)


def qa_head(seq_output, params):  # [..., L, H] -> start_logits [..., L], end_logits [..., L]
    """Extractive question answering (BertForQuestionAnswering): each token's score as an answer's start
    and as its end."""
    logits = head_dense(params, "qa", "seq_output", seq_output)  # [..., L, 2]
    return logits[..., 0], logits[..., 1]


# --- Input checks -------------------------------------------------------------------------------------

# What bert.py reads from config.json: these keys must be integers, the others default as in HF's BertConfig.
CONFIG_REQUIRED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                   "max_position_embeddings")
CONFIG_DEFAULTS = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "type_vocab_size": 2}


def config_with_defaults(hparams):
    """hparams with CONFIG_DEFAULTS filled in, or a ValueError naming what is missing or unsupported."""
    missing = [key for key in CONFIG_REQUIRED if type(hparams.get(key)) is not int]
    if missing:
        raise ValueError(f"no integer {', '.join(missing)}")
    hparams = {**CONFIG_DEFAULTS, **hparams}
    if hparams["hidden_act"] not in ACTIVATIONS:
        raise ValueError(f"hidden_act {hparams['hidden_act']!r} is not supported; known: {', '.join(ACTIVATIONS)}")
    if hparams.get("pooler_act", "tanh") not in POOLER_ACTIVATIONS:
        raise ValueError(f"pooler_act {hparams['pooler_act']!r} is not supported; known: tanh, relu")
    return hparams


def model_config(params, hparams):
    """config_with_defaults(hparams), after checking that params (the nested dict of arrays) came before
    hparams (the config dict), as every function here takes them."""
    if not (isinstance(params, dict) and "blocks" in params and isinstance(hparams, dict) and "hidden_size" in hparams):
        raise ValueError("expected params (the dict of arrays, with 'blocks') and then hparams (the config dict, "
                         "with 'hidden_size'): were they passed the other way round?")
    try:
        return config_with_defaults(hparams)
    except ValueError as e:
        raise ValueError(f"hparams is not a BERT config: {e}") from None


HEADS = {"mlm": ("MLM", "cls.predictions"), "nsp": ("NSP", "cls.seq_relationship"),
         "classifier": ("classifier", "classifier"), "qa": ("question-answering", "qa_outputs")}


def head_of(params, name):
    """params[name], or a ValueError saying the checkpoint has no such head."""
    if name not in params:
        label, weights = HEADS[name]
        raise ValueError(f"this checkpoint has no {label} head (it was saved without {weights} weights)")
    return params[name]


def head_dense(params, name, input_name, x):
    """The dense layer of head params[name] on x [..., H], float32; a ValueError when the checkpoint has no
    such head, x is None (no pooler, so no pooled output) or x has the wrong width."""
    p = head_of(params, name)
    if x is None:
        raise ValueError(f"this checkpoint has no pooler, so no {input_name} for the {HEADS[name][0]} head")
    return dense(check_features(input_name, x, p["w"].shape[0]), p)


def check_features(name, a, size):
    """A head's input as float32 [..., size], or a ValueError naming it."""
    a = np.asarray(a, dtype=np.float32)
    if a.ndim == 0 or a.shape[-1] != size:
        raise ValueError(f"{name} must have shape [..., {size}], got {a.shape}")
    return a


def check_inputs(input_ids, segment_ids, attention_mask, hparams):
    """Validate and batch the inputs: [L] becomes [1, L]. A mistake is a ValueError naming it, never an
    IndexError or a silently wrong answer."""
    input_ids = np.asarray(input_ids)
    if input_ids.ndim not in (1, 2) or input_ids.size == 0:
        raise ValueError(f"input_ids must have shape [B, L] or [L] with L > 0, got {input_ids.shape}")
    segment_ids = np.zeros_like(input_ids) if segment_ids is None else np.asarray(segment_ids)
    attention_mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask)
    for name, a, kinds in (("input_ids", input_ids, "iu"), ("segment_ids", segment_ids, "iu"),
                           ("attention_mask", attention_mask, "iub")):
        if a.dtype.kind not in kinds:
            raise ValueError(f"{name} must be an integer array, got dtype {a.dtype}")
        if a.shape != input_ids.shape:
            raise ValueError(f"{name} has shape {a.shape} but input_ids has shape {input_ids.shape}")
    single = input_ids.ndim == 1
    if single:
        input_ids, segment_ids, attention_mask = input_ids[None], segment_ids[None], attention_mask[None]
    check_range("input_ids", input_ids, hparams["vocab_size"], "vocab_size")
    check_range("segment_ids", segment_ids, hparams["type_vocab_size"], "type_vocab_size")
    if input_ids.shape[1] > hparams["max_position_embeddings"]:
        raise ValueError(f"sequence length {input_ids.shape[1]} exceeds max_position_embeddings "
                         f"{hparams['max_position_embeddings']}: truncate the input")
    if not np.isin(attention_mask, (0, 1)).all():
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    if not attention_mask.any(axis=1).all():
        raise ValueError("attention_mask has a row of all zeros: every sequence needs at least one real token")
    return input_ids, segment_ids, attention_mask.astype(bool), single


def check_range(name, a, size, what):
    if a.min() < 0 or a.max() >= size:
        raise ValueError(f"{name} must lie in [0, {size}) ({what}), found values from {a.min()} to {a.max()}")
