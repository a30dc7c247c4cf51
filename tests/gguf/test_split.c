/*
 * test_split.c - split model sets (PREFIX-NNNNN-of-MMMMM.gguf): a consistent
 * set reads as one model from any shard's name; missing shards, wrong
 * split.no / split.count / split.tensors.count, tensors repeated across
 * shards and unsplittable names are refused with a detail.
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"
#include "gguf/gguf.h"
#include "gguf/profile.h"
#include "gguf/writer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct shard_opts {
    int no_split_keys;     /* leave split.* out */
    uint16_t no_override;  /* != 0xffff: write this split.no */
    uint16_t count;        /* split.count to write */
    int32_t tensors_total; /* split.tensors.count */
    int dup_tensor;        /* repeat shard 1's first tensor */
};

static char *shard_path(const char *dir, int k, int n)
{
    char name[64];
    snprintf(name, sizeof(name), "model-%05d-of-%05d.gguf", k, n);
    return tu_path(dir, name);
}

/* Shard k (1-based) of the 3-shard fixture: 1 has the metadata and
 * token_embd, 2 has layer 0, 3 has layer 1 and the output. */
static void write_shard(const char *dir, int k, int n, const struct shard_opts *o)
{
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    if (k == 1) {
        gguf_writer_add_str(w, "general.architecture", "llama");
        gguf_writer_add_u32(w, "llama.block_count", 2);
        gguf_writer_add_u32(w, "llama.embedding_length", 64);
        gguf_writer_add_u32(w, "llama.attention.head_count", 4);
    }
    if (!o->no_split_keys) {
        uint16_t no = o->no_override != 0xffff ? o->no_override : (uint16_t)(k - 1);
        gguf_writer_add_scalar(w, "split.no", GGUF_VAL_UINT16, &no);
        gguf_writer_add_scalar(w, "split.count", GGUF_VAL_UINT16, &o->count);
        gguf_writer_add_i32(w, "split.tensors.count", o->tensors_total);
    }
    uint64_t embd[] = {64, 100}, sq[] = {64, 64}, norm[] = {64};
    if (k == 1) {
        gguf_writer_add_tensor(w, "token_embd.weight", GGUF_DT_F32, 2, embd, NULL);
    } else if (k == 2) {
        gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGUF_DT_F16, 2, sq, NULL);
        gguf_writer_add_tensor(w, "blk.0.attn_norm.weight", GGUF_DT_F32, 1, norm, NULL);
    } else {
        gguf_writer_add_tensor(w, "blk.1.attn_q.weight", GGUF_DT_F16, 2, sq, NULL);
        gguf_writer_add_tensor(w, "output.weight", GGUF_DT_F32, 2, embd, NULL);
        if (o->dup_tensor)
            gguf_writer_add_tensor(w, "blk.0.attn_q.weight", GGUF_DT_F16, 2, sq, NULL);
    }
    char *path = shard_path(dir, k, n);
    assert_int_equal(gguf_writer_write(w, path, NULL), 0);
    mem_free(path);
    gguf_writer_free(w);
}

static void write_set(const char *dir, const struct shard_opts *o, int bad_shard,
                      const struct shard_opts *bad)
{
    for (int k = 1; k <= 3; k++)
        write_shard(dir, k, 3, k == bad_shard ? bad : o);
}

static const struct shard_opts good = {0, 0xffff, 3, 5, 0};

static void test_name_parse(void **state)
{
    (void)state;
    size_t pl;
    uint32_t no, count;
    assert_int_equal(gguf_split_name_parse("a-00001-of-00003.gguf", &pl, &no, &count), 1);
    assert_int_equal(pl, 1);
    assert_int_equal(no, 1);
    assert_int_equal(count, 3);
    assert_int_equal(gguf_split_name_parse("/m/x-y-00012-of-00040.gguf", &pl, &no, &count), 1);
    assert_int_equal(pl, strlen("/m/x-y"));
    assert_int_equal(no, 12);
    assert_int_equal(count, 40);
    const char *bad[] = {
        "m-00000-of-00002.gguf", "m-00003-of-00002.gguf",
        "m-0001-of-00002.gguf",  "m-00001-of-00002.bin",
        "-00001-of-00002.gguf",  "d/-00001-of-00002.gguf",
        "m-00001_of-00002.gguf", "m.gguf",
        "m-0000a-of-00002.gguf",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gguf_split_name_parse(bad[i], &pl, &no, &count), 0);
}

static void test_consistent_set(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("gguf");
    write_set(dir, &good, 0, NULL);
    uint64_t sizes = 0;
    for (int k = 1; k <= 3; k++) {
        size_t n;
        char *p = shard_path(dir, k, 3);
        unsigned char *b = tu_read(p, &n);
        assert_non_null(b);
        sizes += n;
        mem_free(b);
        mem_free(p);
    }
    for (int k = 1; k <= 3; k++) { /* any shard's name opens the whole set */
        char *p = shard_path(dir, k, 3);
        gguf_model *m;
        genai_error err;
        int rc = gguf_model_open(p, &m, &err);
        if (rc != 0)
            fail_msg("%s", err.detail);
        assert_int_equal(gguf_model_n_files(m), 3);
        assert_int_equal(gguf_model_n_tensors(m), 5);
        assert_int_equal(gguf_model_file_bytes(m), sizes);
        const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight",
                               "blk.1.attn_q.weight", "output.weight"};
        const uint32_t split[] = {0, 1, 1, 2, 2};
        for (uint64_t i = 0; i < 5; i++) {
            const gguf_tensor *t = gguf_model_tensor(m, i);
            assert_true(gguf_str_eq(t->name, names[i]));
            assert_int_equal(t->split, split[i]);
        }
        assert_null(gguf_model_tensor(m, 5));
        gguf_model_free(m);
        mem_free(p);
    }

    char *first = shard_path(dir, 1, 3);
    gguf_profile p;
    genai_error err;
    assert_int_equal(gguf_profile_load(first, &p, &err), 0);
    assert_int_equal(p.n_split, 3);
    assert_int_equal(p.file_bytes, sizes);
    assert_int_equal(p.n_tensors, 5);
    assert_int_equal(p.layer_bytes[0], 64 * 64 * 2 + 64 * 4);
    assert_int_equal(p.layer_bytes[1], 64 * 64 * 2);
    assert_int_equal(p.token_embd_bytes, 64 * 100 * 4);
    assert_int_equal(p.output_bytes, 64 * 100 * 4);
    assert_int_equal(p.output_tied, 0);
    gguf_profile_free(&p);

    /* Allocation failures while opening the set. */
    unsigned long n;
    for (n = 1; n < 200; n++) {
        gguf_model *m = NULL;
        mem_fail_after(n, 0);
        int rc = gguf_model_open(first, &m, NULL);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(gguf_model_n_tensors(m), 5);
            gguf_model_free(m);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
    assert_true(n > 10 && n < 200);
    mem_free(first);
    tu_rmdir(dir);
    mem_free(dir);
}

/* Opens shard 1 of a set written with shard bad_shard replaced. */
static int open_bad(int bad_shard, const struct shard_opts *bad, genai_error *err)
{
    char *dir = tu_tmpdir("gguf");
    write_set(dir, &good, bad_shard, bad);
    char *first = shard_path(dir, 1, 3);
    gguf_model *m = NULL;
    int rc = gguf_model_open(first, &m, err);
    assert_null(m);
    mem_free(first);
    tu_rmdir(dir);
    mem_free(dir);
    return rc;
}

static void test_inconsistent_sets(void **state)
{
    (void)state;
    genai_error err;
    struct shard_opts o = good;
    o.no_override = 0;
    assert_int_equal(open_bad(2, &o, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "model-00002-of-00003.gguf: split.no is 0, expected 1"));
    o = good;
    o.count = 4;
    assert_int_equal(open_bad(3, &o, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "split.count is 4, the set has 3"));
    o = good;
    o.no_split_keys = 1;
    assert_int_equal(open_bad(2, &o, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "split.count missing"));
    o = good;
    o.tensors_total = 6;
    assert_int_equal(open_bad(1, &o, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "split.tensors.count is 6 but the 3 shards hold 5"));
    o = good;
    o.dup_tensor = 1;
    assert_int_equal(open_bad(3, &o, &err), GENAI_ECORRUPT);
    assert_non_null(strstr(err.detail, "tensor 'blk.0.attn_q.weight' also in shard 2"));

    /* A missing shard. */
    char *dir = tu_tmpdir("gguf");
    write_set(dir, &good, 0, NULL);
    char *last = shard_path(dir, 3, 3), *first = shard_path(dir, 1, 3);
    assert_int_equal(unlink(last), 0);
    gguf_model *m = NULL;
    assert_int_equal(gguf_model_open(first, &m, &err), -ENOENT);
    assert_non_null(strstr(err.detail, "model-00003-of-00003.gguf"));

    /* A shard renamed so its siblings cannot be found. */
    char *lone = tu_path(dir, "renamed.gguf");
    assert_int_equal(rename(first, lone), 0);
    assert_int_equal(gguf_model_open(lone, &m, &err), GENAI_EUNSUPPORTED);
    assert_non_null(strstr(err.detail, "3-file split set"));
    assert_null(m);
    mem_free(lone);
    mem_free(last);
    mem_free(first);
    tu_rmdir(dir);
    mem_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_parse),
        cmocka_unit_test(test_consistent_set),
        cmocka_unit_test(test_inconsistent_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
