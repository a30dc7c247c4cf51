/*
 * mkmodel.c - genai-mkmodel: writes a tiny random-weight llama-architecture
 * GGUF model that llama.cpp's llama-server can load and answer with, for
 * tests and demos without downloading a model.
 *
 * genai-mkmodel OUT.gguf [--layers N] [--embd N] [--heads N] [--kv-heads N]
 *               [--ff N] [--ctx N] [--vocab N] [--type f32|f16] [--seed N]
 * genai-mkmodel OUT.gguf --sd1 [--seed N] [--type f16|f32]
 *
 * The defaults are the ref-tiny shape of contracts/llama-server.md §2. With
 * --sd1 it writes instead a small random-weight SD 1.x checkpoint that
 * stable-diffusion.cpp runs (tiny_sd1.h; contracts/stable-diffusion-cpp.md §9).
 * Exit status: 0 written, 1 failed, 2 bad arguments.
 */
#include "tiny_llama.h"
#include "tiny_sd1.h"

#include "core/error.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: genai-mkmodel OUT.gguf [--layers N] [--embd N] [--heads N] [--kv-heads N]\n"
            "                     [--ff N] [--ctx N] [--vocab N] [--type f32|f16] [--seed N]\n"
            "Writes a tiny random-weight llama model. Defaults: 2 layers, embd 128, 4 heads,\n"
            "2 KV heads, ff 256, ctx 2048, vocab 312, f32, seed 42.\n"
            "       genai-mkmodel OUT.gguf --sd1 [--seed N] [--type f16|f32]\n"
            "Writes a random-weight SD 1.x checkpoint for stable-diffusion.cpp: full-size\n"
            "CLIP-L text encoder, UNet 32 channels wide, VAE decoder 32 wide; f16 (~342 MB)\n"
            "by default, seed 42.\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Writes a built model to path; on failure says why and frees it. 0 or 1
 * (the exit status). */
static int write_out(gguf_writer *w, const char *path)
{
    genai_error err;
    genai_error_clear(&err);
    if (gguf_writer_write(w, path, &err) < 0) {
        fprintf(stderr, "genai-mkmodel: %s\n", err.detail);
        gguf_writer_free(w);
        return 1;
    }
    return 0;
}

/* genai-mkmodel --sd1: builds, writes and describes the SD 1.x checkpoint. */
static int write_sd1(const char *path, uint64_t seed, uint32_t type)
{
    struct mkmodel_sd1_opts o;
    struct mkmodel_sd1_stats st;
    genai_error err;
    gguf_writer *w;
    genai_error_clear(&err);
    mkmodel_sd1_defaults(&o);
    o.seed = seed;
    o.type = type;
    if (mkmodel_sd1_build(&o, &w, &st, &err) < 0) {
        fprintf(stderr, "genai-mkmodel: %s\n", err.detail);
        return 1;
    }
    if (write_out(w, path) != 0)
        return 1;
    printf("%s: SD 1.x, %s, %" PRIu64 " tensors; parameters: text encoder %" PRIu64
           ", UNet %" PRIu64 ", VAE %" PRIu64 "; %" PRIu64 " bytes\n",
           path, gguf_dtype_name(type), st.n_tensors, st.te_params, st.unet_params, st.vae_params,
           gguf_writer_size(w));
    gguf_writer_free(w);
    return 0;
}

int main(int argc, char **argv)
{
    struct mkmodel_opts o;
    mkmodel_defaults(&o);
    const char *path = NULL;
    const char *llama_flag = NULL; /* the first llama-only flag given */
    int sd1 = 0, type_given = 0;
    static const struct {
        const char *flag;
        size_t off;
    } flags[] = {
        {"--layers", offsetof(struct mkmodel_opts, n_layer)},
        {"--embd", offsetof(struct mkmodel_opts, n_embd)},
        {"--heads", offsetof(struct mkmodel_opts, n_head)},
        {"--kv-heads", offsetof(struct mkmodel_opts, n_head_kv)},
        {"--ff", offsetof(struct mkmodel_opts, n_ff)},
        {"--ctx", offsetof(struct mkmodel_opts, n_ctx)},
        {"--vocab", offsetof(struct mkmodel_opts, n_vocab)},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (a[0] != '-') {
            if (path != NULL) {
                fprintf(stderr, "genai-mkmodel: more than one output file\n");
                return 2;
            }
            path = a;
            continue;
        }
        if (strcmp(a, "--sd1") == 0) {
            sd1 = 1;
            continue;
        }
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t v;
        int known = 0;
        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); k++) {
            if (strcmp(a, flags[k].flag) != 0)
                continue;
            if (parse_u64(val, UINT32_MAX, &v) != 0) {
                fprintf(stderr, "genai-mkmodel: %s needs a number\n", a);
                return 2;
            }
            uint32_t u = (uint32_t)v;
            memcpy((char *)&o + flags[k].off, &u, sizeof(u));
            known = 1;
            if (llama_flag == NULL)
                llama_flag = a;
        }
        if (!known && strcmp(a, "--seed") == 0) {
            if (parse_u64(val, UINT64_MAX, &o.seed) != 0) {
                fprintf(stderr, "genai-mkmodel: --seed needs a number\n");
                return 2;
            }
            known = 1;
        } else if (!known && strcmp(a, "--type") == 0) {
            if (val != NULL && strcmp(val, "f32") == 0) {
                o.type = GGUF_DT_F32;
            } else if (val != NULL && strcmp(val, "f16") == 0) {
                o.type = GGUF_DT_F16;
            } else {
                fprintf(stderr, "genai-mkmodel: --type must be f32 or f16\n");
                return 2;
            }
            known = 1;
            type_given = 1;
        }
        if (!known) {
            fprintf(stderr, "genai-mkmodel: unknown flag '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i++;
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    if (sd1 && llama_flag != NULL) {
        fprintf(stderr, "genai-mkmodel: %s does not apply to --sd1\n", llama_flag);
        return 2;
    }
    if (sd1)
        return write_sd1(path, o.seed, type_given ? o.type : GGUF_DT_F16);
    genai_error err;
    genai_error_clear(&err);
    if (mkmodel_check(&o, &err) < 0) {
        fprintf(stderr, "genai-mkmodel: %s\n", err.detail);
        return 2;
    }
    gguf_writer *w;
    if (mkmodel_build(&o, &w, &err) < 0) {
        fprintf(stderr, "genai-mkmodel: %s\n", err.detail);
        return 1;
    }
    if (write_out(w, path) != 0)
        return 1;
    printf("%s: llama, %" PRIu32 " layers, embd %" PRIu32 ", heads %" PRIu32 "/%" PRIu32
           ", ff %" PRIu32 ", vocab %" PRIu32 ", %s; %" PRIu64
           " bytes, tensor data from byte %" PRIu64 "\n",
           path, o.n_layer, o.n_embd, o.n_head, o.n_head_kv, o.n_ff, o.n_vocab,
           gguf_dtype_name(o.type), gguf_writer_size(w), gguf_writer_data_offset(w));
    gguf_writer_free(w);
    return 0;
}
