/*
 * test_safetensors.c - the safetensors header reader: a file made by the
 * writer reads back exactly; each kind of corruption is refused with its own
 * code and a detail naming the field; allocation failures clean up.
 */
#include "cmocka_all.h"
#include "dm_fixtures.h"
#include "st_writer.h"

#include "core/alloc.h"
#include "diffusion/safetensors.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_roundtrip(void **state)
{
    (void)state;
    st_writer *w = stw_new();
    assert_non_null(w);
    uint64_t s1[] = {49408, 768}, s2[] = {320, 4, 3, 3}, s3[] = {8};
    assert_int_equal(stw_tensor(w, "b.weight", "F16", 2, s1), 0);
    assert_int_equal(stw_tensor(w, "a.conv", "BF16", 4, s2), 0);
    assert_int_equal(stw_tensor(w, "c.packed", "F4", 1, s3), 0);
    assert_int_equal(stw_tensor(w, "d.scalar", "F32", 0, NULL), 0);
    assert_int_equal(stw_meta(w, "modelspec.title", "Test Model"), 0);
    assert_int_equal(stw_meta(w, "format", "pt"), 0);
    size_t len;
    uint8_t *img = stw_to_mem(w, &len);
    assert_non_null(img);

    genai_error e;
    dm_st_file *f;
    assert_int_equal(dm_st_parse_buffer(img, len, &f, &e), 0);
    assert_int_equal(dm_st_n_tensors(f), 4);
    assert_int_equal(dm_st_file_size(f), len);
    assert_int_equal(dm_st_header_len(f) % 8, 0);
    /* Sorted by name. */
    assert_string_equal(dm_st_tensor_at(f, 0)->name, "a.conv");
    assert_string_equal(dm_st_tensor_at(f, 3)->name, "d.scalar");
    const dm_st_tensor *t = dm_st_find(f, "b.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, DM_ST_F16);
    assert_int_equal(t->n_dims, 2);
    assert_int_equal(t->shape[0], 49408);
    assert_int_equal(t->shape[1], 768);
    assert_int_equal(t->n_elements, 49408ull * 768);
    assert_int_equal(t->end - t->begin, 49408ull * 768 * 2);
    t = dm_st_find(f, "c.packed");
    assert_int_equal(t->end - t->begin, 4); /* 8 x 4 bits */
    t = dm_st_find(f, "d.scalar");
    assert_int_equal(t->n_dims, 0);
    assert_int_equal(t->n_elements, 1);
    assert_int_equal(t->end - t->begin, 4);
    assert_null(dm_st_find(f, "nope"));
    assert_int_equal(dm_st_tensor_bytes(f), 49408ull * 768 * 2 + 320 * 4 * 9 * 2 + 4 + 4);
    assert_int_equal(dm_st_n_meta(f), 2);
    assert_string_equal(dm_st_meta_at(f, 0)->key, "format");
    assert_string_equal(dm_st_meta_get(f, "modelspec.title"), "Test Model");
    assert_null(dm_st_meta_get(f, "absent"));
    dm_st_close(f);
    mem_free(img);
    stw_free(w);
}

static void test_open_sparse_file(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("dm");
    char *path = dmt_write_st(dir, "sd1.safetensors", dmt_sd1, dmt_sd1_n, NULL, 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    genai_error e;
    dm_st_file *f;
    assert_int_equal(dm_st_open(path, &f, &e), 0);
    assert_int_equal(dm_st_n_tensors(f), dmt_sd1_n);
    assert_int_equal(dm_st_file_size(f), (uint64_t)st.st_size);
    assert_int_equal(8 + dm_st_header_len(f) + dm_st_tensor_bytes(f), (uint64_t)st.st_size);
    dm_st_close(f);

    /* Cut the file: the last tensor now ends past the data buffer. */
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    assert_int_equal(dm_st_open(path, &f, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, path));
    assert_non_null(strstr(e.detail, "outside the"));

    char *missing = tu_path(dir, "missing.safetensors");
    assert_int_equal(dm_st_open(missing, &f, &e), -ENOENT);
    assert_int_equal(dm_st_open(dir, &f, &e), GENAI_EBAD_ARG);
    mem_free(missing);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

/* Parses a hand-written header with data_len bytes of data; checks the code
 * and that the detail contains want. */
static void expect_bad(const char *header, uint64_t declared, size_t data_len, int code,
                       const char *want)
{
    size_t len;
    uint8_t *img = st_raw(header, declared, data_len, &len);
    assert_non_null(img);
    genai_error e;
    genai_error_clear(&e);
    dm_st_file *f = (dm_st_file *)&e; /* must stay untouched */
    int rc = dm_st_parse_buffer(img, len, &f, &e);
    if (rc != code || strstr(e.detail, want) == NULL)
        fail_msg("header %s: got %d '%s', want %d '%s'", header, rc, e.detail, code, want);
    assert_ptr_equal(f, (dm_st_file *)&e);
    mem_free(img);
}

#define OK_T "\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]}"

static void test_corrupt_length(void **state)
{
    (void)state;
    genai_error e;
    dm_st_file *f;
    const uint8_t tiny[7] = {0};
    assert_int_equal(dm_st_parse_buffer(tiny, sizeof(tiny), &f, &e), GENAI_ECORRUPT);
    assert_non_null(strstr(e.detail, "shorter than the 8-byte"));
    /* Past the cap: refused before any allocation of that size. */
    expect_bad("{}", DM_ST_MAX_HEADER + 1, 0, GENAI_ETOO_LARGE, "exceeds");
    /* Past the end of the file. */
    expect_bad("{" OK_T "}", 4096, 8, GENAI_ECORRUPT, "does not fit");
    expect_bad("{}", 1, 8, GENAI_ECORRUPT, "does not fit");
}

static void test_corrupt_json(void **state)
{
    (void)state;
    expect_bad("[1,2]   ", UINT64_MAX, 0, GENAI_ECORRUPT, "not a JSON object");
    expect_bad("{\"t\":", UINT64_MAX, 0, GENAI_ECORRUPT, "header JSON");
    expect_bad("{" OK_T "," OK_T "}", UINT64_MAX, 8, GENAI_ECORRUPT, "header JSON");
    expect_bad("{\"t\":7}", UINT64_MAX, 0, GENAI_ECORRUPT, "not an object");
    expect_bad("{\"\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}", UINT64_MAX, 2,
               GENAI_ECORRUPT, "tensor name of 0 bytes");
    expect_bad("{\"t\\u0000x\":{}}", UINT64_MAX, 0, GENAI_ECORRUPT, "header JSON");
}

static void test_corrupt_tensor(void **state)
{
    (void)state;
    expect_bad("{\"t\":{\"shape\":[2],\"data_offsets\":[0,4]}}", UINT64_MAX, 4, GENAI_ECORRUPT,
               "dtype missing");
    expect_bad("{\"t\":{\"dtype\":\"F17\",\"shape\":[2],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
               GENAI_EUNSUPPORTED, "unknown dtype 'F17'");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[-2],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
               GENAI_ECORRUPT, "shape[0] is not a non-negative integer");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[2.5],\"data_offsets\":[0,4]}}", UINT64_MAX, 4,
               GENAI_ECORRUPT, "shape[0]");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,2]}}",
               UINT64_MAX, 2, GENAI_ECORRUPT, "9 dimensions");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[4294967296,4294967296],"
               "\"data_offsets\":[0,4]}}",
               UINT64_MAX, 4, GENAI_ECORRUPT, "overflows");
    expect_bad("{\"t\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", UINT64_MAX, 2,
               GENAI_ECORRUPT, "not whole bytes");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,6]}}", UINT64_MAX, 8,
               GENAI_ECORRUPT, "= 8 bytes but data_offsets span 6");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,0]}}", UINT64_MAX, 8,
               GENAI_ECORRUPT, "outside the 8-byte data buffer");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[6,10]}}", UINT64_MAX, 8,
               GENAI_ECORRUPT, "outside the 8-byte data buffer");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0]}}", UINT64_MAX, 8,
               GENAI_ECORRUPT, "data_offsets is not two");
    expect_bad("{\"t\":{\"dtype\":\"F16\",\"shape\":{},\"data_offsets\":[0,4]}}", UINT64_MAX, 8,
               GENAI_ECORRUPT, "shape missing or not an array");
}

static void test_corrupt_layout(void **state)
{
    (void)state;
    /* Two tensors sharing bytes 4..8. */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               UINT64_MAX, 16, GENAI_ECORRUPT, "tensors 'a' and 'b' overlap");
    /* Metadata values are strings. */
    expect_bad("{\"__metadata__\":{\"k\":1}," OK_T "}", UINT64_MAX, 8, GENAI_ECORRUPT,
               "__metadata__ 'k': value is not a string");
    expect_bad("{\"__metadata__\":[]}", UINT64_MAX, 0, GENAI_ECORRUPT,
               "__metadata__ is not an object");

    /* Accepted: a hole between tensors, zero-sized tensors, padding. */
    size_t len;
    uint8_t *img = st_raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                          "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}    ",
                          UINT64_MAX, 10, &len);
    dm_st_file *f;
    genai_error e;
    assert_int_equal(dm_st_parse_buffer(img, len, &f, &e), 0);
    assert_int_equal(dm_st_n_tensors(f), 3);
    assert_int_equal(dm_st_find(f, "z")->n_elements, 0);
    dm_st_close(f);
    mem_free(img);
}

static void test_alloc_failures(void **state)
{
    (void)state;
    st_writer *w = stw_new();
    uint64_t sh[] = {4, 4};
    assert_int_equal(stw_tensor(w, "x", "F32", 2, sh), 0);
    assert_int_equal(stw_tensor(w, "y", "F16", 2, sh), 0);
    assert_int_equal(stw_tensor(w, "z", "I8", 2, sh), 0);
    assert_int_equal(stw_meta(w, "k", "v"), 0);
    size_t len;
    uint8_t *img = stw_to_mem(w, &len);
    stw_free(w);
    int failed = 0;
    for (unsigned long n = 1; n < 64; n++) {
        dm_st_file *f = NULL;
        genai_error e;
        mem_fail_after(n, 1);
        int rc = dm_st_parse_buffer(img, len, &f, &e);
        mem_fail_after(0, 0);
        if (rc == 0) {
            dm_st_close(f);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        failed++;
    }
    assert_true(failed >= 5); /* file, table, names, metadata, order */
    mem_free(img);
}

static void test_dtypes(void **state)
{
    (void)state;
    enum dm_st_dtype t;
    for (unsigned i = 0; i < DM_ST_DTYPE__COUNT; i++) {
        assert_int_equal(dm_st_dtype_parse(dm_st_dtype_name((enum dm_st_dtype)i), &t), 0);
        assert_int_equal(t, i);
        assert_true(dm_st_dtype_bits(t) >= 4);
    }
    assert_int_equal(dm_st_dtype_bits(DM_ST_BF16), 16);
    assert_int_equal(dm_st_dtype_parse("f16", &t), GENAI_EUNSUPPORTED);
    assert_string_equal(dm_st_dtype_name(DM_ST_DTYPE__COUNT), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_open_sparse_file),
        cmocka_unit_test(test_corrupt_length), cmocka_unit_test(test_corrupt_json),
        cmocka_unit_test(test_corrupt_tensor), cmocka_unit_test(test_corrupt_layout),
        cmocka_unit_test(test_alloc_failures), cmocka_unit_test(test_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
