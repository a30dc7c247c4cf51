/*
 * test_inspect.c - end to end: a ref-tiny GGUF written with the GGUF writer,
 * read back by the real reader into a profile the planner prices exactly
 * like the in-memory fixture, and `genai inspect` run as a child process
 * (exit codes, human and JSON output, errors for bad flags and bad files).
 */
#include "cmocka_all.h"
#include "testutil/testutil.h"

#include "core/alloc.h"
#include "diffusion/dm_fixtures.h"
#include "gguf/profile.h"
#include "gguf/writer.h"
#include "plan/llm.h"
#include "plan_fixtures.h"
#include "proc/run.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct paths {
    char dir[256];
    char model[300];
    char corrupt[300];
};

static struct paths g;

static void add_tensor(gguf_writer *w, const char *name, uint64_t ne0, uint64_t ne1)
{
    uint64_t ne[2] = {ne0, ne1};
    assert_int_equal(gguf_writer_add_tensor(w, name, GGUF_DT_F32, ne1 ? 2 : 1, ne, NULL), 0);
}

/* ref-tiny (llama-server.md §2): 2 layers, 128 wide, 4/2 heads, ff 256,
 * vocabulary 312, F32. Tensor data is left as a sparse hole. */
static void write_ref_tiny(const char *path)
{
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_int_equal(gguf_writer_add_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_add_str(w, "general.name", "ref-tiny"), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.block_count", 2), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.context_length", 2048), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.embedding_length", 128), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.feed_forward_length", 256), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.attention.head_count", 4), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.attention.head_count_kv", 2), 0);
    assert_int_equal(gguf_writer_add_u32(w, "llama.vocab_size", 312), 0);
    add_tensor(w, "token_embd.weight", 128, 312);
    for (int l = 0; l < 2; l++) {
        char n[64];
        static const struct {
            const char *name;
            uint64_t ne0, ne1;
        } t[] = {{"attn_norm.weight", 128, 0},     {"attn_q.weight", 128, 128},
                 {"attn_k.weight", 128, 64},       {"attn_v.weight", 128, 64},
                 {"attn_output.weight", 128, 128}, {"ffn_norm.weight", 128, 0},
                 {"ffn_gate.weight", 128, 256},    {"ffn_up.weight", 128, 256},
                 {"ffn_down.weight", 256, 128}};
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            snprintf(n, sizeof(n), "blk.%d.%s", l, t[i].name);
            add_tensor(w, n, t[i].ne0, t[i].ne1);
        }
    }
    add_tensor(w, "output_norm.weight", 128, 0);
    add_tensor(w, "output.weight", 128, 312);
    genai_error err;
    if (gguf_writer_write(w, path, &err) < 0)
        fail_msg("writing %s: %s", path, err.detail);
    gguf_writer_free(w);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g.dir, sizeof(g.dir), "%s/genai-plan-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(g.dir) == NULL)
        return -1;
    snprintf(g.model, sizeof(g.model), "%s/ref-tiny.gguf", g.dir);
    snprintf(g.corrupt, sizeof(g.corrupt), "%s/corrupt.gguf", g.dir);
    write_ref_tiny(g.model);
    FILE *f = fopen(g.corrupt, "wb");
    if (f == NULL)
        return -1;
    /* A GGUF header claiming 2^40 tensors in a 24-byte file. */
    static const unsigned char bad[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0,
                                          0,   0,   1,   0,   0, 0, 0, 0, 0, 0, 0, 0};
    size_t n = fwrite(bad, 1, sizeof(bad), f);
    return fclose(f) == 0 && n == sizeof(bad) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g.model);
    unlink(g.corrupt);
    return rmdir(g.dir);
}

/* The reader's profile prices exactly like the fixture built from shapes. */
static void test_reader_profile(void **state)
{
    (void)state;
    gguf_profile p, ref;
    genai_error err;
    if (gguf_profile_load(g.model, &p, &err) < 0)
        fail_msg("load: %s", err.detail);
    assert_int_equal(fixture_ref_tiny(&ref), 0);
    assert_int_equal(p.n_layer, 2);
    assert_int_equal(p.tensor_bytes, ref.tensor_bytes);
    assert_int_equal(p.token_embd_bytes, ref.token_embd_bytes);
    assert_int_equal(p.output_bytes, ref.output_bytes);
    assert_int_equal(p.layer_bytes[1], ref.layer_bytes[1]);
    assert_int_equal(p.key_length, 32);
    assert_int_equal(p.head_count_kv[0], 2);

    plan_llm_config cfg;
    plan_llm_config_init(&cfg);
    cfg.n_ctx = 512;
    plan_demand d, dref;
    plan_llm_shape s;
    assert_int_equal(plan_llm_estimate(&p, &cfg, &d, &s, NULL), 0);
    assert_int_equal(plan_llm_estimate(&ref, &cfg, &dref, NULL, NULL), 0);
    assert_int_equal(s.kv_bytes, 256 * 1024); /* 0.25 MiB, OBS */
    assert_memory_equal(&d.host_parts, &dref.host_parts, sizeof(d.host_parts));
    gguf_profile_free(&p);
    fixture_profile_free(&ref);
}

static void run_inspect(const char *const *args, proc_capture *out)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = tu_genai_bin();
    argv[n++] = "inspect";
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    genai_error err;
    if (proc_run_capture(argv, 30000, 1 << 20, out, &err) < 0)
        fail_msg("running genai inspect: %s", err.detail);
    assert_true(out->exited);
}

static void test_cli_json(void **state)
{
    (void)state;
    proc_capture c;
    const char *args[] = {g.model, "--ctx", "512", "--gpu", "8GiB", "--json", NULL};
    run_inspect(args, &c);
    if (c.exit_code != 0)
        fail_msg("exit %d: %s", c.exit_code, c.err);
    json_error_t je;
    json_t *j = json_loadb(c.out, c.out_len, 0, &je);
    if (j == NULL)
        fail_msg("bad JSON (%s): %.200s", je.text, c.out);
    assert_string_equal(json_string_value(json_object_get(j, "file")), g.model);
    json_t *cfg = json_object_get(j, "config");
    assert_int_equal(json_integer_value(json_object_get(cfg, "n_ctx")), 512);
    assert_int_equal(json_integer_value(json_object_get(cfg, "n_gpu_layers")), 3);
    json_t *machine = json_object_get(j, "machine");
    assert_string_equal(json_string_value(json_object_get(machine, "source")), "hypothetical");
    json_t *gpu0 = json_array_get(json_object_get(machine, "gpus"), 0);
    assert_int_equal(json_integer_value(json_object_get(gpu0, "total")), 8ll << 30);
    json_t *demand = json_object_get(j, "demand");
    assert_string_equal(json_string_value(json_object_get(demand, "tier")), "estimate");
    json_t *d0 = json_array_get(json_object_get(demand, "gpus"), 0);
    assert_int_equal(json_integer_value(json_object_get(d0, "kv")), 256 * 1024);
    assert_true(json_is_true(json_object_get(json_object_get(j, "fit"), "fits")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "profile"), "n_layer")),
                     2);
    json_decref(j);
    proc_capture_free(&c);
}

static void test_cli_human_and_no_fit(void **state)
{
    (void)state;
    proc_capture c;
    const char *args[] = {g.model, "--gpu", "1MiB", "--ngl", "3", "--ctx", "1024", NULL};
    run_inspect(args, &c);
    assert_int_equal(c.exit_code, 0);
    assert_non_null(strstr(c.out, "architecture llama"));
    /* ref-tiny has 375,424 parameters (contracts/llama-server.md §2). */
    assert_non_null(strstr(c.out, "375.4 k params"));
    assert_non_null(strstr(c.out, "-ngl 3"));
    assert_non_null(strstr(c.out, "does not fit"));
    assert_non_null(strstr(c.out, "short by"));
    proc_capture_free(&c);
}

static void test_cli_errors(void **state)
{
    (void)state;
    static const char *const bad[][5] = {
        {"--bogus", NULL},
        {NULL},
        {"a.gguf", "b.gguf", NULL},
        {"x", "--gpu", "8XB", NULL},
        {"x", "--ngl", "many", NULL},
        {"x", "--fa", "maybe", NULL},
        {"x", "--kv", "q3_k", NULL},
        {"x", "--ctx", NULL},
    };
    proc_capture c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        run_inspect(bad[i], &c);
        if (c.exit_code != 2)
            fail_msg("case %zu: exit %d, want 2", i, c.exit_code);
        assert_non_null(strstr(c.err, "genai inspect"));
        proc_capture_free(&c);
    }
    const char *corrupt[] = {g.corrupt, NULL};
    run_inspect(corrupt, &c);
    assert_int_equal(c.exit_code, 1);
    assert_non_null(strstr(c.err, "GENAI_E"));
    assert_non_null(strstr(c.err, "corrupt.gguf"));
    proc_capture_free(&c);
    const char *missing[] = {"/nonexistent/model.gguf", NULL};
    run_inspect(missing, &c);
    assert_int_equal(c.exit_code, 1);
    assert_non_null(strstr(c.err, "ENOENT"));
    proc_capture_free(&c);
}

/* An image model, GGUF (no general.architecture) or safetensors: named as
 * one, with where it goes, instead of the LLM reader's complaint. */
static void test_cli_image_model(void **state)
{
    (void)state;
    char *files[2] = {dmt_write_gguf(g.dir, "sd1.gguf", dmt_sd1, dmt_sd1_n, NULL),
                      dmt_write_st(g.dir, "sdxl.safetensors", dmt_sdxl, dmt_sdxl_n, NULL, 0)};
    const char *family[2] = {"SD 1.x", "SDXL"};
    for (int i = 0; i < 2; i++) {
        const char *args[] = {files[i], NULL};
        proc_capture c;
        run_inspect(args, &c);
        assert_int_equal(c.exit_code, 1);
        char want[128];
        snprintf(want, sizeof(want), "is an image model, not an LLM: %s (high confidence",
                 family[i]);
        if (strstr(c.err, want) == NULL)
            fail_msg("stderr: %s", c.err);
        assert_non_null(strstr(c.err, "genai image PROMPT -m "));
        assert_non_null(strstr(c.err, "--kind diffusion"));
        assert_null(strstr(c.err, "GENAI_E")); /* not the reader's complaint */
        proc_capture_free(&c);
        assert_int_equal(unlink(files[i]), 0);
        mem_free(files[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_profile),
        cmocka_unit_test(test_cli_json),
        cmocka_unit_test(test_cli_human_and_no_fit),
        cmocka_unit_test(test_cli_image_model),
        cmocka_unit_test(test_cli_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
