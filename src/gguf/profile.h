/*
 * profile.h - what the planner needs to know about an LLM GGUF model.
 *
 * The GGUF reader (gguf.h) fills a gguf_profile from a file or a split set;
 * the planner (src/plan/) reads it and never touches the GGUF bytes. Keys are
 * those of llama.cpp's src/llama-arch.cpp (see contracts/memory.md §2).
 *
 * Ownership: gguf_profile_free() releases the arrays; the struct itself
 * belongs to the caller (usually on its stack). profile.c explains how each
 * field is derived; docs/gguf.md lists the sliding-window forms understood.
 */
#ifndef GENAI_GGUF_PROFILE_H
#define GENAI_GGUF_PROFILE_H

#include <stdint.h>

#define GGUF_ARCH_MAX 64

typedef struct gguf_profile {
    char architecture[GGUF_ARCH_MAX]; /* general.architecture */
    char name[256];                   /* general.name, "" when absent */
    uint32_t file_type;               /* general.file_type, UINT32_MAX when absent */
    uint32_t n_split;                 /* number of files (1 unless split.count) */
    uint64_t file_bytes;              /* sum of the sizes of all files */
    uint64_t tensor_bytes;            /* sum of all tensor data sizes (= model buffer) */
    uint64_t n_params;                /* sum of tensor element counts */
    uint64_t n_tensors;

    uint32_t n_layer;       /* <arch>.block_count */
    uint32_t n_ctx_train;   /* <arch>.context_length, 0 when absent */
    uint32_t n_embd;        /* <arch>.embedding_length */
    uint32_t n_ff;          /* feed_forward_length (first layer when per-layer) */
    uint32_t n_head;        /* head_count (max over layers when per-layer) */
    uint32_t n_vocab;       /* <arch>.vocab_size, else len(tokenizer.ggml.tokens) */
    uint32_t key_length;    /* attention.key_length, else n_embd / head_count[0] */
    uint32_t value_length;  /* attention.value_length, else n_embd / head_count[0] */
    uint32_t n_expert;      /* expert_count, 0 when dense */
    uint32_t n_expert_used; /* expert_used_count */
    uint32_t n_swa;         /* attention.sliding_window, 0 when none */

    /* Per layer, n_layer entries each (NULL only when n_layer == 0). */
    uint32_t *head_count;    /* n_head per layer (scalar key expanded) */
    uint32_t *head_count_kv; /* n_head_kv per layer (scalar expanded; = head_count if absent) */
    uint8_t *swa_layer;      /* 1 when the layer uses the sliding window */
    uint8_t *has_kv;         /* 1 when the layer has a KV cache (0 for recurrent layers) */
    uint64_t *layer_bytes;   /* tensor bytes of blk.<i>.* */
    uint64_t *layer_expert_bytes; /* bytes of blk.<i>.*_exps.* (subset of layer_bytes) */

    uint64_t token_embd_bytes; /* token_embd.weight (stays on the host) */
    uint64_t output_bytes;     /* output.weight + output_norm.* (first -ngl unit); when
                                  output.weight is absent (tied embeddings) llama.cpp
                                  duplicates token_embd for the output and this
                                  includes it, see output_tied and profile.c */
    uint64_t other_bytes;      /* tensors outside blk.*, token_embd and output */

    /* More from the metadata; 0 when the key is absent. */
    uint8_t output_tied;       /* 1: no output.weight, output_bytes counts token_embd */
    uint32_t n_expert_shared;  /* expert_shared_count */
    uint32_t n_ff_expert;      /* expert_feed_forward_length */
    uint32_t kv_lora_rank;     /* attention.kv_lora_rank (MLA) */
    uint32_t key_length_mla;   /* attention.key_length_mla */
    uint32_t value_length_mla; /* attention.value_length_mla */
} gguf_profile;

struct gguf_model;
struct genai_error;
struct json_t;

/* Fills *out from a model's metadata and tensor table (contracts/memory.md §2).
 * Fails with GENAI_EUNSUPPORTED when general.architecture is missing (not an
 * LLM file) and GENAI_ECORRUPT when a required key (block_count,
 * embedding_length, head_count) is missing or a per-layer array has the wrong
 * length. On success the caller frees the arrays with gguf_profile_free(). */
int gguf_profile_from_model(const struct gguf_model *m, gguf_profile *out, struct genai_error *err);

/* gguf_model_open() + gguf_profile_from_model() + close: the usual entry. */
int gguf_profile_load(const char *path, gguf_profile *out, struct genai_error *err);

/* Releases the per-layer arrays and zeroes *p. Accepts NULL. */
void gguf_profile_free(gguf_profile *p);

/* The profile as a JSON object (keys = the field names; per-layer arrays as
 * arrays). Returns a new reference (json_decref), NULL when out of memory. */
struct json_t *gguf_profile_to_json(const gguf_profile *p);

#endif
