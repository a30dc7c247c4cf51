/*
 * test_tiny_sd1.c - the layout of genai-mkmodel --sd1's SD 1.x checkpoint
 * read back through the GGUF reader: the tensor names and shapes
 * stable-diffusion.cpp builds for SD 1.x (CLIP ViT-L/14 text model, UNet 32
 * channels wide, VAE decoder 32 wide with the full-width encoder), the
 * per-part parameter counts of contracts/stable-diffusion-cpp.md §9, the
 * markers of sd.cpp's version detection, genai's own family detection, and
 * the tool's argument checks. Built with shapes_only, so the file is a
 * sparse ~342 MB of holes and the test stays fast; running the weights
 * through the real sd-cli and sd-server is checked by hand.
 */
#include "cmocka_all.h"

#include "gguf_testutil.h"

#include "core/alloc.h"
#include "diffusion/family.h"
#include "diffusion/model_file.h"
#include "gguf/gguf.h"
#include "tiny_sd1.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Builds the layout (no weights) of the given type into dir/sd1.gguf;
 * returns the path (caller mem_frees) and the builder's counts. */
static char *write_layout(const char *dir, uint32_t type, struct mkmodel_sd1_stats *st)
{
    struct mkmodel_sd1_opts o;
    mkmodel_sd1_defaults(&o);
    o.type = type;
    o.shapes_only = 1;
    gguf_writer *w;
    genai_error err;
    if (mkmodel_sd1_build(&o, &w, st, &err) != 0)
        fail_msg("%s", err.detail);
    char *path = tu_path(dir, "sd1.gguf");
    if (gguf_writer_write(w, path, &err) != 0)
        fail_msg("%s", err.detail);
    gguf_writer_free(w);
    return path;
}

static int has_prefix(gguf_str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr, p, n) == 0;
}

static int has_suffix(gguf_str s, const char *p)
{
    size_t n = strlen(p);
    return s.len >= n && memcmp(s.ptr + s.len - n, p, n) == 0;
}

#define F16 GGUF_DT_F16
#define F32 GGUF_DT_F32

static void test_layout(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("sd1");
    struct mkmodel_sd1_stats st;
    char *path = write_layout(dir, F16, &st);
    gguf_file *f;
    genai_error err;
    if (gguf_open(path, &f, &err) != 0)
        fail_msg("%s", err.detail);

    /* The CLIP ViT-L/14 text model at full size: embeddings, 12 layers of
     * 4 projections (768 x 768 + bias), 2 layer norms, MLP 768 -> 3072 ->
     * 768, final layer norm; 123.06 M parameters (contract §9). */
    const uint64_t w = 768,
                   layer = 4 * (w * w + w) + 2 * 2 * w + (w * 3072 + 3072) + (3072 * w + w);
    assert_int_equal(st.te_params, 49408 * w + 77 * w + 12 * layer + 2 * w);
    assert_int_equal(st.te_params, 123060480);
    /* UNet 10.4 M, whole file 170.7 M (contract §9). */
    assert_true(st.unet_params > 10350000 && st.unet_params < 10450000);
    uint64_t total = st.te_params + st.unet_params + st.vae_params;
    assert_true(total > 170650000 && total < 170750000);

    static const struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[4];
    } want[] = {
#define TE "cond_stage_model.transformer.text_model."
#define UN "model.diffusion_model."
#define VA "first_stage_model."
        {TE "embeddings.token_embedding.weight", F16, 2, {768, 49408, 1, 1}},
        {TE "embeddings.position_embedding.weight", F32, 2, {768, 77, 1, 1}},
        {TE "encoder.layers.0.self_attn.q_proj.weight", F16, 2, {768, 768, 1, 1}},
        {TE "encoder.layers.11.self_attn.out_proj.bias", F32, 1, {768, 1, 1, 1}},
        {TE "encoder.layers.11.mlp.fc1.weight", F16, 2, {768, 3072, 1, 1}},
        {TE "encoder.layers.5.mlp.fc2.weight", F16, 2, {3072, 768, 1, 1}},
        {TE "encoder.layers.7.layer_norm2.weight", F32, 1, {768, 1, 1, 1}},
        {TE "final_layer_norm.bias", F32, 1, {768, 1, 1, 1}},
        /* model_channels 32 (sd.cpp reads it here), time embedding 128. */
        {UN "input_blocks.0.0.weight", F16, 4, {3, 3, 4, 32}},
        {UN "time_embed.0.weight", F16, 2, {32, 128, 1, 1}},
        {UN "time_embed.2.bias", F32, 1, {128, 1, 1, 1}},
        {UN "input_blocks.1.0.emb_layers.1.weight", F16, 2, {128, 32, 1, 1}},
        /* The context width sd.cpp and genai read: CLIP's 768. */
        {UN "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight", F16, 2, {768, 32, 1, 1}},
        {UN "input_blocks.1.1.proj_in.weight", F16, 4, {1, 1, 32, 32}},
        {UN "input_blocks.3.0.op.weight", F16, 4, {3, 3, 32, 32}},
        {UN "input_blocks.4.0.skip_connection.weight", F16, 4, {1, 1, 32, 64}},
        {UN "input_blocks.7.1.transformer_blocks.0.ff.net.0.proj.weight",
         F16,
         2,
         {128, 1024, 1, 1}},
        {UN "input_blocks.8.1.transformer_blocks.0.ff.net.2.weight", F16, 2, {512, 128, 1, 1}},
        {UN "input_blocks.11.0.out_layers.3.weight", F16, 4, {3, 3, 128, 128}},
        {UN "middle_block.1.transformer_blocks.0.attn1.to_out.0.bias", F32, 1, {128, 1, 1, 1}},
        {UN "middle_block.2.in_layers.0.weight", F32, 1, {128, 1, 1, 1}},
        /* Output blocks take their input block's skip: 128 + 128 at the
         * bottom, 128 + 64 and 64 + 32 where the width halves. */
        {UN "output_blocks.0.0.in_layers.2.weight", F16, 4, {3, 3, 256, 128}},
        {UN "output_blocks.2.1.conv.weight", F16, 4, {3, 3, 128, 128}},
        {UN "output_blocks.5.2.conv.weight", F16, 4, {3, 3, 128, 128}},
        {UN "output_blocks.6.0.skip_connection.weight", F16, 4, {1, 1, 192, 64}},
        {UN "output_blocks.7.1.norm.weight", F32, 1, {64, 1, 1, 1}},
        {UN "output_blocks.8.2.conv.weight", F16, 4, {3, 3, 64, 64}},
        {UN "output_blocks.9.0.in_layers.2.weight", F16, 4, {3, 3, 96, 32}},
        {UN "output_blocks.11.1.proj_out.weight", F16, 4, {1, 1, 32, 32}},
        {UN "out.2.weight", F16, 4, {3, 3, 32, 4}},
        /* VAE: encoder at sd.cpp's fixed width 128, decoder 32 (conv_in
         * 4 -> 4 x 32, from which sd.cpp reads the width). */
        {VA "encoder.conv_in.weight", F16, 4, {3, 3, 3, 128}},
        {VA "encoder.down.1.block.0.nin_shortcut.weight", F16, 4, {1, 1, 128, 256}},
        {VA "encoder.down.2.downsample.conv.weight", F16, 4, {3, 3, 512, 512}},
        {VA "encoder.mid.attn_1.q.weight", F16, 4, {1, 1, 512, 512}},
        {VA "encoder.conv_out.weight", F16, 4, {3, 3, 512, 8}},
        {VA "quant_conv.weight", F16, 4, {1, 1, 8, 8}},
        {VA "post_quant_conv.weight", F16, 4, {1, 1, 4, 4}},
        {VA "decoder.conv_in.weight", F16, 4, {3, 3, 4, 128}},
        {VA "decoder.mid.attn_1.proj_out.weight", F16, 4, {1, 1, 128, 128}},
        {VA "decoder.up.3.upsample.conv.weight", F16, 4, {3, 3, 128, 128}},
        {VA "decoder.up.1.block.0.nin_shortcut.weight", F16, 4, {1, 1, 128, 64}},
        {VA "decoder.up.0.block.2.conv2.weight", F16, 4, {3, 3, 32, 32}},
        {VA "decoder.norm_out.weight", F32, 1, {32, 1, 1, 1}},
        {VA "decoder.conv_out.weight", F16, 4, {3, 3, 32, 3}},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
        if (t == NULL)
            fail_msg("missing %s", want[i].name);
        if (t->type != want[i].type || t->n_dims != want[i].n_dims ||
            memcmp(t->ne, want[i].ne, sizeof(t->ne)) != 0)
            fail_msg("%s: type %u dims %u {%llu, %llu, %llu, %llu}", want[i].name, t->type,
                     t->n_dims, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                     (unsigned long long)t->ne[2], (unsigned long long)t->ne[3]);
    }

    /* What SD 1.x does not have: attention at the lowest level, more than
     * 12 input or output blocks, an upsampler after the last output block or
     * before the transformer, a 13th CLIP layer, a decoder up.0 upsampler, a
     * downsampler after the encoder's last level, q/k/v biases in the UNet. */
    static const char *const absent[] = {
        UN "input_blocks.10.1.norm.weight",
        UN "input_blocks.12.0.in_layers.0.weight",
        UN "output_blocks.11.2.conv.weight",
        UN "output_blocks.12.0.in_layers.0.weight",
        UN "output_blocks.2.2.conv.weight",
        TE "encoder.layers.12.layer_norm1.weight",
        VA "decoder.up.0.upsample.conv.weight",
        VA "encoder.down.3.downsample.conv.weight",
        UN "input_blocks.1.1.transformer_blocks.0.attn1.to_q.bias",
    };
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (gguf_find_tensor(f, absent[i]) != NULL)
            fail_msg("unexpected %s", absent[i]);
#undef TE
#undef UN
#undef VA

    /* Counts per part match the file; biases and norms are F32. */
    uint64_t te = 0, un = 0, va = 0, n = gguf_n_tensors(f);
    assert_int_equal(n, st.n_tensors);
    for (uint64_t i = 0; i < n; i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (has_prefix(t->name, "cond_stage_model.transformer.text_model."))
            te += t->n_elements;
        else if (has_prefix(t->name, "model.diffusion_model."))
            un += t->n_elements;
        else if (has_prefix(t->name, "first_stage_model."))
            va += t->n_elements;
        else
            fail_msg("tensor %.*s of no part", (int)t->name.len, t->name.ptr);
        if (has_suffix(t->name, ".bias") || t->n_dims == 1)
            assert_int_equal(t->type, F32);
    }
    assert_int_equal(te, st.te_params);
    assert_int_equal(un, st.unet_params);
    assert_int_equal(va, st.vae_params);
    /* About 342 MB in F16 (contract §9: 341,941,444 B as safetensors). */
    assert_true(gguf_file_size(f) > 340000000 && gguf_file_size(f) < 345000000);

    gguf_close(f);
    unlink(path);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

/* --type f32: every tensor F32, twice the bytes of the matrices. */
static void test_f32(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("sd1");
    struct mkmodel_sd1_stats st;
    char *path = write_layout(dir, F32, &st);
    gguf_file *f;
    genai_error err;
    if (gguf_open(path, &f, &err) != 0)
        fail_msg("%s", err.detail);
    for (uint64_t i = 0; i < gguf_n_tensors(f); i++)
        assert_int_equal(gguf_tensor_at(f, i)->type, F32);
    uint64_t params = st.te_params + st.unet_params + st.vae_params;
    assert_int_equal(gguf_tensor_bytes(f), params * 4);
    gguf_close(f);
    unlink(path);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);

    struct mkmodel_sd1_opts o;
    mkmodel_sd1_defaults(&o);
    o.type = GGUF_DT_Q4_0;
    gguf_writer *w = NULL;
    assert_int_equal(mkmodel_sd1_build(&o, &w, NULL, &err), GENAI_EBAD_ARG);
    assert_null(w);
}

/* genai's diffusion detection reads the file as SD 1.x with the widths
 * sd.cpp reads from it, and finds every component a checkpoint needs. */
static void test_genai_detects_sd1(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("sd1");
    struct mkmodel_sd1_stats st;
    char *path = write_layout(dir, F16, &st);
    dm_file *df;
    genai_error err;
    if (dm_file_open(path, DM_ROLE_MODEL, &df, &err) != 0)
        fail_msg("%s", err.detail);
    dm_detection d;
    const dm_file *files[] = {df};
    if (dm_detect(files, 1, &d, &err) != 0)
        fail_msg("%s", err.detail);
    assert_int_equal(d.family, DM_FAMILY_SD1);
    assert_int_equal(d.confidence, DM_CONF_HIGH);
    assert_int_equal(d.inpaint, 0);
    assert_int_equal(d.st.model_channels, 32);
    assert_int_equal(d.st.context_dim, 768);
    assert_int_equal(d.st.vae_channels, 32);
    assert_int_equal(d.st.in_channels, 4);
    assert_int_equal(dm_check_components(&d, &err), 0);
    dm_file_free(df);
    unlink(path);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

/* Runs genai-mkmodel with the given arguments; its exit status. */
static int run_tool(char *const *args)
{
    const char *build_dir = getenv("GENAI_BUILD_DIR");
    assert_non_null(build_dir);
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s/tools/mkmodel/genai-mkmodel", build_dir);
    char *argv[8] = {bin};
    for (size_t i = 0; args[i] != NULL && i + 2 < sizeof(argv) / sizeof(argv[0]); i++)
        argv[i + 1] = args[i];
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        execv(bin, argv);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* The tool refuses llama-only flags and unknown types with --sd1 (exit 2)
 * and writes nothing. */
static void test_tool_args(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("sd1");
    char *path = tu_path(dir, "x.gguf");
    char sd1[] = "--sd1", layers[] = "--layers", three[] = "3", type[] = "--type", q4[] = "q4_0",
         help[] = "--help";
    assert_int_equal(run_tool((char *[]){path, sd1, layers, three, NULL}), 2);
    assert_int_equal(run_tool((char *[]){path, sd1, type, q4, NULL}), 2);
    assert_int_equal(run_tool((char *[]){sd1, NULL}), 2);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(run_tool((char *[]){help, NULL}), 0);
    mem_free(path);
    tu_rmdir(dir);
    mem_free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_f32),
        cmocka_unit_test(test_genai_detects_sd1),
        cmocka_unit_test(test_tool_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
