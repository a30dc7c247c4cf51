/*
 * test_reader.c - GGUF reader: round trips through the writer for every value
 * type, hand-built version 2 files, typed getters, lookups, the ggml type
 * table, and reading a large header from a sparse file through the window.
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/profile.h"
#include "gguf/writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static gguf_file *parse_writer(gguf_writer *w, uint8_t **img, size_t *len)
{
    genai_error err;
    genai_error_clear(&err);
    assert_int_equal(gguf_writer_to_mem(w, img, len, &err), 0);
    gguf_file *f = NULL;
    int rc = gguf_parse_buffer(*img, *len, &f, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.detail);
    return f;
}

static void test_roundtrip_all_types(void **state)
{
    (void)state;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    uint8_t u8 = 250;
    int8_t i8 = -7;
    uint16_t u16 = 65000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000LL;
    double f64 = 2.5e-300;
    assert_int_equal(gguf_writer_add_u32(w, "general.alignment", 64), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.u8", GGUF_VAL_UINT8, &u8), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.i8", GGUF_VAL_INT8, &i8), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.u16", GGUF_VAL_UINT16, &u16), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.i16", GGUF_VAL_INT16, &i16), 0);
    assert_int_equal(gguf_writer_add_u32(w, "t.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_add_i32(w, "t.i32", -123456), 0);
    assert_int_equal(gguf_writer_add_f32(w, "t.f32", 0.125f), 0);
    assert_int_equal(gguf_writer_add_bool(w, "t.bool", 1), 0);
    assert_int_equal(gguf_writer_add_str(w, "t.str", "h\xc3\xa9llo"), 0);
    assert_int_equal(gguf_writer_add_u64(w, "t.u64", 0xfedcba9876543210ull), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.i64", GGUF_VAL_INT64, &i64), 0);
    assert_int_equal(gguf_writer_add_scalar(w, "t.f64", GGUF_VAL_FLOAT64, &f64), 0);
    int32_t ai[] = {1, -2, 3};
    float af[] = {0.5f, -1.5f};
    uint8_t ab[] = {1, 0, 1, 1};
    const char *as[] = {"", "one", "two words"};
    assert_int_equal(gguf_writer_add_array(w, "a.i32", GGUF_VAL_INT32, ai, 3), 0);
    assert_int_equal(gguf_writer_add_array(w, "a.f32", GGUF_VAL_FLOAT32, af, 2), 0);
    assert_int_equal(gguf_writer_add_array(w, "a.bool", GGUF_VAL_BOOL, ab, 4), 0);
    assert_int_equal(gguf_writer_add_str_array(w, "a.str", as, 3), 0);
    assert_int_equal(gguf_writer_add_array(w, "a.empty", GGUF_VAL_UINT64, NULL, 0), 0);
    /* The writer refuses what the reader would refuse. */
    assert_int_equal(gguf_writer_add_u32(w, "t.u32", 1), GENAI_EBAD_ARG);
    assert_int_equal(gguf_writer_add_u32(w, "", 1), GENAI_EBAD_ARG);

    float t0[6] = {1, 2, 3, 4, 5, 6};
    uint8_t t1[3 * 144];
    for (size_t i = 0; i < sizeof(t1); i++)
        t1[i] = (uint8_t)i;
    uint64_t ne0[] = {3, 2}, ne1[] = {256, 3}, ne2[] = {32, 1, 2, 3}, ne3[] = {5};
    assert_int_equal(gguf_writer_add_tensor(w, "t0", GGUF_DT_F32, 2, ne0, t0), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t1", GGUF_DT_Q4_K, 2, ne1, t1), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t2", GGUF_DT_Q8_0, 4, ne2, NULL), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t3", GGUF_DT_F16, 1, ne3, NULL), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "t0", GGUF_DT_F32, 1, ne3, NULL), GENAI_EBAD_ARG);
    assert_int_equal(gguf_writer_add_tensor(w, "bad", GGUF_DT_Q4_0, 1, ne3, NULL),
                     GENAI_EBAD_ARG); /* 5 is not a multiple of 32 */
    assert_int_equal(gguf_writer_add_tensor(w, "bad", 4, 1, ne3, NULL), GENAI_EBAD_ARG);

    uint8_t *img;
    size_t len;
    gguf_file *f = parse_writer(w, &img, &len);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 64);
    assert_int_equal(gguf_n_kv(f), 18);
    assert_int_equal(gguf_n_tensors(f), 4);
    assert_int_equal(gguf_file_size(f), len);
    assert_int_equal(gguf_data_offset(f) % 64, 0);
    assert_int_equal(gguf_data_offset(f), gguf_writer_data_offset(w));

    uint64_t u;
    int64_t i;
    double d;
    uint32_t u32;
    int b;
    gguf_str s;
    assert_int_equal(gguf_get_u64(f, "t.u8", &u, NULL), 0);
    assert_int_equal(u, 250);
    assert_int_equal(gguf_get_i64(f, "t.i8", &i, NULL), 0);
    assert_int_equal(i, -7);
    assert_int_equal(gguf_get_u32(f, "t.u16", &u32, NULL), 0);
    assert_int_equal(u32, 65000);
    assert_int_equal(gguf_get_i64(f, "t.i16", &i, NULL), 0);
    assert_int_equal(i, -30000);
    assert_int_equal(gguf_get_u32(f, "t.u32", &u32, NULL), 0);
    assert_int_equal(u32, 4000000000u);
    assert_int_equal(gguf_get_i64(f, "t.i32", &i, NULL), 0);
    assert_int_equal(i, -123456);
    assert_int_equal(gguf_get_f64(f, "t.f32", &d, NULL), 0);
    assert_true(d == 0.125);
    assert_int_equal(gguf_get_bool(f, "t.bool", &b, NULL), 0);
    assert_int_equal(b, 1);
    assert_int_equal(gguf_get_str(f, "t.str", &s, NULL), 0);
    assert_true(gguf_str_eq(s, "h\xc3\xa9llo"));
    assert_int_equal(gguf_get_u64(f, "t.u64", &u, NULL), 0);
    assert_true(u == 0xfedcba9876543210ull);
    assert_int_equal(gguf_get_i64(f, "t.i64", &i, NULL), 0);
    assert_true(i == -5000000000LL);
    assert_int_equal(gguf_get_f64(f, "t.f64", &d, NULL), 0);
    assert_true(d == 2.5e-300);

    const gguf_kv *kv = gguf_find_kv(f, "a.i32");
    assert_non_null(kv);
    assert_int_equal(kv->type, GGUF_VAL_ARRAY);
    assert_int_equal(kv->arr_type, GGUF_VAL_INT32);
    assert_int_equal(kv->n, 3);
    assert_int_equal(gguf_kv_i64(kv, 1, &i, NULL), 0);
    assert_int_equal(i, -2);
    assert_int_equal(gguf_kv_u64(kv, 1, &u, NULL), GENAI_ECORRUPT); /* negative */
    assert_int_equal(gguf_kv_i64(kv, 3, &i, NULL), GENAI_ECORRUPT); /* past the end */
    kv = gguf_find_kv(f, "a.f32");
    assert_int_equal(gguf_kv_f64(kv, 1, &d, NULL), 0);
    assert_true(d == -1.5);
    kv = gguf_find_kv(f, "a.bool");
    assert_int_equal(gguf_kv_u64(kv, 2, &u, NULL), 0);
    assert_int_equal(u, 1);
    assert_int_equal(gguf_kv_u64(kv, 1, &u, NULL), 0);
    assert_int_equal(u, 0);
    kv = gguf_find_kv(f, "a.str");
    assert_int_equal(kv->arr_type, GGUF_VAL_STRING);
    assert_false(gguf_kv_is_numeric(kv));
    gguf_str_iter it;
    gguf_str_iter_init(&it, kv);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gguf_str_iter_next(&it, &s), 1);
        assert_true(gguf_str_eq(s, as[k]));
    }
    assert_int_equal(gguf_str_iter_next(&it, &s), 0);
    assert_int_equal(gguf_kv_str(kv, 2, &s, NULL), 0);
    assert_true(gguf_str_eq(s, "two words"));
    assert_int_equal(gguf_find_kv(f, "a.empty")->n, 0);

    const gguf_tensor *t = gguf_find_tensor(f, "t1");
    assert_non_null(t);
    assert_int_equal(t->type, GGUF_DT_Q4_K);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->ne[0], 256);
    assert_int_equal(t->ne[1], 3);
    assert_int_equal(t->ne[2], 1);
    assert_int_equal(t->n_elements, 768);
    assert_int_equal(t->n_bytes, 3 * 144);
    assert_int_equal(t->offset, 64); /* t0 (24 bytes) padded to 64 */
    assert_memory_equal(img + t->file_offset, t1, sizeof(t1));
    t = gguf_find_tensor(f, "t0");
    assert_memory_equal(img + t->file_offset, t0, sizeof(t0));
    t = gguf_find_tensor(f, "t2");
    assert_int_equal(t->n_dims, 4);
    assert_int_equal(t->n_elements, 32 * 6);
    assert_int_equal(t->n_bytes, 6 * 34);
    t = gguf_find_tensor(f, "t3");
    assert_int_equal(t->n_bytes, 10);
    assert_int_equal(gguf_tensor_bytes(f), 24 + 432 + 204 + 10);
    assert_null(gguf_find_tensor(f, "t"));
    assert_null(gguf_find_tensor(f, "t00"));
    assert_int_equal(len, gguf_writer_size(w));
    assert_int_equal(len, gguf_data_offset(f) + 64 + 448 + 256 + 64);

    gguf_close(f);
    mem_free(img);
    gguf_writer_free(w);
}

static void test_getter_errors(void **state)
{
    (void)state;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    gguf_writer_add_i32(w, "neg", -1);
    gguf_writer_add_u64(w, "big", 1ull << 40);
    gguf_writer_add_str(w, "s", "x");
    gguf_writer_add_f32(w, "f", 1.5f);
    uint32_t arr[] = {1, 2};
    gguf_writer_add_array(w, "arr", GGUF_VAL_UINT32, arr, 2);
    uint8_t *img;
    size_t len;
    gguf_file *f = parse_writer(w, &img, &len);
    genai_error err;
    uint32_t u32 = 77;
    uint64_t u64;
    gguf_str s;
    assert_int_equal(gguf_get_u32(f, "missing", &u32, &err), GENAI_ENOT_FOUND);
    assert_non_null(strstr(err.detail, "missing"));
    assert_int_equal(gguf_get_u32(f, "neg", &u32, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_get_u32(f, "big", &u32, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "exceeds uint32"));
    assert_int_equal(gguf_get_u32(f, "s", &u32, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_get_u32(f, "f", &u32, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_get_u32(f, "arr", &u32, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "array"));
    assert_int_equal(u32, 77); /* untouched on failure */
    assert_int_equal(gguf_get_str(f, "big", &s, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_kv_str(gguf_find_kv(f, "arr"), 0, &s, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_kv_u64(gguf_find_kv(f, "s"), 0, &u64, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_kv_u64(gguf_find_kv(f, "big"), 1, &u64, &err), GENAI_ECORRUPT);
    assert_int_equal(gguf_get_u64(f, "big", &u64, &err), 0);
    assert_true(u64 == 1ull << 40);
    gguf_close(f);
    mem_free(img);
    gguf_writer_free(w);
}

/* Version 2 uses the same 64-bit counts as version 3: accepted. */
static void test_version2_by_hand(void **state)
{
    (void)state;
    tb b = {0};
    tb_header(&b, 2, 1, 2);
    tb_kv_str(&b, "general.architecture", "llama");
    tb_kv_u32(&b, "general.alignment", 16);
    uint64_t ne[] = {4, 2};
    tb_tensor(&b, "w", 2, ne, GGUF_DT_F16, 0);
    size_t header = b.len;
    tb_pad(&b, 16);
    size_t data = b.len;
    tb_zeros(&b, 16);
    gguf_file *f;
    genai_error err;
    int rc = gguf_parse_buffer(b.p, b.len, &f, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(gguf_version(f), 2);
    assert_int_equal(gguf_alignment(f), 16);
    assert_int_equal(gguf_data_offset(f), data);
    assert_true(data >= header && data - header < 16);
    const gguf_tensor *t = gguf_tensor_at(f, 0);
    assert_int_equal(t->info_off, header - (8 + 1 + 4 + 16 + 4 + 8));
    assert_int_equal(t->file_offset, data);
    assert_int_equal(t->n_bytes, 16);
    assert_int_equal(gguf_kv_at(f, 1)->key_off, 24 + 8 + 20 + 4 + 8 + 5);
    gguf_close(f);
    tb_free(&b);
}

static void test_dtype_table(void **state)
{
    (void)state;
    static const struct {
        uint32_t type, elems, bytes;
    } known[] = {
        {GGUF_DT_F32, 1, 4},      {GGUF_DT_F16, 1, 2},        {GGUF_DT_BF16, 1, 2},
        {GGUF_DT_Q4_0, 32, 18},   {GGUF_DT_Q8_0, 32, 34},     {GGUF_DT_Q5_1, 32, 24},
        {GGUF_DT_Q2_K, 256, 84},  {GGUF_DT_Q6_K, 256, 210},   {GGUF_DT_IQ2_XXS, 256, 66},
        {GGUF_DT_IQ4_NL, 32, 18}, {GGUF_DT_IQ1_M, 256, 56},   {GGUF_DT_TQ1_0, 256, 54},
        {GGUF_DT_MXFP4, 32, 17},  {GGUF_DT_NVFP4, 64, 36},    {GGUF_DT_Q1_0, 128, 18},
        {GGUF_DT_I64, 1, 8},      {GGUF_DT_IQ4_XS, 256, 136},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        uint32_t e = 0, by = 0;
        assert_int_equal(gguf_dtype_info(known[i].type, &e, &by), 0);
        assert_int_equal(e, known[i].elems);
        assert_int_equal(by, known[i].bytes);
    }
    const uint32_t removed[] = {4, 5, 31, 32, 33, 36, 37, 38, 42, 1000, UINT32_MAX};
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        assert_int_equal(gguf_dtype_info(removed[i], NULL, NULL), GENAI_EUNSUPPORTED);
        assert_string_equal(gguf_dtype_name(removed[i]), "unknown");
    }
    assert_string_equal(gguf_dtype_name(GGUF_DT_Q4_K), "q4_K");
    assert_string_equal(gguf_vtype_name(GGUF_VAL_FLOAT64), "float64");
    assert_string_equal(gguf_vtype_name(13), "unknown");
}

/* Many tensors: every name is found, near misses are not. */
static void test_lookup_many(void **state)
{
    (void)state;
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    char name[64];
    uint64_t ne[] = {32};
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "blk.%d.attn_q.weight", i);
        assert_int_equal(gguf_writer_add_tensor(w, name, GGUF_DT_F32, 1, ne, NULL), 0);
    }
    gguf_writer_add_u32(w, "a.b", 1);
    gguf_writer_add_u32(w, "a.bc", 2);
    uint8_t *img;
    size_t len;
    gguf_file *f = parse_writer(w, &img, &len);
    for (int i = 0; i < 1500; i++) {
        snprintf(name, sizeof(name), "blk.%d.attn_q.weight", i);
        const gguf_tensor *t = gguf_find_tensor(f, name);
        assert_non_null(t);
        assert_ptr_equal(t, gguf_tensor_at(f, (uint64_t)i));
        assert_int_equal(t->offset, (uint64_t)i * 128);
    }
    assert_null(gguf_find_tensor(f, "blk.1500.attn_q.weight"));
    assert_null(gguf_find_tensor(f, "blk.1.attn_q.weigh"));
    uint32_t v;
    assert_int_equal(gguf_get_u32(f, "a.bc", &v, NULL), 0);
    assert_int_equal(v, 2);
    assert_null(gguf_find_kv(f, "a"));
    gguf_close(f);
    mem_free(img);
    gguf_writer_free(w);
}

/* A 100k-entry vocabulary before a 64 MiB sparse tensor: the reader reads
 * the header only (growing its window past the first 64 KiB), not the data. */
static void test_open_large_header_sparse(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "big.gguf");
    enum { N = 100000 };
    char **toks = mem_calloc(N, sizeof(*toks));
    assert_non_null(toks);
    for (int i = 0; i < N; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "tok%d", i);
        toks[i] = mem_strdup(buf);
    }
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_int_equal(
        gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)toks, N), 0);
    uint64_t ne[] = {4096, 4096};
    assert_int_equal(gguf_writer_add_tensor(w, "big", GGUF_DT_F32, 2, ne, NULL), 0);
    genai_error err;
    assert_int_equal(gguf_writer_write(w, path, &err), 0);

    gguf_file *f;
    int rc = gguf_open(path, &f, &err);
    if (rc != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(gguf_file_size(f), gguf_data_offset(f) + 4096ull * 4096 * 4);
    assert_true(gguf_meta_bytes(f) >= gguf_data_offset(f) - 32);
    assert_true(gguf_meta_bytes(f) <= 2 * gguf_data_offset(f));
    assert_true(gguf_data_offset(f) > 1000000);
    const gguf_kv *kv = gguf_find_kv(f, "tokenizer.ggml.tokens");
    assert_int_equal(kv->n, N);
    gguf_str s;
    assert_int_equal(gguf_kv_str(kv, N - 1, &s, NULL), 0);
    assert_true(gguf_str_eq(s, "tok99999"));
    assert_int_equal(gguf_find_tensor(f, "big")->n_bytes, 4096ull * 4096 * 4);
    gguf_close(f);

    /* Errors name the file. */
    assert_int_equal(truncate(path, 1000), 0);
    assert_int_equal(gguf_open(path, &f, &err), GENAI_ECORRUPT);
    assert_memory_equal(err.detail, path, strlen(path));
    char *missing = tu_path(dir, "missing.gguf");
    assert_int_equal(gguf_open(missing, &f, &err), -ENOENT);
    assert_int_equal(gguf_open(dir, &f, &err), GENAI_EBAD_ARG);

    for (int i = 0; i < N; i++)
        mem_free(toks[i]);
    mem_free(toks);
    mem_free(missing);
    gguf_writer_free(w);
    unlink(path);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

/* The committed fuzz seed corpus is what gen_corpus.c says it is. */
static void test_seed_corpus(void **state)
{
    (void)state;
    const char *data = getenv("GENAI_TEST_DATA");
    assert_non_null(data);
    static const struct {
        const char *name;
        int open_rc, profile_rc;
    } files[] = {
        {"valid_tiny_llama.gguf", 0, 0},
        {"valid_types.gguf", 0, GENAI_EUNSUPPORTED},
        {"valid_swa.gguf", 0, 0},
        {"valid_moe.gguf", 0, 0},
        {"valid_gqa_arrays.gguf", 0, 0},
        {"trunc_data.gguf", GENAI_ECORRUPT, 0},
        {"trunc_header.gguf", GENAI_ECORRUPT, 0},
        {"bad_magic.gguf", GENAI_ECORRUPT, 0},
        {"version1.gguf", GENAI_EUNSUPPORTED, 0},
        {"huge_count.gguf", GENAI_ETOO_LARGE, 0},
        {"nested_array.gguf", GENAI_EUNSUPPORTED, 0},
        {"bad_ndims.gguf", GENAI_ECORRUPT, 0},
        {"misaligned.gguf", GENAI_ECORRUPT, 0},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char rel[128];
        snprintf(rel, sizeof(rel), "gguf/corpus/%s", files[i].name);
        char *path = tu_path(data, rel);
        gguf_file *f;
        genai_error err;
        int rc = gguf_open(path, &f, &err);
        if (rc != files[i].open_rc)
            fail_msg("%s: %d (%s)", files[i].name, rc, err.detail);
        if (rc == 0) {
            gguf_model *m;
            gguf_profile p;
            assert_int_equal(gguf_model_from_file(f, &m, NULL), 0);
            rc = gguf_profile_from_model(m, &p, &err);
            if (rc != files[i].profile_rc)
                fail_msg("%s profile: %d (%s)", files[i].name, rc, err.detail);
            if (rc == 0)
                gguf_profile_free(&p);
            gguf_model_free(m);
        }
        mem_free(path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_types), cmocka_unit_test(test_getter_errors),
        cmocka_unit_test(test_version2_by_hand),    cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_lookup_many),         cmocka_unit_test(test_open_large_header_sparse),
        cmocka_unit_test(test_seed_corpus),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
