#!/usr/bin/python3
"""Exports small random-weight hosts with torch.onnx.export and writes PyTorch reference values.

Run with Debian's python3-torch (1.13, CPU): /usr/bin/python3 export_hosts.py [out_dir [fixture ...]]
(fixture gpt2_past_generation alone writes only gpt2_past_opset14.generation.json, the greedy
decoding with past key/values that GenerationTest compares Graft's cached decoding with.)
Neither the build nor the tests run it; its outputs are committed under
integration/src/test/resources/hosts/torch/.

Each host is written in plain torch, following the Hugging Face modules it imitates (GPT-2,
Llama, a grouped-query-attention decoder in the Mistral/Qwen2 style, ViT, BERT with a
token-classification head, and that BERT's encoder alone for Graft's token-classification task), exported with dynamic batch and sequence axes (batch only for the
ViT, whose sequence is fixed by the image size). For each one, <name>.json holds a fixed batch,
the LoRA values (rank 4, alpha 8, A [in, r] and B [r, out] as Graft lays them out, seeded and
non-zero), the head values where the Graft task has a head, and in float64: the loss, every
trainable parameter's gradient and a 50-step AdamW loss curve with Graft's AdamW (beta1 0.9,
beta2 0.999, eps 1e-8, weight decay 0.01 on everything but the head bias, lr 0.001: at 0.01 the
curves of these tiny decoders are chaotic, float32 and float64 PyTorch runs part by 10%).
"""
import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

RANK = 4
ALPHA = 8.0
LR = 0.001
STEPS = 50
BETA1, BETA2, EPS, WEIGHT_DECAY = 0.9, 0.999, 1e-8, 0.01

IDS = [[3, 17, 22, 8, 1, 5, 9, 30], [4, 11, 60, 2, 7, 13, 0, 0]]
MASK = [[1, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 0, 0]]
TOKEN_TYPES = [[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 0, 0]]


def init_weights(module, seed):
    """Seeded random weights: norm scales near 1, small biases, unit-variance outputs of linear maps."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() == 1:
                p.copy_((1 if name.endswith("weight") else 0) + 0.1 * torch.randn(p.shape, generator=g))
            elif "embed" in name or "wte" in name or "wpe" in name or "cls_token" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[0] if ".c_" in name else p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))


class Lora(nn.Module):
    """Wraps a linear map f: y = f(x) + (alpha / r) · (x·A)·B, A [in, r], B [r, out]."""

    def __init__(self, base, d_in, d_out):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.zeros(d_in, RANK))
        self.lora_B = nn.Parameter(torch.zeros(RANK, d_out))
        self.enabled = False

    def forward(self, x):
        y = self.base(x)
        if self.enabled:
            y = y + (ALPHA / RANK) * ((x @ self.lora_A) @ self.lora_B)
        return y


# ---- GPT-2 ------------------------------------------------------------------------------------

class Conv1D(nn.Module):
    """Hugging Face's Conv1D: weight [in, out], addmm on the flattened input (exports Gemm)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.empty(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        size_out = x.size()[:-1] + (self.nf,)
        x = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return x.view(size_out)


class Gpt2Attention(nn.Module):
    def __init__(self, d, heads, positions):
        super().__init__()
        self.heads, self.d = heads, d
        self.c_attn = Conv1D(3 * d, d)
        self.c_proj = Conv1D(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(positions, positions, dtype=torch.bool)).view(
            1, 1, positions, positions), persistent=False)

    def split_heads(self, x):
        new_shape = x.size()[:-1] + (self.heads, self.d // self.heads)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, h, attention_mask):
        q, k, v = self.c_attn(h).split(self.d, dim=2)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        query_length, key_length = q.size(-2), k.size(-2)
        causal = self.bias[:, :, key_length - query_length: key_length, :key_length]
        mask_value = torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype)
        w = torch.where(causal, w, mask_value)
        w = w + attention_mask
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v)
        a = a.permute(0, 2, 1, 3).contiguous()
        a = a.view(a.size()[:-2] + (self.d,))
        return self.c_proj(a)


class Gpt2Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = Conv1D(4 * d, d)
        self.c_proj = Conv1D(d, 4 * d)

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * torch.pow(h, 3.0))))
        return self.c_proj(h)


class Gpt2Block(nn.Module):
    def __init__(self, d, heads, positions):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d, eps=1e-5)
        self.attn = Gpt2Attention(d, heads, positions)
        self.ln_2 = nn.LayerNorm(d, eps=1e-5)
        self.mlp = Gpt2Mlp(d)

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class Gpt2Model(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, layers=2, positions=16):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(positions, d)
        self.h = nn.ModuleList([Gpt2Block(d, heads, positions) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, input_ids, attention_mask):
        input_shape = input_ids.size()
        position_ids = torch.arange(0, input_shape[-1], dtype=torch.long).unsqueeze(0)
        mask = attention_mask[:, None, None, :].to(dtype=self.wte.weight.dtype)
        mask = (1.0 - mask) * torch.finfo(mask.dtype).min
        h = self.wte(input_ids) + self.wpe(position_ids)
        for block in self.h:
            h = block(h, mask)
        return self.ln_f(h)


class Gpt2LMHeadModel(nn.Module):
    """GPT-2 with its LM head tied to the token embedding."""

    def __init__(self):
        super().__init__()
        self.transformer = Gpt2Model()
        vocab, d = self.transformer.wte.weight.shape
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids, attention_mask):
        return self.lm_head(self.transformer(input_ids, attention_mask))


# ---- Llama and the grouped-query-attention decoder ----------------------------------------------

class RmsNorm(nn.Module):
    def __init__(self, d, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, h):
        variance = h.pow(2).mean(-1, keepdim=True)
        return self.weight * (h * torch.rsqrt(variance + self.eps))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class Rotary(nn.Module):
    def __init__(self, dim, base=10000):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    def forward(self, seq_len, dtype):
        t = torch.arange(seq_len, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None, :, :].to(dtype), emb.sin()[None, None, :, :].to(dtype)


def repeat_kv(h, n_rep):
    batch, kv_heads, slen, head_dim = h.shape
    if n_rep == 1:
        return h
    h = h[:, :, None, :, :].expand(batch, kv_heads, n_rep, slen, head_dim)
    return h.reshape(batch, kv_heads * n_rep, slen, head_dim)


class DecoderAttention(nn.Module):
    def __init__(self, d, heads, kv_heads, qkv_bias):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = heads, kv_heads, d // heads
        self.q_proj = nn.Linear(d, heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(d, kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(d, kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(heads * self.head_dim, d, bias=False)
        self.rotary_emb = Rotary(self.head_dim)

    def forward(self, h, mask):
        bsz, q_len, _ = h.size()
        q = self.q_proj(h).view(bsz, q_len, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(h).view(bsz, q_len, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(h).view(bsz, q_len, self.kv_heads, self.head_dim).transpose(1, 2)
        cos, sin = self.rotary_emb(q_len, v.dtype)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        k = repeat_kv(k, self.heads // self.kv_heads)
        v = repeat_kv(v, self.heads // self.kv_heads)
        w = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        w = w + mask
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v).transpose(1, 2).contiguous().reshape(bsz, q_len, self.heads * self.head_dim)
        return self.o_proj(a)


class DecoderMlp(nn.Module):
    def __init__(self, d, inter):
        super().__init__()
        self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads, kv_heads, inter, qkv_bias):
        super().__init__()
        self.self_attn = DecoderAttention(d, heads, kv_heads, qkv_bias)
        self.mlp = DecoderMlp(d, inter)
        self.input_layernorm = RmsNorm(d)
        self.post_attention_layernorm = RmsNorm(d)

    def forward(self, x, mask):
        x = x + self.self_attn(self.input_layernorm(x), mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderModel(nn.Module):
    def __init__(self, vocab, d, heads, kv_heads, inter, layers, qkv_bias):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([DecoderLayer(d, heads, kv_heads, inter, qkv_bias) for _ in range(layers)])
        self.norm = RmsNorm(d)

    def forward(self, input_ids, attention_mask):
        bsz, seq_len = input_ids.shape
        h = self.embed_tokens(input_ids)
        dtype = h.dtype
        # Llama's _make_causal_mask and _expand_mask, combined by addition.
        causal = torch.full((seq_len, seq_len), torch.finfo(dtype).min, dtype=dtype)
        cond = torch.arange(causal.size(-1))
        causal = causal.masked_fill(cond < (cond + 1).view(causal.size(-1), 1), 0).to(dtype)
        causal = causal[None, None, :, :].expand(bsz, 1, seq_len, seq_len)
        expanded = attention_mask[:, None, None, :].expand(bsz, 1, seq_len, seq_len).to(dtype)
        inverted = 1.0 - expanded
        padding = inverted.masked_fill(inverted.to(torch.bool), torch.finfo(dtype).min)
        mask = padding + causal
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h)


class DecoderForCausalLM(nn.Module):
    """Llama (kv_heads == heads) or Mistral/Qwen2 style (fewer key/value heads, Qwen2's q/k/v biases)."""

    def __init__(self, kv_heads=4, qkv_bias=False, vocab=64, d=32, heads=4, inter=64, layers=2):
        super().__init__()
        self.model = DecoderModel(vocab, d, heads, kv_heads, inter, layers, qkv_bias)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, input_ids, attention_mask):
        return self.lm_head(self.model(input_ids, attention_mask))


# ---- ViT ----------------------------------------------------------------------------------------

class SelfAttention(nn.Module):
    """BERT's and ViT's self-attention: query/key/value, heads split by a concatenated view shape."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_size = heads, d // heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)

    def transpose_for_scores(self, x):
        new_shape = x.size()[:-1] + (self.heads, self.head_size)
        return x.view(new_shape).permute(0, 2, 1, 3)

    def forward(self, h, mask=None):
        q = self.transpose_for_scores(self.query(h))
        k = self.transpose_for_scores(self.key(h))
        v = self.transpose_for_scores(self.value(h))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_size)
        if mask is not None:
            scores = scores + mask
        probs = F.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        return ctx.view(ctx.size()[:-2] + (self.heads * self.head_size,))


class Dense(nn.Module):
    """A module holding one linear map named dense (ViT's self-output, BERT's and ViT's intermediate with GELU)."""

    def __init__(self, d_in, d_out, gelu=False):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.gelu = gelu

    def forward(self, x):
        x = self.dense(x)
        return F.gelu(x) if self.gelu else x


class VitAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attention = SelfAttention(d, heads)
        self.output = Dense(d, d)

    def forward(self, h):
        return self.output(self.attention(h))


class VitLayer(nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(d, eps=1e-12)
        self.attention = VitAttention(d, heads)
        self.layernorm_after = nn.LayerNorm(d, eps=1e-12)
        self.intermediate = Dense(d, inter, gelu=True)
        self.output = Dense(inter, d)

    def forward(self, h):
        h = self.attention(self.layernorm_before(h)) + h
        return self.output(self.intermediate(self.layernorm_after(h))) + h


class VitEmbeddings(nn.Module):
    def __init__(self, d, patch, image, channels):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.patch_embeddings = nn.Module()
        self.patch_embeddings.projection = nn.Conv2d(channels, d, kernel_size=patch, stride=patch)
        self.position_embeddings = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, d))

    def forward(self, pixel_values):
        batch = pixel_values.shape[0]
        e = self.patch_embeddings.projection(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(batch, -1, -1)
        return torch.cat((cls, e), dim=1) + self.position_embeddings


class VitEncoder(nn.Module):
    def __init__(self, d, heads, inter, layers):
        super().__init__()
        self.layer = nn.ModuleList([VitLayer(d, heads, inter) for _ in range(layers)])

    def forward(self, h):
        for layer in self.layer:
            h = layer(h)
        return h


class VitInner(nn.Module):
    def __init__(self, d, heads, inter, layers, patch, image, channels):
        super().__init__()
        self.embeddings = VitEmbeddings(d, patch, image, channels)
        self.encoder = VitEncoder(d, heads, inter, layers)
        self.layernorm = nn.LayerNorm(d, eps=1e-12)

    def forward(self, pixel_values):
        return self.layernorm(self.encoder(self.embeddings(pixel_values)))


class VitModel(nn.Module):
    """ViTModel's last_hidden_state; the pooled head (class token → classifier) is Graft's task."""

    def __init__(self, d=32, heads=4, inter=64, layers=2, patch=4, image=16, channels=3):
        super().__init__()
        self.vit = VitInner(d, heads, inter, layers, patch, image, channels)

    def forward(self, pixel_values):
        return self.vit(pixel_values)


# ---- BERT with a token-classification head ------------------------------------------------------

class BertEmbeddings(nn.Module):
    def __init__(self, vocab, d, positions, types):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, d)
        self.position_embeddings = nn.Embedding(positions, d)
        self.token_type_embeddings = nn.Embedding(types, d)
        self.LayerNorm = nn.LayerNorm(d, eps=1e-12)
        self.register_buffer("position_ids", torch.arange(positions).expand((1, -1)), persistent=False)

    def forward(self, input_ids, token_type_ids):
        seq_length = input_ids.size()[1]
        position_ids = self.position_ids[:, 0: seq_length]
        e = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) \
            + self.position_embeddings(position_ids)
        return self.LayerNorm(e)


class BertOutput(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)
        self.LayerNorm = nn.LayerNorm(d_out, eps=1e-12)

    def forward(self, x, residual):
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self = SelfAttention(d, heads)
        self.output = BertOutput(d, d)

    def forward(self, h, mask):
        return self.output(self.self(h, mask), h)


class BertLayer(nn.Module):
    def __init__(self, d, heads, inter):
        super().__init__()
        self.attention = BertAttention(d, heads)
        self.intermediate = Dense(d, inter, gelu=True)
        self.output = BertOutput(inter, d)

    def forward(self, h, mask):
        a = self.attention(h, mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, d, heads, inter, layers):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(d, heads, inter) for _ in range(layers)])

    def forward(self, h, mask):
        for layer in self.layer:
            h = layer(h, mask)
        return h


class BertInner(nn.Module):
    def __init__(self, vocab, d, heads, inter, layers, positions, types):
        super().__init__()
        self.embeddings = BertEmbeddings(vocab, d, positions, types)
        self.encoder = BertEncoder(d, heads, inter, layers)

    def forward(self, input_ids, attention_mask, token_type_ids):
        dtype = self.embeddings.word_embeddings.weight.dtype
        mask = attention_mask[:, None, None, :].to(dtype)
        mask = (1.0 - mask) * torch.finfo(dtype).min
        return self.encoder(self.embeddings(input_ids, token_type_ids), mask)


class BertModel(nn.Module):
    """The encoder alone, its output the hidden states: Graft's token-classification task adds the head."""

    def __init__(self, vocab=64, d=32, heads=4, inter=64, layers=2, positions=32, types=2):
        super().__init__()
        self.inner = BertInner(vocab, d, heads, inter, layers, positions, types)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.inner(input_ids, attention_mask, token_type_ids)


class BertForTokenClassification(nn.Module):
    def __init__(self, vocab=64, d=32, heads=4, inter=64, layers=2, positions=32, types=2, labels=5):
        super().__init__()
        self.bert = BertInner(vocab, d, heads, inter, layers, positions, types)
        # Hugging Face calls it "classifier"; here it is renamed, as its bias would be an initializer
        # "classifier.bias", the name of the head Graft's classification task adds.
        self.token_classifier = nn.Linear(d, labels)

    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.token_classifier(self.bert(input_ids, attention_mask, token_type_ids))


# ---- References ---------------------------------------------------------------------------------

def add_lora(model, module_paths):
    """Replaces each linear module (nn.Linear or Conv1D) at a dotted path by a LoRA wrapper; returns {path: wrapper}."""
    wrappers = {}
    for path in module_paths:
        parent_path, _, leaf = path.rpartition(".")
        parent = model.get_submodule(parent_path)
        base = getattr(parent, leaf)
        if isinstance(base, Conv1D):
            d_in, d_out = base.weight.shape
        else:
            d_out, d_in = base.weight.shape
        w = Lora(base, d_in, d_out).double()
        setattr(parent, leaf, w)
        wrappers[path] = w
    return wrappers


def causal_lm_loss(logits, ids, mask):
    """Graft's causal-LM loss: position t against token t+1, ignored where there is none or its mask is 0."""
    targets = torch.full_like(ids, -100)
    targets[:, :-1] = torch.where(mask[:, 1:] == 1, ids[:, 1:], torch.full_like(ids[:, 1:], -100))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def token_classification_loss(logits, labels, mask):
    """Hugging Face's BertForTokenClassification loss: cross-entropy over the tokens whose mask is 1, ignore index -100."""
    active = torch.where(mask == 1, labels, torch.full_like(labels, -100))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), active.reshape(-1), ignore_index=-100)


def mean_pool(h, mask):
    m = mask.to(h.dtype).unsqueeze(-1)
    return (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def values_of(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def export(model, path, inputs, names, dynamic, opset):
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, tuple(inputs), path, input_names=names, output_names=[dynamic["output"]],
                          dynamic_axes=dynamic["axes"], opset_version=opset, do_constant_folding=True)


def reference(fixture, out_dir):
    name, opset = fixture["name"], fixture["opset"]
    torch.manual_seed(0)
    model = fixture["make"]()
    init_weights(model, fixture["seed"])
    inputs = fixture["inputs"]()
    export(model, os.path.join(out_dir, name + ".onnx"), [inputs[k] for k in fixture["input_names"]],
           fixture["input_names"], fixture["dynamic"], opset)

    model = model.double()
    wrappers = add_lora(model, fixture["lora"])
    g = torch.Generator().manual_seed(fixture["seed"] + 1000)
    params = {}
    for path, w in wrappers.items():
        w.enabled = True
        with torch.no_grad():
            w.lora_A.copy_((0.3 * torch.randn(w.lora_A.shape, generator=g)).float().double())
            w.lora_B.copy_((0.3 * torch.randn(w.lora_B.shape, generator=g)).float().double())
        params[path + ".lora_A"] = w.lora_A
        params[path + ".lora_B"] = w.lora_B
    head = None
    if fixture["task"] in ("classification", "token_classification"):
        width = fixture["head_width"]
        n = fixture["num_labels"]
        head_w = nn.Parameter((0.5 * torch.randn(width, n, generator=g)).float().double())
        head_b = nn.Parameter((0.1 * torch.randn(n, generator=g)).float().double())
        params["classifier.weight"] = head_w
        params["classifier.bias"] = head_b
        head = (head_w, head_b)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    feeds = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}

    def loss_fn():
        out = model(*[feeds[k] for k in fixture["input_names"]])
        if fixture["task"] == "causal_lm":
            return causal_lm_loss(out, feeds["input_ids"], feeds["attention_mask"])
        if fixture["task"] == "token_classification":
            return token_classification_loss(out @ head[0] + head[1], fixture["labels"], feeds["attention_mask"])
        pooled = out[:, 0, :] if fixture["pooling"] == "FIRST_TOKEN" else mean_pool(out, feeds["attention_mask"])
        return F.cross_entropy(pooled @ head[0] + head[1], fixture["labels"])

    loss = loss_fn()
    grads = torch.autograd.grad(loss, list(params.values()))
    result = {
        "name": name,
        "opset": opset,
        "torch": torch.__version__,
        "task": fixture["task"],
        "target": fixture["target"],
        "rank": RANK,
        "alpha": ALPHA,
        "inputs": {k: {"shape": list(v.shape), "values": values_of(v)} for k, v in inputs.items()},
        "parameters": {k: {"shape": list(p.shape), "values": values_of(p)} for k, p in params.items()},
        "loss": float(loss),
        "gradients": {k: values_of(gr) for k, gr in zip(params.keys(), grads)},
    }
    if fixture["task"] == "token_classification":
        result["num_labels"] = fixture["num_labels"]
        result["labels"] = {"shape": list(fixture["labels"].shape), "values": values_of(fixture["labels"])}
        result["host_output"] = fixture["dynamic"]["output"]
    if fixture["task"] == "classification":
        result["pooling"] = fixture["pooling"]
        result["num_labels"] = fixture["num_labels"]
        result["labels"] = values_of(fixture["labels"])
        result["host_output"] = fixture["dynamic"]["output"]

    # Graft's AdamW: p' = p - lr·(m̂/(sqrt(v̂)+ε) + λ·p), no decay on the head bias.
    m = {k: torch.zeros_like(p) for k, p in params.items()}
    v = {k: torch.zeros_like(p) for k, p in params.items()}
    losses = []
    for step in range(1, STEPS + 1):
        loss = loss_fn()
        losses.append(float(loss))
        gs = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for (k, p), gr in zip(params.items(), gs):
                m[k] = BETA1 * m[k] + (1 - BETA1) * gr
                v[k] = BETA2 * v[k] + (1 - BETA2) * gr * gr
                update = (m[k] / (1 - BETA1 ** step)) / (torch.sqrt(v[k] / (1 - BETA2 ** step)) + EPS)
                if k != "classifier.bias":
                    update = update + WEIGHT_DECAY * p
                p.sub_(LR * update)
    result["adamw"] = {"learning_rate": LR, "beta1": BETA1, "beta2": BETA2, "epsilon": EPS,
                       "weight_decay": WEIGHT_DECAY, "losses": losses}
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(result, f, separators=(",", ":"))
        f.write("\n")
    print(name, "opset", opset, "loss", result["loss"], "after", STEPS, "steps", losses[-1])


def lm_inputs():
    return {"input_ids": torch.tensor(IDS), "attention_mask": torch.tensor(MASK)}


def bert_inputs():
    return {"input_ids": torch.tensor(IDS), "attention_mask": torch.tensor(MASK),
            "token_type_ids": torch.tensor(TOKEN_TYPES)}


def vit_inputs():
    g = torch.Generator().manual_seed(5)
    return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}


def lm_dynamic():
    return {"output": "logits", "axes": {"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "attention_mask": {0: "batch_size", 1: "sequence_length"},
                                        "logits": {0: "batch_size", 1: "sequence_length"}}}


def layers(prefix, modules, count=2):
    return [prefix + str(i) + "." + m for i in range(count) for m in modules]


GPT2_MODULES = ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
DECODER_MODULES = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                   "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def fixtures():
    gpt2 = {"make": Gpt2LMHeadModel, "seed": 11, "task": "causal_lm", "inputs": lm_inputs,
            "input_names": ["input_ids", "attention_mask"], "dynamic": lm_dynamic(),
            "lora": layers("transformer.h.", GPT2_MODULES),
            "target": ".*/(attn/c_attn|attn/c_proj|mlp/c_fc|mlp/c_proj)/Gemm"}
    llama = {"make": DecoderForCausalLM, "seed": 12, "task": "causal_lm", "inputs": lm_inputs,
             "input_names": ["input_ids", "attention_mask"], "dynamic": lm_dynamic(),
             "lora": layers("model.layers.", DECODER_MODULES),
             "target": ".*/(self_attn/(q|k|v|o)_proj|mlp/(gate|up|down)_proj)/MatMul"}
    gqa = dict(llama, make=lambda: DecoderForCausalLM(kv_heads=2, qkv_bias=True), seed=13)
    vit = {"make": VitModel, "seed": 14, "task": "classification", "pooling": "FIRST_TOKEN", "num_labels": 3,
           "head_width": 32, "labels": torch.tensor([2, 0]), "inputs": vit_inputs, "input_names": ["pixel_values"],
           "dynamic": {"output": "last_hidden_state",
                       "axes": {"pixel_values": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}}},
           "lora": layers("vit.encoder.layer.", ["attention.attention.query", "attention.attention.key",
                                                 "attention.attention.value", "attention.output.dense"]),
           "target": ".*/attention/(attention/(query|key|value)|output/dense)/MatMul"}
    bert = {"make": BertForTokenClassification, "seed": 15, "task": "classification", "pooling": "MEAN",
            "num_labels": 2, "head_width": 5, "labels": torch.tensor([1, 0]), "inputs": bert_inputs,
            "input_names": ["input_ids", "attention_mask", "token_type_ids"],
            "dynamic": {"output": "logits", "axes": {
                "input_ids": {0: "batch_size", 1: "sequence_length"},
                "attention_mask": {0: "batch_size", 1: "sequence_length"},
                "token_type_ids": {0: "batch_size", 1: "sequence_length"},
                "logits": {0: "batch_size", 1: "sequence_length"}}},
            "lora": layers("bert.encoder.layer.", ["attention.self.query", "attention.self.key",
                                                   "attention.self.value", "attention.output.dense"]),
            "target": ".*/attention/(self/(query|key|value)|output/dense)/MatMul"}
    # Labels per token: -100 on some real tokens, real classes on padding (left out by the mask).
    bert_tokens = {"make": BertModel, "seed": 16, "task": "token_classification", "num_labels": 3,
                   "head_width": 32, "labels": torch.tensor([[0, 2, -100, 1, 1, 0, 2, -100], [1, -100, 0, 2, 2, 1, 1, 0]]),
                   "inputs": bert_inputs, "input_names": ["input_ids", "attention_mask", "token_type_ids"],
                   "dynamic": {"output": "last_hidden_state", "axes": {
                       "input_ids": {0: "batch_size", 1: "sequence_length"},
                       "attention_mask": {0: "batch_size", 1: "sequence_length"},
                       "token_type_ids": {0: "batch_size", 1: "sequence_length"},
                       "last_hidden_state": {0: "batch_size", 1: "sequence_length"}}},
                   "lora": layers("inner.encoder.layer.", ["attention.self.query", "attention.self.key",
                                                           "attention.self.value", "attention.output.dense"]),
                   "target": ".*/attention/(self/(query|key|value)|output/dense)/MatMul"}
    return [
        dict(gpt2, name="gpt2_opset17", opset=17),
        dict(gpt2, name="gpt2_opset14", opset=14),
        dict(llama, name="llama_opset17", opset=17),
        dict(gqa, name="gqa_opset17", opset=17),
        dict(vit, name="vit_opset17", opset=17),
        dict(bert, name="bert_opset17", opset=17),
        dict(bert_tokens, name="bert_tokens_opset17", opset=17),
    ]


# ---- GPT-2 with past key/values (as Hugging Face / optimum "with past" exports name them) ------

class Gpt2PastAttention(Gpt2Attention):
    def forward(self, h, attention_mask, past_key, past_value):
        q, k, v = self.c_attn(h).split(self.d, dim=2)
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
        k = torch.cat([past_key, k], dim=-2)
        v = torch.cat([past_value, v], dim=-2)
        w = torch.matmul(q, k.transpose(-1, -2))
        w = w / torch.full([], v.size(-1) ** 0.5, dtype=w.dtype)
        query_length, key_length = q.size(-2), k.size(-2)
        causal = self.bias[:, :, key_length - query_length: key_length, :key_length]
        mask_value = torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype)
        w = torch.where(causal, w, mask_value)
        w = w + attention_mask
        w = F.softmax(w, dim=-1)
        a = torch.matmul(w, v)
        a = a.permute(0, 2, 1, 3).contiguous()
        a = a.view(a.size()[:-2] + (self.d,))
        return self.c_proj(a), k, v


class Gpt2PastBlock(Gpt2Block):
    def __init__(self, d, heads, positions):
        super().__init__(d, heads, positions)
        self.attn = Gpt2PastAttention(d, heads, positions)

    def forward(self, x, mask, past_key, past_value):
        a, k, v = self.attn(self.ln_1(x), mask, past_key, past_value)
        x = x + a
        return x + self.mlp(self.ln_2(x)), k, v


class Gpt2PastLMHeadModel(nn.Module):
    """GPT-2 (tied head) taking past_key_values.<i>.key/value [batch, heads, past, head_size] and an
    attention mask over past + new tokens, returning logits and present.<i>.key/value."""

    def __init__(self, vocab=64, d=32, heads=4, layers=2, positions=32):
        super().__init__()
        self.heads, self.d, self.layers = heads, d, layers
        self.transformer = Gpt2Model(vocab, d, heads, layers, positions)
        self.transformer.h = nn.ModuleList([Gpt2PastBlock(d, heads, positions) for _ in range(layers)])
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.transformer.wte.weight

    def forward(self, input_ids, attention_mask, *past):
        t = self.transformer
        past_length = past[0].size(-2)
        position_ids = torch.arange(past_length, past_length + input_ids.size(-1), dtype=torch.long).unsqueeze(0)
        mask = attention_mask[:, None, None, :].to(dtype=t.wte.weight.dtype)
        mask = (1.0 - mask) * torch.finfo(mask.dtype).min
        h = t.wte(input_ids) + t.wpe(position_ids)
        presents = []
        for i, block in enumerate(t.h):
            h, k, v = block(h, mask, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        return (self.lm_head(t.ln_f(h)), *presents)


def export_gpt2_with_past(out_dir, name="gpt2_past_opset14", opset=14, seed=16, **sizes):
    torch.manual_seed(0)
    model = Gpt2PastLMHeadModel(**sizes)
    init_weights(model, seed)
    model.eval()
    layers_, heads, size = model.layers, model.heads, model.d // model.heads
    past_names = [f"past_key_values.{i}.{kv}" for i in range(layers_) for kv in ("key", "value")]
    present_names = [f"present.{i}.{kv}" for i in range(layers_) for kv in ("key", "value")]
    ids = torch.tensor([[3, 17], [4, 11]])
    mask = torch.ones(2, 5, dtype=torch.long)
    past = [torch.randn(2, heads, 3, size) for _ in past_names]
    axes = {"input_ids": {0: "batch_size", 1: "sequence_length"},
            "attention_mask": {0: "batch_size", 1: "total_sequence_length"},
            "logits": {0: "batch_size", 1: "sequence_length"}}
    for n in past_names:
        axes[n] = {0: "batch_size", 2: "past_sequence_length"}
    for n in present_names:
        axes[n] = {0: "batch_size", 2: "total_sequence_length"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, mask, *past), os.path.join(out_dir, name + ".onnx"),
                          input_names=["input_ids", "attention_mask"] + past_names,
                          output_names=["logits"] + present_names, dynamic_axes=axes,
                          opset_version=opset, do_constant_folding=True)


GENERATION_PROMPTS = [[3, 17, 22, 8], [4, 11, 60, 2], [9, 9, 1, 40]]
GENERATION_STEPS = 8


def past_generation_reference(out_dir, name="gpt2_past_opset14", seed=16, **sizes):
    """Greedy decoding with past key/values in PyTorch, float64, on the weights export_gpt2_with_past
    exports: the prompts run on an empty past, then each step only the chosen token on the previous
    step's present tensors, with an all-ones mask over past + new tokens. Writes <name>.generation.json:
    the prompts, every step's last-position logits [batch][vocab] and the chosen tokens."""
    torch.manual_seed(0)
    model = Gpt2PastLMHeadModel(**sizes)
    init_weights(model, seed)
    model.eval()
    model.double()
    heads, size = model.heads, model.d // model.heads
    ids = torch.tensor(GENERATION_PROMPTS)
    batch, length = ids.shape
    past = [torch.zeros(batch, heads, 0, size, dtype=torch.float64) for _ in range(2 * model.layers)]
    logits, tokens = [], []
    fresh = ids
    with torch.no_grad():
        for step in range(GENERATION_STEPS):
            mask = torch.ones(batch, length, dtype=torch.long)
            out = model(fresh, mask, *past)
            last = out[0][:, -1, :]
            past = list(out[1:])
            chosen = last.argmax(dim=-1)
            logits.append(values_of(last))
            tokens.append([int(t) for t in chosen])
            fresh = chosen[:, None]
            length += 1
    with open(os.path.join(out_dir, name + ".generation.json"), "w") as f:
        json.dump({"prompts": GENERATION_PROMPTS, "steps": GENERATION_STEPS, "logits": logits,
                   "tokens": [list(row) for row in zip(*tokens)]}, f)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "resources", "hosts", "torch")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(1)
    only = set(sys.argv[2:])
    for f in fixtures():
        if not only or f["name"] in only:
            reference(f, out_dir)
    if only == {"gpt2_past_generation"}:
        past_generation_reference(out_dir)
        return
    export_gpt2_with_past(out_dir)
    past_generation_reference(out_dir)
    # Byte-level: 256 byte values and 256 as end of text, 64 positions (the causal-LM text test).
    export_gpt2_with_past(out_dir, name="gpt2_bytes_opset14", seed=17, vocab=257, positions=64)


if __name__ == "__main__":
    main()
