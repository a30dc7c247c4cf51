/*
 * test_corrupt.c - every class of malformed GGUF input gets a clean error
 * code and a detail that names the field and its byte offset: bad magic,
 * unsupported versions, huge counts, strings past the end, bad value types,
 * nested arrays, n_dims > 4, dimension overflow, unknown ggml types, tensors
 * past the end of the file, misaligned and overlapping offsets, duplicates,
 * truncation at every byte and flipped bytes; and allocation failure at every
 * allocation returns -ENOMEM without leaking (checked by the ASan build).
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/writer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Parses b (through an exact-size copy, so ASan sees over-reads) and returns
 * the code; the detail goes to err. */
static int parse(const tb *b, genai_error *err)
{
    uint8_t *copy = mem_alloc(b->len ? b->len : 1);
    assert_non_null(copy);
    if (b->len > 0)
        memcpy(copy, b->p, b->len);
    gguf_file *f = NULL;
    genai_error_clear(err);
    int rc = gguf_parse_buffer(copy, b->len, &f, err);
    mem_free(copy);
    if (rc == 0)
        gguf_close(f);
    else
        assert_null(f);
    return rc;
}

#define assert_detail(err, text)                                                                   \
    do {                                                                                           \
        if (strstr((err).detail, text) == NULL)                                                    \
            fail_msg("detail '%s' lacks '%s'", (err).detail, text);                                \
    } while (0)

static void test_magic_and_version(void **state)
{
    (void)state;
    genai_error err;
    tb b = {0};
    tb_header(&b, 3, 0, 0);
    assert_int_equal(parse(&b, &err), 0);
    b.p[3] = 'X';
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "magic 47 47 55 58 at byte 0");
    tb_free(&b);

    tb_header(&b, 1, 0, 0);
    assert_int_equal(parse(&b, &err), GENAI_EUNSUPPORTED);
    assert_detail(err, "version 1");
    tb_free(&b);
    tb_header(&b, 0x03000000u, 0, 0); /* a big-endian version 3 file */
    assert_int_equal(parse(&b, &err), GENAI_EUNSUPPORTED);
    assert_detail(err, "big-endian");
    tb_free(&b);
    tb_header(&b, 4, 0, 0);
    assert_int_equal(parse(&b, &err), GENAI_EUNSUPPORTED);
    assert_detail(err, "version 4 at byte 4");
    tb_free(&b);

    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT); /* empty input */
}

static void test_huge_counts(void **state)
{
    (void)state;
    genai_error err;
    tb b = {0};
    tb_header(&b, 3, 1ull << 40, 0);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    assert_detail(err, "tensor count 1099511627776 at byte 8");
    tb_free(&b);
    tb_header(&b, 3, 0, UINT64_MAX);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    assert_detail(err, "at byte 16");
    tb_free(&b);
    /* Under the caps but more entries than the bytes could hold. */
    tb_header(&b, 3, 1000, 1000);
    tb_zeros(&b, 100);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "cannot fit");
    tb_free(&b);

    /* An array whose byte size overflows or passes the header cap. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, GGUF_VAL_UINT32);
    tb_u64(&b, 1ull << 62);
    tb_zeros(&b, 64);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    assert_detail(err, "array count 4611686018427387904 at byte 41");
    tb_free(&b);
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, GGUF_VAL_STRING);
    tb_u64(&b, 1ull << 40);
    tb_zeros(&b, 64);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    tb_free(&b);
    /* A plausible count with too few bytes behind it. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, GGUF_VAL_UINT32);
    tb_u64(&b, 1000);
    tb_zeros(&b, 10);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "metadata 0 'k': 4000 bytes at byte 49 run past the end");
    tb_free(&b);
    /* A string array whose 3rd element runs past the end. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, GGUF_VAL_STRING);
    tb_u64(&b, 3);
    tb_str(&b, "a");
    tb_str(&b, "b");
    tb_u64(&b, 50);
    tb_zeros(&b, 10);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "element 2");
    tb_free(&b);
}

static void test_strings_and_types(void **state)
{
    (void)state;
    genai_error err;
    tb b = {0};
    /* Key length past the end of the file. */
    tb_header(&b, 3, 0, 1);
    tb_u64(&b, 1000);
    tb_bytes(&b, "abc", 3);
    tb_zeros(&b, 20);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "metadata 0 key: 1000 bytes at byte 32 run past the end of the file");
    tb_free(&b);
    /* Key longer than the spec allows. */
    tb_header(&b, 3, 0, 1);
    tb_u64(&b, 70000);
    tb_zeros(&b, 70010);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    tb_free(&b);
    /* Empty key. */
    tb_header(&b, 3, 0, 1);
    tb_u64(&b, 0);
    tb_u32(&b, GGUF_VAL_UINT8);
    tb_zeros(&b, 8);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "empty key");
    tb_free(&b);
    /* String value length past the end. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "name");
    tb_u32(&b, GGUF_VAL_STRING);
    tb_u64(&b, UINT64_MAX);
    tb_zeros(&b, 8);
    assert_int_equal(parse(&b, &err), GENAI_ETOO_LARGE);
    tb_free(&b);
    /* Unknown value type. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "key.x");
    tb_u32(&b, 13);
    tb_zeros(&b, 8);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "metadata 0 'key.x': unknown value type 13 at byte 37");
    tb_free(&b);
    /* Unknown array element type; nested arrays. */
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, 99);
    tb_zeros(&b, 16);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    tb_free(&b);
    tb_header(&b, 3, 0, 1);
    tb_str(&b, "k");
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u32(&b, GGUF_VAL_ARRAY);
    tb_u64(&b, 1);
    tb_zeros(&b, 16);
    assert_int_equal(parse(&b, &err), GENAI_EUNSUPPORTED);
    assert_detail(err, "nested array at byte 37");
    tb_free(&b);
    /* Duplicate keys. */
    tb_header(&b, 3, 0, 2);
    tb_kv_u32(&b, "a.b", 1);
    tb_kv_u32(&b, "a.b", 2);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "duplicate key 'a.b' at byte 43");
    tb_free(&b);
    /* general.alignment: not a power of two, zero, wrong type. */
    tb_header(&b, 3, 0, 1);
    tb_kv_u32(&b, "general.alignment", 48);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "not a power of two");
    tb_free(&b);
    tb_header(&b, 3, 0, 1);
    tb_kv_u32(&b, "general.alignment", 0);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    tb_free(&b);
    tb_header(&b, 3, 0, 1);
    tb_kv_str(&b, "general.alignment", "32");
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "expected uint32");
    tb_free(&b);
}

/* One tensor row in an otherwise empty file, followed by data_bytes of data. */
static int one_tensor(const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                      uint64_t offset, size_t data_bytes, genai_error *err)
{
    tb b = {0};
    tb_header(&b, 3, 1, 0);
    tb_tensor(&b, name, n_dims, ne, type, offset);
    tb_pad(&b, 32);
    tb_zeros(&b, data_bytes);
    int rc = parse(&b, err);
    tb_free(&b);
    return rc;
}

static void test_tensor_table(void **state)
{
    (void)state;
    genai_error err;
    uint64_t ne5[] = {1, 1, 1, 1, 1};
    assert_int_equal(one_tensor("t", 4, ne5, GGUF_DT_F32, 0, 32, &err), 0);
    assert_int_equal(one_tensor("t", 5, ne5, GGUF_DT_F32, 0, 32, &err), GENAI_ECORRUPT);
    assert_detail(err, "tensor 0 't': n_dims 5 at byte 33 exceeds 4");

    uint64_t ovf[] = {1ull << 32, 1ull << 32};
    assert_int_equal(one_tensor("t", 2, ovf, GGUF_DT_F32, 0, 32, &err), GENAI_ECORRUPT);
    assert_detail(err, "dimensions overflow");
    uint64_t bytes_ovf[] = {1ull << 62}; /* elements fit int64, bytes do not */
    assert_int_equal(one_tensor("t", 1, bytes_ovf, GGUF_DT_F32, 0, 32, &err), GENAI_ECORRUPT);
    assert_detail(err, "overflows");
    uint64_t neg[] = {1ull << 63};
    assert_int_equal(one_tensor("t", 1, neg, GGUF_DT_I8, 0, 32, &err), GENAI_ECORRUPT);
    assert_detail(err, "negative as int64");

    uint64_t ne[] = {32};
    assert_int_equal(one_tensor("t", 1, ne, 4, 0, 32, &err), GENAI_EUNSUPPORTED);
    assert_detail(err, "tensor 0 't': unknown ggml type 4 at byte 45");
    assert_int_equal(one_tensor("t", 1, ne, 1000, 0, 32, &err), GENAI_EUNSUPPORTED);
    uint64_t ne33[] = {33};
    assert_int_equal(one_tensor("t", 1, ne33, GGUF_DT_Q4_0, 0, 64, &err), GENAI_ECORRUPT);
    assert_detail(err, "not a multiple of the q4_0 block (32)");

    /* Names up to 127 bytes (sd.cpp's GGML_MAX_NAME=128) are read; longer refused. */
    char longname[200];
    memset(longname, 'x', 128);
    longname[128] = '\0';
    assert_int_equal(one_tensor(longname, 1, ne, GGUF_DT_F32, 0, 128, &err), GENAI_ETOO_LARGE);
    longname[127] = '\0';
    assert_int_equal(one_tensor(longname, 1, ne, GGUF_DT_F32, 0, 128, &err), 0);
    /* A converted sd.cpp tensor name (77 bytes). */
    assert_int_equal(one_tensor("model.diffusion_model.output_blocks.2.1.transformer_blocks.0"
                                ".attn1.to_q.weight",
                                1, ne, GGUF_DT_F32, 0, 128, &err),
                     0);

    /* Misaligned, past the end. */
    assert_int_equal(one_tensor("t", 1, ne, GGUF_DT_F32, 8, 256, &err), GENAI_ECORRUPT);
    assert_detail(err, "offset 8 not a multiple of the alignment 32 at byte 49");
    assert_int_equal(one_tensor("t", 1, ne, GGUF_DT_F32, 0, 127, &err), GENAI_ECORRUPT);
    assert_int_equal(one_tensor("t", 1, ne, GGUF_DT_F32, UINT64_MAX - 31, 128, &err),
                     GENAI_ECORRUPT);
}

/* The detail of a tensor past the end names the tensor, its offset, the file
 * size and the byte of the offset field, as the issue asks. */
static void test_tensor_past_eof_detail(void **state)
{
    (void)state;
    genai_error err;
    tb b = {0};
    uint64_t ne[] = {64, 16};
    tb_header(&b, 3, 2, 1);
    tb_kv_str(&b, "general.architecture", "llama");
    tb_tensor(&b, "token_embd.weight", 2, ne, GGUF_DT_F32, 0);
    size_t row = b.len;
    tb_tensor(&b, "blk.3.attn_q.weight", 2, ne, GGUF_DT_F32, 4096);
    size_t field = row + 8 + strlen("blk.3.attn_q.weight") + 4 + 16 + 4;
    tb_pad(&b, 32);
    tb_zeros(&b, 4096 + 100);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    char want[256];
    snprintf(want, sizeof(want),
             "tensor 1 'blk.3.attn_q.weight': offset 4096 + 4096 bytes beyond end of file "
             "(size %zu) at byte %zu",
             b.len, field);
    assert_string_equal(err.detail, want);
    tb_free(&b);

    /* Overlap and duplicate names. */
    uint64_t small[] = {16};
    tb_header(&b, 3, 2, 0);
    tb_tensor(&b, "a", 1, ne, GGUF_DT_F32, 0);
    tb_tensor(&b, "b", 1, small, GGUF_DT_F32, 32);
    tb_pad(&b, 32);
    tb_zeros(&b, 512);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "tensor 1 'b': offset 32 overlaps the previous tensor (ends at 256)");
    tb_free(&b);
    tb_header(&b, 3, 2, 0);
    tb_tensor(&b, "a", 1, small, GGUF_DT_F32, 0);
    tb_tensor(&b, "a", 1, small, GGUF_DT_F32, 64);
    tb_pad(&b, 32);
    tb_zeros(&b, 512);
    assert_int_equal(parse(&b, &err), GENAI_ECORRUPT);
    assert_detail(err, "duplicate tensor name 'a'");
    tb_free(&b);
}

/* A small valid file whose every strict prefix is invalid (the last tensor
 * ends exactly at the end of the file, without padding). */
static void make_small(uint8_t **img, size_t *len)
{
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    const char *toks[] = {"<unk>", "a", "bc"};
    float sc[] = {0, -1, -2};
    gguf_writer_add_str(w, "general.architecture", "llama");
    gguf_writer_add_u32(w, "llama.block_count", 1);
    gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", 1);
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", toks, 3);
    gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_VAL_FLOAT32, sc, 3);
    uint64_t ne0[] = {8, 3}, ne1[] = {8}, ne2[] = {32, 16}; /* 16 x 34 = 17 x 32 bytes */
    assert_int_equal(gguf_writer_add_tensor(w, "token_embd.weight", GGUF_DT_F16, 2, ne0, NULL), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGUF_DT_F32, 1, ne1, NULL),
                     0);
    assert_int_equal(gguf_writer_add_tensor(w, "output.weight", GGUF_DT_Q8_0, 2, ne2, NULL), 0);
    assert_int_equal(gguf_writer_to_mem(w, img, len, NULL), 0);
    gguf_writer_free(w);
}

static void test_truncated_every_byte(void **state)
{
    (void)state;
    uint8_t *img;
    size_t len;
    make_small(&img, &len);
    genai_error err;
    tb b = {img, len, len};
    assert_int_equal(parse(&b, &err), 0);
    for (size_t n = 0; n < len; n++) {
        b.len = n;
        int rc = parse(&b, &err);
        if (rc != GENAI_ECORRUPT)
            fail_msg("prefix of %zu bytes: %d (%s)", n, rc, err.detail);
        assert_true(err.detail[0] != '\0');
    }
    mem_free(img);
}

/* Each byte inverted in turn: never a crash, only a clean domain error (or
 * success when the byte did not matter, e.g. inside a string). */
static void test_flipped_bytes(void **state)
{
    (void)state;
    uint8_t *img;
    size_t len;
    make_small(&img, &len);
    genai_error err;
    tb b = {img, len, len};
    int ok = 0, bad = 0;
    for (size_t i = 0; i < len; i++) {
        img[i] ^= 0xff;
        int rc = parse(&b, &err);
        img[i] ^= 0xff;
        if (rc == 0) {
            ok++;
            continue;
        }
        bad++;
        if (rc != GENAI_ECORRUPT && rc != GENAI_EUNSUPPORTED && rc != GENAI_ETOO_LARGE)
            fail_msg("byte %zu: unexpected %d (%s)", i, rc, err.detail);
    }
    assert_true(ok > 0 && bad > 0);
    mem_free(img);
}

/* Fails the N-th allocation for N = 1, 2, ... until parsing succeeds: each
 * failure must be -ENOMEM with nothing leaked. */
static void test_alloc_failures(void **state)
{
    (void)state;
    /* A header past the first 64 KiB window, so the window grows. */
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    enum { N = 12000 };
    char **toks = mem_calloc(N, sizeof(*toks));
    assert_non_null(toks);
    for (int i = 0; i < N; i++) {
        char buf[16];
        snprintf(buf, sizeof(buf), "t%d", i);
        toks[i] = mem_strdup(buf);
    }
    gguf_writer_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)toks, N);
    for (int i = 0; i < 40; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k.%d", i);
        gguf_writer_add_u32(w, key, (uint32_t)i);
        uint64_t ne[] = {32};
        assert_int_equal(gguf_writer_add_tensor(w, key, GGUF_DT_F32, 1, ne, NULL), 0);
    }
    uint8_t *img;
    size_t len;
    assert_int_equal(gguf_writer_to_mem(w, &img, &len, NULL), 0);
    assert_true(len > (128 << 10));
    char *dir = tu_tmpdir("gguf");
    char *path = tu_path(dir, "oom.gguf");
    assert_int_equal(tu_write(path, img, len), 0);

    for (int mode = 0; mode < 2; mode++) {
        unsigned long n;
        int rc = -1;
        for (n = 1; n < 10000; n++) {
            gguf_file *f = NULL;
            genai_error err;
            mem_fail_after(n, 0);
            rc = mode == 0 ? gguf_parse_buffer(img, len, &f, &err) : gguf_open(path, &f, &err);
            mem_fail_after(0, 0);
            if (rc == 0) {
                assert_int_equal(gguf_n_tensors(f), 40);
                gguf_close(f);
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            assert_null(f);
        }
        assert_int_equal(rc, 0);
        assert_true(n > 5); /* window growth, tables and indexes all failed once */
    }

    /* The writer: an allocation failure anywhere is reported as -ENOMEM by
     * the call that met it, and a writer whose calls all succeeded produces a
     * complete file. */
    float data[64] = {0};
    for (unsigned long n = 1; n < 200; n++) {
        gguf_writer *w2 = NULL;
        uint8_t *img2 = NULL;
        size_t len2 = 0;
        int rcs[4];
        mem_fail_after(n, 0);
        if (gguf_writer_new(&w2) < 0) {
            mem_fail_after(0, 0);
            continue;
        }
        uint64_t ne[] = {64};
        rcs[0] = gguf_writer_add_str(w2, "a", "b");
        rcs[1] = gguf_writer_add_str_array(w2, "t", (const char *const *)toks, 50);
        rcs[2] = gguf_writer_add_tensor(w2, "x", GGUF_DT_F32, 1, ne, data);
        rcs[3] = gguf_writer_to_mem(w2, &img2, &len2, NULL);
        mem_fail_after(0, 0);
        int failed = 0;
        for (int k = 0; k < 4; k++) {
            if (rcs[k] != 0)
                assert_int_equal(rcs[k], -ENOMEM);
            failed |= rcs[k] != 0;
        }
        if (!failed) {
            gguf_file *f;
            assert_int_equal(gguf_parse_buffer(img2, len2, &f, NULL), 0);
            assert_int_equal(gguf_n_kv(f), 2);
            assert_int_equal(gguf_n_tensors(f), 1);
            gguf_close(f);
        }
        mem_free(img2);
        gguf_writer_free(w2);
    }

    for (int i = 0; i < N; i++)
        mem_free(toks[i]);
    mem_free(toks);
    mem_free(img);
    gguf_writer_free(w);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_magic_and_version),      cmocka_unit_test(test_huge_counts),
        cmocka_unit_test(test_strings_and_types),      cmocka_unit_test(test_tensor_table),
        cmocka_unit_test(test_tensor_past_eof_detail), cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_flipped_bytes),          cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
