/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader over memory buffers.
 *
 * Parses the input; when it parses, reads every metadata value through the
 * typed getters and iterators, looks up every tensor by name, and derives the
 * model profile and its JSON, so that the whole read path sees hostile input.
 * The corpus (tests/data/gguf/corpus, made by gguf_gen_corpus) is replayed by
 * the normal test suite.
 */
#include "gguf/gguf.h"
#include "gguf/profile.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_values(const gguf_file *f)
{
    for (uint64_t i = 0; i < gguf_n_kv(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        uint64_t n = kv->type == GGUF_VAL_ARRAY ? kv->n : 1;
        if (kv->type == GGUF_VAL_ARRAY && kv->arr_type == GGUF_VAL_STRING) {
            gguf_str_iter it;
            gguf_str s;
            gguf_str_iter_init(&it, kv);
            while (gguf_str_iter_next(&it, &s))
                (void)s;
            continue;
        }
        for (uint64_t k = 0; k < n && k < 4096; k++) {
            double d;
            uint64_t u;
            int64_t v;
            gguf_kv_f64(kv, k, &d, NULL);
            gguf_kv_u64(kv, k, &u, NULL);
            gguf_kv_i64(kv, k, &v, NULL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gguf_file *f;
    if (gguf_parse_buffer(data, size, &f, NULL) != 0)
        return 0;
    walk_values(f);
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        char name[GGUF_MAX_TENSOR_NAME + 1];
        size_t n = (size_t)t->name.len;
        for (size_t k = 0; k < n; k++)
            name[k] = t->name.ptr[k] != '\0' ? t->name.ptr[k] : '?';
        name[n] = '\0';
        (void)gguf_find_tensor(f, name);
    }
    gguf_model *m;
    if (gguf_model_from_file(f, &m, NULL) != 0)
        return 0;
    gguf_profile p;
    if (gguf_profile_from_model(m, &p, NULL) == 0) {
        json_t *j = gguf_profile_to_json(&p);
        if (j != NULL) {
            char *text = json_dumps(j, JSON_COMPACT);
            free(text);
            json_decref(j);
        }
        gguf_profile_free(&p);
    }
    gguf_model_free(m);
    return 0;
}
